// Checkpoint folders: the manifest (written last) detects a missing manifest, a truncated file and
// a flipped bit; resume falls back to the previous complete checkpoint with a warning. Plus the
// metrics helpers.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { tensor } from "../../src/tensor/tensor.ts";
import {
  checkpointName,
  classificationMetrics,
  EarlyStopping,
  findLatestCheckpoint,
  loadCheckpoint,
  multiLabelMetrics,
  perplexity,
  pruneCheckpoints,
  regressionMetrics,
  saveCheckpoint,
  Trainer,
  verifyCheckpoint,
} from "../../src/train/index.ts";
import { clsData, tinyModel } from "./helpers.ts";

const root = mkdtempSync(join(tmpdir(), "tunekit-ckpt-"));
after(() => rmSync(root, { recursive: true, force: true }));

const payload = (step: number) => ({
  model: new Map([["w", tensor([step, 2, 3])]]),
  optimizer: { state: { 0: { step, expAvg: tensor([0.5, 0.25, 0.125]) } }, paramGroups: [{ lr: 0.1, params: [0] }] },
  trainer: { step, loss: Number.NaN },
});

test("save/load round trip: tensors, optimizer state, JSON (NaN kept)", async () => {
  const dir = join(root, "rt", checkpointName(3));
  await saveCheckpoint(dir, payload(3));
  const p = await loadCheckpoint(dir);
  assert.deepEqual(p.model.get("w")?.toList(), [3, 2, 3]);
  assert.deepEqual((p.optimizer.state[0].expAvg as ReturnType<typeof tensor>).toList(), [0.5, 0.25, 0.125]);
  assert.equal(p.optimizer.state[0].step, 3);
  assert.ok(Number.isNaN(p.trainer.loss as number));
});

test("manifest catches truncation, bit flips and a missing manifest; resume takes the previous one", async () => {
  const ck = join(root, "fallback");
  for (const s of [1, 2, 3, 4]) await saveCheckpoint(join(ck, checkpointName(s)), payload(s));
  const warnings: string[] = [];
  assert.equal(await findLatestCheckpoint(ck, (w) => warnings.push(w)), join(ck, checkpointName(4)));
  // step 4: one flipped bit in the model file
  const f4 = join(ck, checkpointName(4), "model.safetensors");
  const b = readFileSync(f4);
  b[b.length - 1] ^= 1;
  writeFileSync(f4, b);
  await assert.rejects(verifyCheckpoint(join(ck, checkpointName(4))), /SHA-256/);
  // step 3: truncated optimizer file
  const f3 = join(ck, checkpointName(3), "optimizer.safetensors");
  truncateSync(f3, readFileSync(f3).length - 5);
  await assert.rejects(verifyCheckpoint(join(ck, checkpointName(3))), /truncated/);
  // step 2: no manifest (killed before it was written)
  unlinkSync(join(ck, checkpointName(2), "manifest.json"));
  assert.equal(await findLatestCheckpoint(ck, (w) => warnings.push(w)), join(ck, checkpointName(1)));
  assert.equal(warnings.length, 3);
  assert.match(
    warnings.join("\n"),
    /step-00000004.*SHA-256[\s\S]*step-00000003.*truncated[\s\S]*step-00000002.*incomplete/,
  );
  await pruneCheckpoints(ck, 1, new Set([join(ck, checkpointName(1))]));
  assert.equal(await findLatestCheckpoint(ck, () => {}), join(ck, checkpointName(1)));
});

test("trainer resume skips a bit-flipped newest checkpoint and ends like the uninterrupted run", async () => {
  const cfg = (runDir: string, resume: boolean, crashAt?: number) => ({
    model: tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 }),
    train: clsData(16),
    strategy: "full",
    optimizer: { lr: 1e-2 },
    maxSteps: 6,
    batchSize: 4,
    logEvery: 1,
    checkpoint: { every: 1, keepLast: 3 },
    runDir,
    resume,
    quiet: true,
    seed: 5,
    callbacks: crashAt
      ? [
          {
            onStepEnd: (s: { step: number }) => {
              if (s.step === crashAt) throw new Error("crash");
            },
          },
        ]
      : [],
  });
  await new Trainer(cfg(join(root, "ref"), false)).fit();
  const dir = join(root, "run");
  await assert.rejects(new Trainer(cfg(dir, false, 5)).fit(), /crash/);
  const f = join(dir, "checkpoints", checkpointName(4), "model.safetensors");
  const b = readFileSync(f);
  b[b.length - 3] ^= 0x10;
  writeFileSync(f, b);
  const warnings: string[] = [];
  const onWarn = (w: Error) => warnings.push(w.message);
  process.on("warning", onWarn);
  const run = await new Trainer(cfg(dir, true)).fit();
  await new Promise((r) => setImmediate(r));
  process.off("warning", onWarn);
  assert.equal(run.steps, 6);
  assert.ok(
    warnings.some((w) => /step-00000004.*SHA-256/.test(w)),
    warnings.join("\n"),
  );
  assert.equal(
    readFileSync(join(dir, "metrics.jsonl"), "utf8"),
    readFileSync(join(root, "ref", "metrics.jsonl"), "utf8"),
  );
  assert.ok(
    readFileSync(join(dir, "model", "model.safetensors")).equals(
      readFileSync(join(root, "ref", "model", "model.safetensors")),
    ),
  );
});

test("metrics: classification, multi-label, regression, perplexity, early stopping", () => {
  const m = classificationMetrics([0, 1, 1, 2, 2, 2], [0, 1, 0, 2, 2, 1], ["a", "b", "c"]);
  assert.equal(m.accuracy, 4 / 6);
  assert.deepEqual(m.confusion, [
    [1, 1, 0],
    [0, 1, 1],
    [0, 0, 2],
  ]);
  assert.deepEqual(
    m.perClass.map((c) => [c.precision, c.recall, c.support]),
    [
      [1, 0.5, 2],
      [0.5, 0.5, 2],
      [2 / 3, 1, 2],
    ],
  );
  assert.ok(Math.abs(m.f1Macro - (2 / 3 + 0.5 + 0.8) / 3) < 1e-12);
  const ml = multiLabelMetrics(
    [
      [0.9, 0.1],
      [0.6, 0.7],
    ],
    [
      [1, 0],
      [1, 0],
    ],
  );
  assert.equal(ml.accuracy, 0.5);
  assert.ok(Math.abs(ml.f1Micro - 0.8) < 1e-12);
  const r = regressionMetrics([1, 2, 3], [1, 2, 5]);
  assert.deepEqual([r.mse, r.mae], [4 / 3, 2 / 3]);
  assert.ok(Math.abs(perplexity(Math.log(7)) - 7) < 1e-12);
  const es = new EarlyStopping({ metric: "accuracy", patience: 2 });
  assert.equal(es.mode, "max");
  assert.deepEqual(
    [0.5, 0.6, 0.55, 0.7, 0.69, 0.65].map((v, i) => es.update(v, i).stop),
    [false, false, false, false, false, true],
  );
  assert.equal(es.bestStep, 3);
});
