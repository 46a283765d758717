// Resident memory stays flat over 10,000 training-step-like iterations on the native backend
// (matmul forward, both backward matmuls into transposed views, accumulate, a fused kernel): no
// leaks in the addon or in buffers it holds from JS.
import assert from "node:assert/strict";
import { test } from "node:test";
import v8 from "node:v8";
import vm from "node:vm";
import { backward } from "../../src/autograd/index.ts";
import { setBackend } from "../../src/backend/index.ts";
import { Linear } from "../../src/nn/layers.ts";
import * as F from "../../src/ops/index.ts";
import { AdamW } from "../../src/optim/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randint, randn } from "../../src/tensor/tensor.ts";
import { nat, permutedView, randT, skip, zerosT } from "./helpers.ts";

// A real collection before each reading: without it RSS follows the collector's timing, not leaks.
v8.setFlagsFromString("--expose-gc");
const gc = vm.runInNewContext("gc") as () => void;

test("native: RSS flat over 10,000 matmul + backward iterations", { skip }, () => {
  const be = nat();
  const x = randT([64, 128]);
  const w = randT([128, 96]);
  const wT = permutedView([96, 128], [1, 0]);
  const step = () => {
    const y = zerosT([64, 96]);
    be.matmul(x, w, y);
    const dx = zerosT([64, 128]);
    be.matmul(y, wT, dx); // dy @ w^T through a transposed view
    const dw = zerosT([128, 96]);
    be.matmul(x.view_([128, 64], [1, 128], 0), y, dw, true); // x^T @ dy, accumulate
    const p = zerosT([64, 96]);
    be.fused.softmax?.(y, p, false);
  };
  for (let i = 0; i < 1000; i++) step();
  gc();
  const base = process.memoryUsage().rss;
  for (let i = 0; i < 10000; i++) step();
  gc();
  const end = process.memoryUsage().rss;
  const growth = (end - base) / base;
  assert.ok(growth < 0.05, `RSS grew ${(growth * 100).toFixed(1)}% (${(base / 2 ** 20).toFixed(1)} -> ${(end / 2 ** 20).toFixed(1)} MiB)`);
});

test("native: RSS flat over a 10,000-step training loop (autograd + AdamW)", { skip }, () => {
  setBackend(nat());
  manualSeed(0);
  const l1 = new Linear(32, 64);
  const l2 = new Linear(64, 10);
  const params = [...l1.parameters(), ...l2.parameters()];
  const opt = new AdamW(params, { lr: 1e-3 });
  const x = randn([16, 32]);
  const y = randint(0, 10, [16]);
  const step = () => {
    const loss = F.crossEntropy(l2.forward(F.gelu(l1.forward(x))), y);
    backward(loss);
    opt.step();
    opt.zeroGrad();
  };
  for (let i = 0; i < 1000; i++) step();
  gc();
  const base = process.memoryUsage().rss;
  for (let i = 0; i < 10000; i++) step();
  gc();
  const end = process.memoryUsage().rss;
  const growth = (end - base) / base;
  assert.ok(growth < 0.05, `RSS grew ${(growth * 100).toFixed(1)}% (${(base / 2 ** 20).toFixed(1)} -> ${(end / 2 ** 20).toFixed(1)} MiB)`);
});
