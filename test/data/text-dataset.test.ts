import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DataError } from "../../src/data/errors.ts";
import { type ClassificationExample, loadTextDataset } from "../../src/data/text/dataset.ts";
import { LabelSet, labelNamesFromConfig } from "../../src/data/text/labels.ts";
import { FIXTURES } from "../helpers.ts";

const DIR = join(FIXTURES, "data", "text");
const f = (name: string) => join(DIR, name);
const CLS = "text-classification" as const;

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<DataError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DataError, `expected a DataError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, re);
  return caught;
}

const labelsOf = (ex: unknown[]) => (ex as ClassificationExample[]).map((e) => e.label);

describe("text datasets: column mapping and labels", () => {
  test("CSV with mapped columns; label names sorted into ids", async () => {
    const ds = await loadTextDataset(f("reviews.csv"), { task: CLS, columns: { text: "review", label: "sentiment" } });
    assert.equal(ds.examples.length, 12);
    assert.deepEqual(ds.labels!.names, ["negative", "neutral", "positive"]);
    assert.deepEqual(ds.labels!.id2label, { 0: "negative", 1: "neutral", 2: "positive" });
    assert.deepEqual(ds.labels!.label2id, { negative: 0, neutral: 1, positive: 2 });
    const first = ds.examples[0] as ClassificationExample;
    assert.deepEqual(first, {
      kind: "classification",
      file: f("reviews.csv"),
      line: 2,
      text: "A great film, I loved it",
      label: 2,
    });
    assert.deepEqual(labelsOf(ds.examples).slice(0, 4), [2, 0, 1, 2]);
    assert.equal(ds.problemType, "single_label_classification");
  });

  test("same labels from TSV, JSONL and Parquet", async () => {
    const tsv = await loadTextDataset(f("reviews.tsv"), { task: CLS, columns: { text: "review", label: "sentiment" } });
    const jsonl = await loadTextDataset(f("reviews.jsonl"), { task: CLS });
    assert.deepEqual(labelsOf(tsv.examples), [2, 0, 1, 2]);
    assert.deepEqual(labelsOf(jsonl.examples), [2, 0, 1, 2]);
    assert.deepEqual(
      jsonl.examples.map((e) => e.line),
      [1, 2, 4, 5],
    );
  });

  test("Parquet: a null label is a bad value at its row; skipInvalid drops it", async () => {
    await rejectsWith(
      loadTextDataset(f("reviews.parquet"), { task: CLS }),
      "bad_value",
      /reviews\.parquet:5: column "label" must be a label, got null/,
    );
    const ds = await loadTextDataset(f("reviews.parquet"), { task: CLS, skipInvalid: true });
    assert.deepEqual(
      ds.examples.map((e) => e.line),
      [1, 2, 3, 4, 6, 7],
    );
    assert.deepEqual(ds.skipped, [
      { file: f("reviews.parquet"), line: 5, reason: 'column "label" must be a label, got null' },
    ]);
    assert.equal((ds.examples[4] as ClassificationExample).text, "Déjà vu, but fun 🎬");
  });

  test("text pairs with integer labels: ids used as is, names LABEL_i", async () => {
    const ds = await loadTextDataset(f("pairs.jsonl"), {
      task: CLS,
      columns: { text: "premise", text_pair: "hypothesis" },
    });
    assert.deepEqual(ds.labels!.names, ["LABEL_0", "LABEL_1", "LABEL_2"]);
    assert.deepEqual(labelsOf(ds.examples), [0, 2, 0, 1]);
    assert.equal((ds.examples[1] as ClassificationExample).textPair, "Nobody eats");
  });

  test("given labels (validation): unknown label names file:line and suggests the closest", async () => {
    const names = ["negative", "neutral", "positive"];
    const e = await rejectsWith(
      loadTextDataset(f("reviews-val.csv"), {
        task: CLS,
        columns: { text: "review", label: "sentiment" },
        labels: names,
      }),
      "unknown_label",
      /reviews-val\.csv:4: unknown label "postive" \(did you mean "positive"\?\); known labels: "negative", "neutral", "positive"/,
    );
    assert.equal(e.line, 4);
    const ds = await loadTextDataset(f("reviews-val.csv"), {
      task: CLS,
      columns: { text: "review", label: "sentiment" },
      labels: names,
      skipInvalid: true,
    });
    assert.deepEqual(labelsOf(ds.examples), [2, 0, 1]);
    assert.equal(ds.skipped.length, 1);
    assert.equal(ds.skipped[0]!.line, 4);
  });

  test("given names also accept integer ids in range; the model config's defaults are ignored", () => {
    const set = LabelSet.fromNames(["NEG", "POS"]);
    assert.equal(set.resolve("POS", "x", 1), 1);
    assert.equal(set.resolve("0", "x", 1), 0);
    assert.equal(set.resolve(1, "x", 1), 1);
    assert.throws(() => set.resolve(2, "x.csv", 7), /x\.csv:7: unknown label "2"/);
    assert.throws(() => LabelSet.fromNames(["a", "a"]), /appears twice/);
    assert.deepEqual(labelNamesFromConfig({ id2label: { 0: "NEG", 1: "POS" } }), ["NEG", "POS"]);
    assert.equal(labelNamesFromConfig({ id2label: { 0: "LABEL_0", 1: "LABEL_1" } }), undefined);
    assert.equal(labelNamesFromConfig({}), undefined);
    assert.throws(() => labelNamesFromConfig({ id2label: { 0: "a", 5: "b" } }), /id2label must map the ids 0\.\.1/);
  });

  test("missing column: names the column, the columns found and the closest", async () => {
    await rejectsWith(
      loadTextDataset(f("reviews.csv"), { task: CLS, columns: { text: "reviw", label: "sentiment" } }),
      "missing_column",
      /reviews\.csv: no column "reviw"; the file has "review", "sentiment", "stars"\. Did you mean "review"\?/,
    );
    const e = await rejectsWith(
      loadTextDataset(f("reviews.csv"), { task: CLS }),
      "missing_column",
      /no column "text"; the file has "review", "sentiment", "stars"\. Map another column with columns: \{ text: "<name>" \}/,
    );
    assert.equal(e.key, "text");
    await rejectsWith(
      loadTextDataset(f("reviews.csv"), {
        task: CLS,
        columns: { text: "review", label: "sentiment", text_pair: "second" },
      }),
      "missing_column",
      /no column "second"/,
    );
  });

  test("a record without a required key (JSONL) is invalid at its line", async () => {
    const ds = await loadTextDataset(f("malformed.jsonl"), { task: CLS, skipInvalid: true });
    assert.deepEqual(
      ds.examples.map((e) => e.line),
      [1, 2, 4, 8],
    );
    assert.deepEqual(
      ds.skipped.slice(1).map((s) => `${s.line}: ${s.reason}`),
      [
        "5: expected a JSON object, got an array",
        '6: column "text" must be a string, got number 42',
        '7: the record has no "label"; it has "text"',
      ],
    );
    assert.equal(ds.skipped[0]!.line, 3);
    assert.match(ds.skipped[0]!.reason, /^not valid JSON: /);
    await rejectsWith(loadTextDataset(f("malformed.jsonl"), { task: CLS }), "bad_json", /malformed\.jsonl:3:/);
  });

  test("empty datasets", async () => {
    await rejectsWith(
      loadTextDataset(f("empty.csv"), { task: CLS }),
      "empty_dataset",
      /empty\.csv: the dataset has no records/,
    );
    await rejectsWith(
      loadTextDataset(f("empty.jsonl"), { task: "causal-lm" }),
      "empty_dataset",
      /empty\.jsonl: the dataset has no records/,
    );
  });

  test("one class only is refused for single-label classification", async () => {
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const p = join(await mkdtemp(join(tmpdir(), "tk-ds-")), "one.csv");
    await writeFile(p, "text,label\na,x\nb,x\n");
    await rejectsWith(loadTextDataset(p, { task: CLS }), "bad_labels", /only one class \("x"\)/);
  });

  test("multi-label: lists of names to sorted id lists", async () => {
    const ds = await loadTextDataset(f("multilabel.jsonl"), {
      task: CLS,
      columns: { label: "tags" },
      problemType: "multi_label_classification",
    });
    assert.deepEqual(ds.labels!.names, ["funny", "sad", "scary"]);
    assert.deepEqual(labelsOf(ds.examples), [[0, 1], [0], [2], [1, 2]]);
  });

  test("regression: numbers (strings in CSV) to float targets", async () => {
    const ds = await loadTextDataset(f("regression.csv"), {
      task: CLS,
      columns: { label: "score" },
      problemType: "regression",
    });
    assert.equal(ds.labels, undefined);
    assert.deepEqual(labelsOf(ds.examples), [[4.5], [1], [3]]);
  });

  test("causal LM: layout detected from the columns", async () => {
    assert.equal((await loadTextDataset(f("lm.jsonl"), { task: "causal-lm" })).lmFormat, "text");
    const pc = await loadTextDataset(f("prompts.jsonl"), { task: "causal-lm" });
    assert.equal(pc.lmFormat, "prompt-completion");
    assert.deepEqual(pc.examples[0], {
      kind: "prompt-completion",
      file: f("prompts.jsonl"),
      line: 1,
      prompt: "Translate to French: cat\n",
      completion: "chat",
    });
    const chat = await loadTextDataset(f("chat.jsonl"), { task: "causal-lm" });
    assert.equal(chat.lmFormat, "messages");
    assert.equal(chat.examples.length, 3);
  });

  test("chat: malformed messages are bad values at their line", async () => {
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const p = join(await mkdtemp(join(tmpdir(), "tk-ds-")), "chat.jsonl");
    await writeFile(
      p,
      '{"messages": [{"role": "user", "content": "hi"}]}\n{"messages": [{"role": "user"}]}\n{"messages": []}\n',
    );
    await rejectsWith(
      loadTextDataset(p, { task: "causal-lm" }),
      "bad_value",
      /chat\.jsonl:2: column "messages\[0\]\.content" must be a string, got nothing/,
    );
    const ds = await loadTextDataset(p, { task: "causal-lm", skipInvalid: true });
    assert.deepEqual(
      ds.skipped.map((s) => s.line),
      [2, 3],
    );
  });
});
