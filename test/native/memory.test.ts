// Resident memory stays flat over 10,000 training-step-like iterations on the native backend
// (matmul forward, both backward matmuls into transposed views, accumulate, a fused kernel): no
// leaks in the addon or in buffers it holds from JS.
import assert from "node:assert/strict";
import { test } from "node:test";
import { nat, permutedView, randT, skip, zerosT } from "./helpers.ts";

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
  globalThis.gc?.();
  const base = process.memoryUsage().rss;
  for (let i = 0; i < 10000; i++) step();
  globalThis.gc?.();
  const end = process.memoryUsage().rss;
  const growth = (end - base) / base;
  assert.ok(growth < 0.05, `RSS grew ${(growth * 100).toFixed(1)}% (${(base / 2 ** 20).toFixed(1)} -> ${(end / 2 ** 20).toFixed(1)} MiB)`);
});
