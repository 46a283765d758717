// Token classification from the command line: `tunekit train --task token-classification` on a
// words + tags JSONL, then `eval` counts words and `predict` tags each word of a sentence with the
// same numbers the saved model gives in-process.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { noGrad } from "../../src/autograd/tape.ts";
import { loadPretrained } from "../../src/models/pretrained.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import type { Tokenizer } from "../../src/tokenize/tokenizer.ts";
import { DISTILBERT, tunekit } from "./run-cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "tunekit-cli-ner-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

test("train, eval and predict a token classifier", async () => {
  const rows = [
    { words: ["Alice", "met", "Bob", "in", "Paris"], ner_tags: ["B-PER", "O", "B-PER", "O", "B-LOC"] },
    { words: ["Bob", "likes", "Rome"], ner_tags: ["B-PER", "O", "B-LOC"] },
    { words: ["we", "went", "to", "Oslo", "."], ner_tags: ["O", "O", "O", "B-LOC", "O"] },
  ];
  const data = join(tmp, "ner.jsonl");
  writeFileSync(data, `${[...rows, ...rows, ...rows].map((r) => JSON.stringify(r)).join("\n")}\n`);
  const out = join(tmp, "run");
  const tr = await tunekit(
    "train",
    "--model",
    DISTILBERT,
    "--data",
    data,
    "--task",
    "token-classification",
    "data.columns.tokens=words",
    "data.columns.tags=ner_tags",
    "data.validationSplit=0",
    "--max-steps",
    "3",
    "--lr",
    "1e-3",
    "--out",
    out,
    "--quiet",
  );
  assert.equal(tr.code, 0, tr.stderr);
  const cfg = JSON.parse(readFileSync(join(out, "model", "config.json"), "utf8"));
  assert.deepEqual(cfg.architectures, ["DistilBertForTokenClassification"]);
  assert.deepEqual(Object.values(cfg.id2label), ["B-LOC", "B-PER", "O"]);

  const ev = await tunekit(
    "eval",
    "--model",
    out,
    "--data",
    data,
    "--json",
    "--column",
    "tokens=words",
    "--column",
    "tags=ner_tags",
  );
  assert.equal(ev.code, 0, ev.stderr);
  const j = JSON.parse(ev.stdout);
  const words = 3 * rows.reduce((a, r) => a + r.words.length, 0);
  assert.equal(
    j.confusion.flat().reduce((a: number, b: number) => a + b, 0),
    words,
    "eval counts one prediction per word",
  );

  const sentence = "Alice went to Rome";
  const pr = await tunekit("predict", "--model", out, "--input", sentence, "--json", "--top-k", "3");
  assert.equal(pr.code, 0, pr.stderr);
  const p = JSON.parse(pr.stdout.trim());
  assert.deepEqual(
    p.words.map((w: { word: string }) => w.word),
    ["Alice", "went", "to", "Rome"],
  );
  // The same probabilities in-process, read at each word's first sub-token.
  const m = await loadPretrained(join(out, "model"), { onWarning: () => {} });
  const tok = m.tokenizer as Tokenizer;
  const enc = tok.encodeWords(sentence.split(" "));
  const T = enc.ids.length;
  const logits = noGrad(() =>
    (m as unknown as { forward(x: Record<string, unknown>): { logits: Tensor } })
      .forward({
        inputIds: new Tensor(Int32Array.from(enc.ids), "int32", [1, T]),
        attentionMask: new Tensor(new Int32Array(T).fill(1), "int32", [1, T]),
      })
      .logits.toFloat64Array(),
  );
  const firsts = enc.wordIds.flatMap((w, t) => (w !== null && enc.wordIds[t - 1] !== w ? [t] : []));
  firsts.forEach((t, i) => {
    const row = Array.from(logits.slice(t * 3, t * 3 + 3));
    const mx = Math.max(...row);
    const e = row.map((x) => Math.exp(x - mx));
    const s = e.reduce((a, b) => a + b, 0);
    for (const top of p.words[i].top)
      assert.ok(Math.abs(top.probability - e[top.id] / s) < 1e-5, `word ${i} ${top.label}`);
  });
});
