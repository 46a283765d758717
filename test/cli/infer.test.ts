// `tunekit eval`, `merge` and `predict` on runs made by `tunekit train` (tiny fixtures, a few steps).
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { noGrad } from "../../src/autograd/tape.ts";
import { loadPretrained } from "../../src/models/pretrained.ts";
import { loadAdapter } from "../../src/peft/index.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { CHAT, DISTILBERT, imageFolder, LLAMA, MOBILENET, REVIEWS, tunekit } from "./run-cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "tunekit-cli-infer-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const run = (name: string) => join(tmp, name);

async function train(name: string, ...args: string[]): Promise<void> {
  const r = await tunekit("train", ...args, "--out", run(name), "--quiet");
  assert.equal(r.code, 0, r.stderr);
}

type Fwd = { forward(x: Record<string, unknown>): { logits: Tensor } };
const logitsOf = (m: unknown, ids: number[]) =>
  noGrad(() =>
    (m as Fwd)
      .forward({ inputIds: new Tensor(Int32Array.from(ids), "int32", [1, ids.length]) })
      .logits.toFloat64Array(),
  );

describe("tunekit eval", () => {
  before(() =>
    train("text", "--model", DISTILBERT, "--data", REVIEWS, "--max-steps", "4", "--lr", "1e-3", "data.maxLength=64"),
  );

  test("metrics, per-class scores and the confusion matrix; the same from the run folder and its model/", async () => {
    const out = join(tmp, "eval.json");
    const r = await tunekit("eval", "--model", run("text"), "--data", REVIEWS, "--out", out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^accuracy +\d\.\d{4}$/m);
    assert.match(r.stdout, /^class +precision +recall +f1 +support\nneg .* 20\npos .* 20$/m);
    assert.match(r.stdout, /confusion \(rows = true, columns = predicted\): neg, pos/);
    const j = JSON.parse(readFileSync(out, "utf8"));
    assert.equal(j.numExamples, 40);
    assert.deepEqual(j.labels, ["neg", "pos"]);
    assert.equal(
      j.confusion.flat().reduce((a: number, b: number) => a + b, 0),
      40,
    );
    assert.match(r.stdout, new RegExp(`^accuracy +${j.metrics.accuracy.toFixed(4)}$`, "m"));
    const r2 = await tunekit("eval", "--model", join(run("text"), "model"), "--data", REVIEWS, "--json");
    assert.equal(r2.code, 0, r2.stderr);
    assert.deepEqual(JSON.parse(r2.stdout).metrics, j.metrics);
  });

  test("an unknown label in the data is a runtime error naming the file and line", async () => {
    const f = join(tmp, "bad-labels.csv");
    writeFileSync(f, "text,label\nthe film was fun,pos\nthe plot was dull,meh\n");
    const r = await tunekit("eval", "--model", run("text"), "--data", f);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /bad-labels\.csv:3.*meh/);
  });
});

describe("tunekit merge", () => {
  before(async () => {
    await train(
      "lm-lora",
      "--model",
      LLAMA,
      "--data",
      CHAT,
      "--strategy",
      "lora",
      "lora.targets=[q_proj,v_proj]",
      "lora.rank=4",
      "--max-steps",
      "3",
      "--batch-size",
      "4",
      "--lr",
      "5e-2",
      "data.maxLength=128",
    );
  });

  test("the merged folder loads as a plain model with the logits of base + adapter (1e-5)", async () => {
    const out = join(tmp, "merged-lm");
    const r = await tunekit("merge", "--adapter", run("lm-lora"), "--out", out);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /merged 4 LoRA layer\(s\)/);
    const merged = await loadPretrained(out, { onWarning: () => {} });
    assert.equal(merged.loadReport.newlyInitialized.length, 0);
    assert.ok(merged.tokenizer, "the tokenizer is written alongside");
    const base = await loadPretrained(LLAMA, { onWarning: () => {} });
    const ids = [1, 5, 40, 77, 200, 3, 9];
    const before = logitsOf(base, ids);
    await loadAdapter(base, join(run("lm-lora"), "adapter"));
    const want = logitsOf(base, ids);
    const got = logitsOf(merged, ids);
    let d = 0;
    let moved = 0;
    for (let i = 0; i < want.length; i++) {
      d = Math.max(d, Math.abs(want[i] - got[i]));
      moved = Math.max(moved, Math.abs(want[i] - before[i]));
    }
    assert.ok(moved > 1e-3, `the adapter changes the logits (${moved})`);
    assert.ok(d < 1e-5, `max |merged - adapter| = ${d}`);
  });

  test("a LoRA classifier: labels and head come through; predictions equal before and after merging", async () => {
    await train(
      "text-lora",
      "--model",
      DISTILBERT,
      "--data",
      REVIEWS,
      "--strategy",
      "lora",
      "lora.targets=[q_lin,v_lin]",
      "--max-steps",
      "3",
      "--lr",
      "1e-2",
      "data.maxLength=64",
    );
    const out = join(tmp, "merged-text");
    assert.equal((await tunekit("merge", "--adapter", run("text-lora"), "--out", out)).code, 0);
    const texts = ["--input", "the film was lovely", "--input", "the cast was awful and the plot was dull"];
    const a = await tunekit("predict", "--model", run("text-lora"), ...texts, "--json");
    const b = await tunekit("predict", "--model", out, ...texts, "--json");
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const pa = a.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const pb = b.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      pa.map((p) => p.top[0].label),
      pb.map((p) => p.top[0].label),
    );
    for (let i = 0; i < pa.length; i++) assert.ok(Math.abs(pa[i].top[0].probability - pb[i].top[0].probability) < 1e-5);
    assert.deepEqual(new Set(pa[0].top.map((t: { label: string }) => t.label)), new Set(["neg", "pos"]));
  });

  test("usage errors: not an adapter, an existing output without --force", async () => {
    const r = await tunekit("merge", "--adapter", DISTILBERT, "--out", join(tmp, "x"));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no adapter_config\.json/);
    const r2 = await tunekit("merge", "--adapter", run("lm-lora"), "--out", LLAMA);
    assert.equal(r2.code, 2);
    assert.match(r2.stderr, /already holds a model; use --force/);
  });
});

describe("tunekit predict", () => {
  let photos: string;
  before(async () => {
    photos = await imageFolder(join(tmp, "photos"), 6, 2);
    await train(
      "img",
      "--model",
      MOBILENET,
      "--data",
      photos,
      "--strategy",
      "head",
      "--max-steps",
      "3",
      "--batch-size",
      "4",
      "--lr",
      "1e-2",
      "data.image.size=32",
      "data.image.cropSize=32",
    );
  });

  test("image model: top-k classes with probabilities per file", async () => {
    const files = [join(photos, "red", "0.png"), join(photos, "blue", "1.png")];
    const r = await tunekit("predict", "--model", join(run("img"), "model"), ...files, "--top-k", "2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /red\/0\.png\n {1,3}\d+\.\d\d% {2}(red|blue)\n {1,3}\d+\.\d\d% {2}(red|blue)\n.*blue\/1\.png\n/,
    );
    const j = await tunekit("predict", "--model", join(run("img"), "model"), ...files, "--top-k", "1", "--json");
    const rows = j.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(rows.length, 2);
    assert.equal(rows[0].top.length, 1);
    assert.ok(rows.every((p: { top: { probability: number }[] }) => p.top[0].probability >= 0.5));
    // The run folder's model/ carries its preprocessor: it also loads without the run folder around it.
    assert.ok(JSON.parse(readFileSync(join(run("img"), "model", "preprocessor_config.json"), "utf8")).do_center_crop);
  });

  test("image model without files, text input to an image model: usage errors", async () => {
    const r = await tunekit("predict", "--model", run("img"));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no images/);
    assert.equal((await tunekit("predict", "--model", run("img"), "--input", "hi")).code, 2);
  });

  test("text classifier: --input and a file with one input per line", async () => {
    await train("text-p", "--model", DISTILBERT, "--data", REVIEWS, "--max-steps", "2", "data.maxLength=64");
    const f = join(tmp, "inputs.txt");
    writeFileSync(f, "the film was fun\n\nthe ending was bland\n");
    const r = await tunekit(
      "predict",
      "--model",
      run("text-p"),
      "--input",
      "the music was superb",
      f,
      "--top-k",
      "1",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    const rows = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      rows.map((p: { input: string }) => p.input),
      ["the music was superb", "the film was fun", "the ending was bland"],
    );
  });

  test("a causal LM goes to generate", async () => {
    const r = await tunekit("predict", "--model", LLAMA);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is a causal LM: use 'tunekit generate --model/);
    const g = await tunekit("predict", "--model", LLAMA, "--input", "Hi");
    assert.equal(g.code, 0, g.stderr);
    assert.match(g.stderr, /running 'tunekit generate/);
  });
});
