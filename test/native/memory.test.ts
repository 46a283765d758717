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

/**
 * Runs `step` 10,000 times after 1,000 warm-up steps, reading RSS (after a collection) every 1,000,
 * and returns the growth over the run estimated by the median pairwise slope (Theil-Sen): a leak
 * grows steadily, while the allocator occasionally keeps one more arena, a one-off step that a
 * first-vs-last comparison mistakes for a leak.
 */
function rssGrowth(step: () => void): { growth: number; readings: number[] } {
  for (let i = 0; i < 1000; i++) step();
  const readings: number[] = [];
  for (let k = 0; k <= 10; k++) {
    if (k > 0) for (let i = 0; i < 1000; i++) step();
    gc();
    readings.push(process.memoryUsage().rss);
  }
  const slopes: number[] = [];
  for (let i = 0; i < readings.length; i++) for (let j = i + 1; j < readings.length; j++) slopes.push((readings[j] - readings[i]) / (j - i));
  slopes.sort((a, b) => a - b);
  const median = slopes[Math.floor(slopes.length / 2)];
  return { growth: (median * 10) / readings[0], readings };
}

function assertFlat(r: { growth: number; readings: number[] }): void {
  const mib = r.readings.map((b) => (b / 2 ** 20).toFixed(1)).join(", ");
  assert.ok(r.growth < 0.05, `RSS trend ${(r.growth * 100).toFixed(1)}% over 10,000 steps (MiB every 1,000: ${mib})`);
}

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
  assertFlat(rssGrowth(step));
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
  assertFlat(rssGrowth(step));
});
