// Small models learn: an MLP and a CNN on seeded synthetic tasks reach a stated loss within a few
// seconds on the reference backend.
import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, noGrad } from "../../src/autograd/index.ts";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import { AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, ReLU, Sequential, Tanh } from "../../src/nn/index.ts";
import { argmax, crossEntropy, mseLoss } from "../../src/ops/index.ts";
import { AdamW, clipGradNorm, getCosineScheduleWithWarmup, SGD } from "../../src/optim/index.ts";
import { Generator, manualSeed } from "../../src/tensor/rng.ts";
import { type Tensor, tensor } from "../../src/tensor/tensor.ts";

setBackend(referenceBackend);

test("MLP regresses y = sin(x0) + x1*x2 to MSE < 0.03", (t) => {
  manualSeed(0);
  const g = new Generator(100);
  const n = 128;
  const xs = Float32Array.from({ length: n * 3 }, () => g.random() * 4 - 2);
  const ys = Float32Array.from({ length: n }, (_, i) => Math.sin(xs[3 * i]) + xs[3 * i + 1] * xs[3 * i + 2]);
  const x = tensor(xs, { shape: [n, 3] });
  const y = tensor(ys, { shape: [n, 1] });
  const mlp = new Sequential(new Linear(3, 32), new Tanh(), new Linear(32, 32), new Tanh(), new Linear(32, 1));
  const steps = 150;
  const opt = new AdamW(mlp.parameters(), { lr: 2e-2, weightDecay: 0 });
  const sched = getCosineScheduleWithWarmup(opt, 10, steps);
  const start = Date.now();
  let first = 0;
  let loss = Number.POSITIVE_INFINITY;
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const l = mseLoss(mlp.forward(x), y);
    backward(l);
    clipGradNorm(mlp.parameters(), 5);
    opt.step();
    sched.step();
    loss = l.item();
    if (s === 0) first = loss;
  }
  t.diagnostic(`MLP: loss ${first.toFixed(3)} -> ${loss.toFixed(4)} in ${Date.now() - start} ms`);
  assert.ok(loss < 0.03, `final MSE ${loss}`);
});

/** 8x8 one-channel images: class 0 = horizontal bar, 1 = vertical bar, 2 = diagonal; plus noise. */
function shapesData(n: number, g: Generator): [Tensor, Tensor] {
  const px = new Float32Array(n * 64);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    labels[i] = c;
    const k = 1 + g.randint(0, 6);
    for (let r = 0; r < 8; r++)
      for (let q = 0; q < 8; q++) {
        const on = c === 0 ? r === k : c === 1 ? q === k : r === q;
        px[i * 64 + r * 8 + q] = (on ? 1 : 0) + 0.3 * g.normal();
      }
  }
  return [tensor(px, { shape: [n, 1, 8, 8] }), tensor(labels, { shape: [n] })];
}

test("CNN with BatchNorm classifies bar orientation to cross-entropy < 0.1 and held-out accuracy >= 90%", (t) => {
  manualSeed(1);
  const g = new Generator(200);
  const [x, y] = shapesData(96, g);
  const cnn = new Sequential(
    new Conv2d(1, 4, 3, { padding: 1 }),
    new BatchNorm2d(4),
    new ReLU(),
    new Conv2d(4, 6, 3, { padding: 1, stride: 2 }),
    new BatchNorm2d(6),
    new ReLU(),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(6, 3),
  );
  const opt = new SGD(cnn.parameters(), { lr: 0.1, momentum: 0.9, weightDecay: 1e-4 });
  const start = Date.now();
  let loss = Number.POSITIVE_INFINITY;
  let first = 0;
  cnn.train();
  for (let s = 0; s < 40; s++) {
    const idx = (s * 24) % 96;
    const xb = x.slice(0, idx, idx + 24);
    const yb = y.slice(0, idx, idx + 24);
    opt.zeroGrad();
    const l = crossEntropy(cnn.forward(xb), yb);
    backward(l);
    opt.step();
    if (s === 0) first = l.item();
  }
  cnn.eval();
  const [xt, yt] = shapesData(48, new Generator(300));
  noGrad(() => {
    loss = crossEntropy(cnn.forward(x), y).item();
    const pred = argmax(cnn.forward(xt), -1).toList();
    const acc = pred.filter((p, i) => p === yt.toList()[i]).length / pred.length;
    t.diagnostic(
      `CNN: loss ${first.toFixed(3)} -> ${loss.toFixed(4)} (eval mode), held-out accuracy ${acc} in ${Date.now() - start} ms`,
    );
    assert.ok(acc >= 0.9, `held-out accuracy ${acc}`);
  });
  assert.ok(loss < 0.1, `final eval-mode cross-entropy ${loss}`);
});
