// The loop: gradient accumulation equals the big batch; non-finite steps leave weights and
// optimizer state bitwise untouched and halt after K; early stopping restores the best weights;
// two-phase switches the trainable set and the learning rate in one metrics stream.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Module } from "../../src/nn/module.ts";
import { mul } from "../../src/ops/index.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { NonFiniteError, Trainer, type TrainerCallback } from "../../src/train/index.ts";
import { clsData, lmData, tinyModel } from "./helpers.ts";

const weights = (m: Module) => new Map(m.namedParameters().map(([n, p]) => [n, Float32Array.from(p.toFloat64Array())]));

test("4 micro-batches of uneven length = one batch of their union (LM token-count normalisation)", async () => {
  const data = lmData(8, 5);
  const lens = data.examples.map((e) => e.labels?.filter((x, t) => t > 0 && x !== -100).length);
  assert.ok(new Set(lens).size > 2, "token counts should differ");
  const run = async (batchSize: number, gradAccumulation: number) => {
    const m = tinyModel("gpt2", "causal-lm", {}, 4);
    await new Trainer({
      model: m,
      train: data,
      strategy: "full",
      optimizer: { name: "sgd", lr: 0.5, momentum: 0 },
      schedule: { name: "constant" },
      clipGradNorm: null,
      maxSteps: 1,
      batchSize,
      gradAccumulation,
      seed: 3,
      quiet: true,
    }).fit();
    return weights(m);
  };
  const big = await run(8, 1);
  const acc = await run(2, 4);
  const init = weights(tinyModel("gpt2", "causal-lm", {}, 4));
  let maxDiff = 0;
  let maxMove = 0;
  for (const [n, w] of big) {
    const a = acc.get(n) as Float32Array;
    const w0 = init.get(n) as Float32Array;
    for (let i = 0; i < w.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(w[i] - a[i]));
      maxMove = Math.max(maxMove, Math.abs(w[i] - w0[i]));
    }
  }
  assert.ok(maxMove > 1e-3, `the step should move the weights (max ${maxMove})`);
  assert.ok(maxDiff < 1e-6, `accumulated update differs by ${maxDiff}`);
});

/** Wraps a model: the loss becomes NaN for batches containing an example index in `poison`. */
class Poisoned extends Module {
  constructor(
    readonly inner: Module & { forward(x: Record<string, unknown>): { logits: Tensor; loss?: Tensor } },
    readonly poison: (ids: Tensor) => boolean,
  ) {
    super();
  }
  get task() {
    return (this.inner as unknown as { task: string }).task;
  }
  forward(x: Record<string, unknown>) {
    const out = this.inner.forward(x);
    return this.poison(x.inputIds as Tensor) ? { ...out, loss: mul(out.loss as Tensor, Number.NaN) } : out;
  }
}

test("non-finite loss: skip leaves weights and AdamW state bitwise untouched; halts after K in a row", async () => {
  const data = clsData(16, 3);
  data.examples[5].inputIds[0] = 2; // token 2 marks the poisoned example
  const m = new Poisoned(
    tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 }) as never,
    (ids) => ids.toList().includes(2),
  );
  const snaps: { step: number; skipped: boolean; w: Map<string, Float32Array>; opt: string }[] = [];
  let trainer: Trainer | null = null;
  const cb: TrainerCallback = {
    onStepEnd: (s) => {
      const sd = trainer?.optimizer.stateDict();
      const opt = JSON.stringify(sd, (_k, v) =>
        v && typeof v === "object" && "data" in v && "shape" in v ? Array.from((v as Tensor).toFloat64Array()) : v,
      );
      snaps.push({ step: s.step, skipped: s.skipped, w: weights(m), opt });
    },
  };
  trainer = new Trainer({
    model: m,
    train: data,
    strategy: "full",
    optimizer: { lr: 1e-2 },
    epochs: 2,
    batchSize: 4,
    seed: 1,
    quiet: true,
    callbacks: [cb],
    logEvery: 1,
  });
  const run = await trainer.fit();
  const skipped = snaps.filter((s) => s.skipped);
  assert.equal(skipped.length, 2, "one poisoned batch per epoch");
  assert.equal(run.skippedSteps, 2);
  for (const s of skipped) {
    const prev = snaps.find((x) => x.step === s.step - 1);
    if (!prev) continue; // skipped first step: nothing to compare against
    for (const [n, w] of s.w) assert.deepEqual(w, prev.w.get(n), `${n} changed during a skipped step`);
    assert.equal(s.opt, prev.opt, "optimizer state changed during a skipped step");
  }
  assert.equal(run.metrics.filter((r) => r.split === "train").at(-1)?.skippedSteps, 2);
  // Everything poisoned: halt after maxConsecutive, no final model.
  const all = new Poisoned(
    tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 }) as never,
    () => true,
  );
  await assert.rejects(
    new Trainer({
      model: all,
      train: data,
      strategy: "full",
      epochs: 3,
      batchSize: 4,
      quiet: true,
      nonFinite: { policy: "skip", maxConsecutive: 3 },
    }).fit(),
    (e: unknown) => e instanceof NonFiniteError && e.result?.skippedSteps === 3 && e.result.steps === 3,
  );
  await assert.rejects(
    new Trainer({
      model: all,
      train: data,
      strategy: "full",
      epochs: 3,
      batchSize: 4,
      quiet: true,
      nonFinite: { policy: "halt" },
    }).fit(),
    (e: unknown) => e instanceof NonFiniteError && e.result?.steps === 1,
  );
});

test("early stopping with restore-best puts back the weights of the best evaluation", async () => {
  // mode "max" on loss: the first evaluation is the best (loss falls), so restoring is visible.
  for (const runDir of [undefined, `/tmp/tunekit-es-${process.pid}`]) {
    const m = tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 });
    const at = new Map<number, Map<string, Float32Array>>();
    let step = 0;
    const cb: TrainerCallback = {
      onStepEnd: (s) => {
        step = s.step;
      },
      onEvaluate: () => {
        at.set(step, weights(m));
      },
    };
    const run = await new Trainer({
      model: m,
      train: clsData(32),
      eval: clsData(16, 8),
      strategy: "full",
      optimizer: { lr: 5e-3 },
      epochs: 6,
      batchSize: 8,
      evalEvery: 2,
      evalEachEpoch: false,
      earlyStopping: { metric: "loss", mode: "max", patience: 2 },
      checkpoint: { keepLast: 1 },
      quiet: true,
      callbacks: [cb],
      runDir,
    }).fit();
    const evals = run.metrics.filter((r) => r.split === "eval");
    const top = evals.reduce((a, b) => ((b.loss as number) > (a.loss as number) ? b : a));
    assert.equal(run.best?.step, top.step);
    assert.ok(run.steps < 24, `should stop early, ran ${run.steps}`);
    assert.equal(run.steps, top.step + 2 * 2, "stops after patience (2) evaluations without improvement");
    assert.notEqual(run.best?.step, run.steps);
    const best = at.get(top.step) as Map<string, Float32Array>;
    for (const [n, w] of weights(m)) assert.deepEqual(w, best.get(n), `${n} is not the best step's (runDir ${runDir})`);
    if (runDir) (await import("node:fs")).rmSync(runDir, { recursive: true, force: true });
  }
});

test("two-phase: head first at lr, then everything at lr*0.1, one metrics stream", async () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 });
  const seen: { step: number; phase: number; lr: number; trainable: number }[] = [];
  const cb: TrainerCallback = {
    onStepEnd: (s) =>
      void seen.push({ step: s.step, phase: s.phase, lr: s.lr, trainable: m.numParameters({ trainable: true }) }),
  };
  const run = await new Trainer({
    model: m,
    train: clsData(16),
    eval: clsData(8, 4),
    strategy: { name: "two-phase", headEpochs: 1, lrFactor: 0.1 },
    optimizer: { lr: 1e-2 },
    schedule: { name: "constant" },
    epochs: 1,
    batchSize: 4,
    logEvery: 1,
    quiet: true,
    callbacks: [cb],
  }).fit();
  assert.deepEqual(
    seen.map((s) => s.phase),
    [0, 0, 0, 0, 1, 1, 1, 1],
  );
  assert.ok(seen.slice(0, 4).every((s) => s.lr === 1e-2 && s.trainable === 64));
  assert.ok(seen.slice(4).every((s) => Math.abs(s.lr - 1e-3) < 1e-15 && s.trainable === m.numParameters()));
  assert.deepEqual(
    run.metrics.filter((r) => r.split === "train").map((r) => r.phase),
    [0, 0, 0, 0, 1, 1, 1, 1],
  );
  assert.equal(run.metrics.filter((r) => r.split === "eval").length, 2);
  assert.equal(run.record.freezeAudit?.verified, true);
});

test("two-phase with run-level early stopping: phase 1 never stops the run; restore-best is a phase-2 state", async () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 });
  const at = new Map<number, Map<string, Float32Array>>();
  let step = 0;
  const weights = () => new Map([...m.namedParameters()].map(([n, p]) => [n, Float32Array.from(p.toFloat64Array())]));
  const cb: TrainerCallback = {
    onStepEnd: (s) => {
      step = s.step;
    },
    onEvaluate: () => {
      at.set(step, weights());
    },
  };
  // The tiny eval split overfits: its loss bottoms out at step 2 of the head phase, so a run-level
  // early stop that judged phase 1 would end the run at step 4; phase 2 starts a fresh count.
  const run = await new Trainer({
    model: m,
    train: clsData(16),
    eval: clsData(8, 4),
    strategy: { name: "two-phase", headEpochs: 3, lrFactor: 0.1 },
    optimizer: { lr: 1e-2 },
    epochs: 4,
    batchSize: 4,
    evalEvery: 1,
    evalEachEpoch: false,
    earlyStopping: { metric: "loss", mode: "min", patience: 2 },
    quiet: true,
    callbacks: [cb],
  }).fit();
  const evals = run.metrics.filter((r) => r.split === "eval");
  assert.ok(
    evals.filter((r) => r.phase === 0).length === 12,
    "all 12 head-phase evaluations ran (an early stop there would cut phase 1 short)",
  );
  assert.ok(
    evals.some((r) => r.phase === 1),
    "the run reached phase 2",
  );
  const p2 = evals.filter((r) => r.phase === 1);
  const best = p2.reduce((a, b) => ((b.loss as number) < (a.loss as number) ? b : a));
  assert.equal(run.best?.step, best.step, "the best step is the best phase-2 evaluation");
  assert.ok(run.steps < 28, `stopped early in phase 2 (ran ${run.steps} of 28 steps)`);
  assert.equal(run.steps, best.step + 2, "stopped 2 evaluations (patience) after the phase-2 best");
  const want = at.get(best.step) as Map<string, Float32Array>;
  for (const [n, w] of weights()) assert.deepEqual(w, want.get(n), `${n} is not the restored phase-2 best`);
});
