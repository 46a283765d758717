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
 * Runs `step` 10,000 times after 1,000 warm-up steps, reading memory (after a collection) every
 * 1,000 steps, and returns the growth per step estimated by the median pairwise slope (Theil-Sen)
 * of two readings: RSS (catches anything the addon mallocs and never frees) and the bytes held in
 * ArrayBuffers (every tensor buffer JS keeps alive; exact after a collection).
 */
function growth(step: () => void): { rssPerStep: number; bufPerStep: number; readings: string } {
  for (let i = 0; i < 1000; i++) step();
  const rss: number[] = [];
  const buf: number[] = [];
  for (let k = 0; k <= 10; k++) {
    if (k > 0) for (let i = 0; i < 1000; i++) step();
    gc();
    const m = process.memoryUsage();
    rss.push(m.rss);
    buf.push(m.arrayBuffers);
  }
  const readings = rss.map((b) => (b / 2 ** 20).toFixed(1)).join(", ");
  return { rssPerStep: theilSen(rss) / 1000, bufPerStep: theilSen(buf) / 1000, readings };
}

function theilSen(y: number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < y.length; i++) for (let j = i + 1; j < y.length; j++) slopes.push((y[j] - y[i]) / (j - i));
  slopes.sort((a, b) => a - b);
  return slopes[Math.floor(slopes.length / 2)];
}

/**
 * A leak of one buffer per step grows memory by at least that buffer's size per step, so the bound
 * is half the size of the buffer a leak would hold. The allocator keeping or returning a whole arena
 * (tens of MiB, seen on CI as RSS flipping between 86 and 117 MiB) is far below that over 10,000
 * steps, which a relative first-vs-last or percentage bound mistook for a leak.
 */
function assertFlat(r: ReturnType<typeof growth>, leakBytes: number): void {
  const bound = leakBytes / 2;
  assert.ok(r.bufPerStep < bound, `JS-held buffers grow ${r.bufPerStep.toFixed(0)} B/step (bound ${bound})`);
  assert.ok(
    r.rssPerStep < bound,
    `RSS grows ${r.rssPerStep.toFixed(0)} B/step (bound ${bound}; MiB every 1,000 steps: ${r.readings})`,
  );
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
  assertFlat(growth(step), 64 * 96 * 4);
});

test("native: RSS flat over a 10,000-step training loop (autograd + AdamW)", { skip }, () => {
  setBackend(nat());
  manualSeed(0);
  const l1 = new Linear(32, 256);
  const l2 = new Linear(256, 10);
  const params = [...l1.parameters(), ...l2.parameters()];
  const opt = new AdamW(params, { lr: 1e-3 });
  const x = randn([64, 32]);
  const y = randint(0, 10, [64]);
  const step = () => {
    const loss = F.crossEntropy(l2.forward(F.gelu(l1.forward(x))), y);
    backward(loss);
    opt.step();
    opt.zeroGrad();
  };
  assertFlat(growth(step), 64 * 256 * 4); // the hidden activation: a leaked step graph holds several
});
