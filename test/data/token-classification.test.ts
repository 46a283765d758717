// Token classification data (NER/POS): words + one tag per word, encoded as transformers' run_ner
// does (tag on each word's first sub-token, -100 elsewhere), checked against independent paths:
// encoding the joined sentence, a hand-written WordPiece vocabulary, and a trained tagger.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { collate, IGNORE_INDEX } from "../../src/data/batch.ts";
import { DataError } from "../../src/data/errors.ts";
import { loadTextDataset } from "../../src/data/text/dataset.ts";
import { encodeTextDataset } from "../../src/data/text/encode.ts";
import { prepareTextData } from "../../src/data/text/prepare.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { Tokenizer } from "../../src/tokenize/tokenizer.ts";
import { Trainer } from "../../src/train/index.ts";
import { bertPostProcessor, FIXTURES } from "../helpers.ts";
import { tinyModel } from "../train/helpers.ts";

const tmp = mkdtempSync(join(tmpdir(), "tunekit-ner-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const TOK = "token-classification" as const;

/** A BERT-style WordPiece tokenizer over a hand-written vocabulary ([CLS] text [SEP], lowercased). */
function wordPiece(): Tokenizer {
  const words = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "eu",
    "re",
    "##ject",
    "##s",
    "german",
    "call",
    ".",
    "to",
    "boy",
    "##cott",
  ];
  const vocab = Object.fromEntries(words.map((w, i) => [w, i]));
  const special = (content: string, id: number) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return Tokenizer.fromJSON(
    {
      version: "1.0",
      truncation: null,
      padding: null,
      added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].map((t, i) => special(t, i)),
      normalizer: {
        type: "BertNormalizer",
        clean_text: true,
        handle_chinese_chars: true,
        strip_accents: null,
        lowercase: true,
      },
      pre_tokenizer: { type: "BertPreTokenizer" },
      post_processor: bertPostProcessor(2, 3),
      decoder: { type: "WordPiece", prefix: "##", cleanup: true },
      model: {
        type: "WordPiece",
        unk_token: "[UNK]",
        continuing_subword_prefix: "##",
        max_input_chars_per_word: 100,
        vocab,
      },
    },
    { cls_token: "[CLS]", sep_token: "[SEP]", pad_token: "[PAD]", unk_token: "[UNK]", model_max_length: 32 },
  );
}

describe("Tokenizer.encodeWords", async () => {
  const chatml = await Tokenizer.fromDir(join(FIXTURES, "tokenize", "chatml"));

  test("WordPiece: word ids per token, the same ids as the joined sentence", () => {
    const tok = wordPiece();
    const words = ["EU", "rejects", "German", "call", "to", "boycott", "."];
    const enc = tok.encodeWords(words);
    assert.deepEqual(enc.tokens, [
      "[CLS]",
      "eu",
      "re",
      "##ject",
      "##s",
      "german",
      "call",
      "to",
      "boy",
      "##cott",
      ".",
      "[SEP]",
    ]);
    assert.deepEqual(enc.wordIds, [null, 0, 1, 1, 1, 2, 3, 4, 5, 5, 6, null]);
    assert.deepEqual(enc.ids, tok.encode(words.join(" ")).ids);
  });

  test("byte-level BPE: a space before every word (add_prefix_space), same ids as ' ' + the joined words", () => {
    const words = ["What", "is", "the", "capital", "of", "France", "?"];
    const enc = chatml.encodeWords(words, { addSpecialTokens: false });
    assert.deepEqual(enc.ids, chatml.encode(` ${words.join(" ")}`, { addSpecialTokens: false }).ids);
    // Each word's tokens decode to that word with its space.
    words.forEach((w, i) => {
      const ids = enc.ids.filter((_, t) => enc.wordIds[t] === i);
      assert.equal(chatml.decode(ids), ` ${w}`);
    });
  });

  test("truncation keeps leading tokens and the special tokens", () => {
    const tok = wordPiece();
    const enc = tok.encodeWords(["EU", "rejects", "German"], { truncation: true, maxLength: 5 });
    assert.deepEqual(enc.tokens, ["[CLS]", "eu", "re", "##ject", "[SEP]"]);
    assert.deepEqual(enc.wordIds, [null, 0, 1, 1, null]);
  });
});

describe("token-classification datasets", () => {
  const jsonl = join(tmp, "ner.jsonl");
  writeFileSync(
    jsonl,
    [
      { tokens: ["EU", "rejects", "German", "call"], ner_tags: ["B-ORG", "O", "B-MISC", "O"] },
      { tokens: ["to", "boycott", "."], ner_tags: ["O", "O", "O"] },
    ]
      .map((r) => JSON.stringify(r))
      .join("\n"),
  );

  test("JSONL lists, mapped column, tags sorted into a label set; first sub-token carries the tag", async () => {
    const ds = await loadTextDataset(jsonl, { task: TOK, columns: { tags: "ner_tags" } });
    assert.deepEqual(ds.labels?.names, ["B-MISC", "B-ORG", "O"]);
    const enc = encodeTextDataset(ds, wordPiece(), { maxLength: 32 });
    const [O, MISC, ORG, X] = [2, 0, 1, IGNORE_INDEX];
    // [CLS] eu re ##ject ##s german call [SEP]
    assert.deepEqual(enc.examples[0].tokenLabels, [X, ORG, O, X, X, MISC, O, X]);
    assert.deepEqual(enc.examples[1].tokenLabels, [X, O, O, X, O, X]);
    const b = collate(enc.examples, [0, 1], { padTokenId: 0 });
    assert.deepEqual(b.labels.shape, [2, 8]);
    assert.deepEqual([...b.labels.toFloat64Array().slice(8)], [X, O, O, X, O, X, X, X]);
    assert.equal(b.numTargets, 4 + 3, "one target per word");
  });

  test("CSV/TSV: whitespace-separated words and tags; integer tags with given names", async () => {
    const tsv = join(tmp, "ner.tsv");
    writeFileSync(tsv, "tokens\ttags\nEU rejects German call\t1 2 0 2\nto boycott .\t2 2 2\n");
    const ds = await loadTextDataset(tsv, { task: TOK, labels: ["B-MISC", "B-ORG", "O"] });
    assert.deepEqual(
      ds.examples.map((e) => (e.kind === "tokens" ? e.tags : [])),
      [
        [1, 2, 0, 2],
        [2, 2, 2],
      ],
    );
  });

  test("bad records name the file and line: tag count, an unknown tag, a missing column", async () => {
    const bad = join(tmp, "bad.jsonl");
    writeFileSync(
      bad,
      `${JSON.stringify({ tokens: ["a", "b"], tags: ["O", "O"] })}\n${JSON.stringify({ tokens: ["a", "b"], tags: ["O"] })}\n`,
    );
    await assert.rejects(loadTextDataset(bad, { task: TOK }), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, /bad\.jsonl:2.*2 tokens but 1 tags/);
      return true;
    });
    const skipped = await loadTextDataset(bad, { task: TOK, skipInvalid: true, labels: ["O", "B-X"] });
    assert.deepEqual(
      skipped.skipped.map((s) => s.line),
      [2],
    );
    const unknown = join(tmp, "unknown.jsonl");
    writeFileSync(unknown, `${JSON.stringify({ tokens: ["a"], tags: ["B-PER"] })}\n`);
    await assert.rejects(loadTextDataset(unknown, { task: TOK, labels: ["O", "B-LOC"] }), /unknown\.jsonl:1.*B-PER/);
    await assert.rejects(loadTextDataset(jsonl, { task: TOK }), /no column "tags".*columns: \{ tags:/);
  });

  test("a tiny DistilBERT learns a word-level tagging rule (eval accuracy per word)", async () => {
    // Tag = whether the word is an entity; contexts are random filler, so only the word itself
    // tells. Multi-piece words ("rejects" = re ##ject ##s) check that only first pieces count.
    const entities = ["EU", "German"];
    const filler = ["rejects", "call", "to", "boycott", "."];
    const g = new Generator(3);
    const rows = Array.from({ length: 96 }, () => {
      const n = 3 + g.randint(0, 5);
      const tokens = Array.from({ length: n }, () =>
        g.randint(0, 3) === 0 ? entities[g.randint(0, entities.length)] : filler[g.randint(0, filler.length)],
      );
      return { tokens, tags: tokens.map((w) => (entities.includes(w) ? "B-ENT" : "O")) };
    });
    const file = join(tmp, "entities.jsonl");
    writeFileSync(file, rows.map((r) => JSON.stringify(r)).join("\n"));
    const tok = wordPiece();
    const data = await prepareTextData({ train: file, task: TOK, tokenizer: tok, validationSplit: 0.25, seed: 1 });
    const model = tinyModel("distilbert", "token-classification", {
      num_labels: 2,
      id2label: { 0: "B-ENT", 1: "O" },
      label2id: { "B-ENT": 0, O: 1 },
    });
    const run = await new Trainer({
      model,
      train: data.train,
      eval: data.validation,
      strategy: "full",
      optimizer: { lr: 3e-3 },
      epochs: 4,
      batchSize: 8,
      quiet: true,
      seed: 1,
    }).fit();
    const evals = run.metrics.filter((r) => r.split === "eval");
    const acc = evals.at(-1)?.accuracy as number;
    assert.ok(acc === 1, `word accuracy ${acc} after training (first eval ${evals[0]?.accuracy})`);
    // Every eval row is one word: the confusion matrix counts words, not sub-tokens.
    const words = data.validation!.sources.reduce((a, s) => a + (s.kind === "tokens" ? s.tokens.length : 0), 0);
    const counted = run.eval!.confusion!.flat().reduce((a, b) => a + b, 0);
    assert.equal(counted, words);
  });
});
