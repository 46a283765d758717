import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { TokenizerError } from "../../src/tokenize/errors.ts";
import { Tokenizer } from "../../src/tokenize/tokenizer.ts";
import { trainByteLevelBPE } from "../../src/tokenize/train-bpe.ts";

/** Deterministic pseudo-English: Zipf-distributed words from a seeded LCG. */
function corpus(bytes: number, seed = 7): string[] {
  let s = seed >>> 0;
  const rnd = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  const syl =
    "ba be bi bo bu ka ke ki ko ku la le li lo lu ma me mi mo mu na ne ni no nu ra re ri ro ru sa se si so su ta te ti to tu ver tion ing pre con str th sh ch qu ée ün ß".split(
      " ",
    );
  const words = Array.from({ length: 30000 }, () => {
    let w = "";
    const n = 1 + Math.floor(rnd() * 4);
    for (let j = 0; j < n; j++) w += syl[Math.floor(rnd() * syl.length)];
    return w;
  });
  const lines: string[] = [];
  let size = 0;
  while (size < bytes) {
    const n = 4 + Math.floor(rnd() * 16);
    const parts: string[] = [];
    for (let j = 0; j < n; j++) parts.push(words[Math.floor(words.length * rnd() ** 2.5)]!);
    const line = `${parts.join(" ")}${rnd() < 0.2 ? `, ${Math.floor(rnd() * 10000)}` : ""}.`;
    lines.push(line);
    size += line.length;
  }
  return lines;
}

const UNSEEN = [
  "Completely unseen text: the quick brown fox — jumps! 42 times.",
  "Unicode: café, naïve, 日本語, 한국어, emoji 😀 and ZWJ 👨‍👩‍👧, flags 🇫🇷.",
  "  whitespace\truns\n\n and newlines \r\n",
  "control \u0000\u0001 chars and \u{10FFFF} plane 16",
];

describe("trainByteLevelBPE", () => {
  const texts = corpus(200_000);
  const specials = ["<|endoftext|>", "<|pad|>"];
  const json = trainByteLevelBPE(texts, { vocabSize: 1000, specialTokens: specials });
  const tok = Tokenizer.fromJSON(json, { eos_token: "<|endoftext|>", pad_token: "<|pad|>" });

  test("vocab size, id layout, merges", () => {
    assert.equal(tok.vocabSize, 1000);
    assert.equal(Object.keys(json.model.vocab).length + specials.length, 1000);
    assert.equal(json.model.merges.length, 1000 - 256 - specials.length);
    assert.deepEqual(
      json.added_tokens.map((t) => [t.id, t.content, t.special]),
      [
        [0, "<|endoftext|>", true],
        [1, "<|pad|>", true],
      ],
    );
    assert.equal(tok.eosTokenId, 0);
    assert.equal(tok.padTokenId, 1);
    // Every merge result is in the vocab with an id after both of its parts.
    for (const [a, b] of json.model.merges) {
      const id = json.model.vocab[a + b]!;
      assert.ok(id > json.model.vocab[a]! && id > json.model.vocab[b]!);
    }
  });

  test("round trip on unseen text, including unicode", () => {
    for (const s of UNSEEN) assert.equal(tok.decode(tok.encode(s).ids), s);
    assert.ok(tok.encode("babe kiko").ids.length < "babe kiko".length, "merges compress seen words");
  });

  test("deterministic: two runs give identical JSON", () => {
    const again = trainByteLevelBPE(texts, { vocabSize: 1000, specialTokens: specials });
    assert.equal(JSON.stringify(again), JSON.stringify(json));
  });

  test("ties go to the smaller (left id, right id) pair; minFrequency stops training", () => {
    const j = trainByteLevelBPE(["ab cd"], { vocabSize: 300, minFrequency: 1 });
    assert.deepEqual(j.model.merges, [
      ["a", "b"],
      ["c", "d"],
      ["Ġ", "cd"],
    ]);
    assert.equal(trainByteLevelBPE(["ab cd"], { vocabSize: 300 }).model.merges.length, 0);
    assert.deepEqual(trainByteLevelBPE(["aa aa"], { vocabSize: 300, minFrequency: 2 }).model.merges[0], ["a", "a"]);
  });

  test("bad options are typed errors", () => {
    assert.throws(
      () => trainByteLevelBPE(["x"], { vocabSize: 100 }),
      (e: unknown) => e instanceof TokenizerError && e.key === "vocabSize",
    );
    assert.throws(() => trainByteLevelBPE(["x"], { vocabSize: 300, specialTokens: ["a", "a"] }), TokenizerError);
  });

  test("4k vocab on ~5 MB of text well under a minute", () => {
    const big = corpus(5_000_000, 11);
    const t0 = performance.now();
    const j = trainByteLevelBPE(big, { vocabSize: 4096, specialTokens: ["<|endoftext|>"] });
    const ms = performance.now() - t0;
    assert.equal(Object.keys(j.model.vocab).length + 1, 4096);
    assert.ok(ms < 60_000, `took ${ms.toFixed(0)} ms`);
    const t = Tokenizer.fromJSON(j);
    for (const s of UNSEEN) assert.equal(t.decode(t.encode(s).ids), s);
  });
});
