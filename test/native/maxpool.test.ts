// Native max-pool 2d (16-lane vector path) against the reference backend: odd sizes (1, 7, 33,
// 40 = more than two lane blocks), every kernel/stride/padding mix up to 4x4, ceil mode, heavy
// ties, NaN and all -inf windows (torch: the first max in window order wins, the first NaN wins).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Pool2dParams } from "../../src/backend/backend.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, nat, randT, ref, rnd, skip, zerosT } from "./helpers.ts";

function outSize(h: number, k: number, s: number, p: number, ceil: boolean): number {
  const v = (h + 2 * p - k) / s;
  let o = (ceil ? Math.ceil(v) : Math.floor(v)) + 1;
  if (ceil && (o - 1) * s >= h + p) o--;
  return o;
}

type Fill = "random" | "ties" | "nan" | "neginf";
function input(shape: number[], fill: Fill): Tensor {
  const x = randT(shape);
  const d = x.data as Float32Array;
  for (let i = 0; i < d.length; i++) {
    if (fill === "ties") d[i] = Math.floor(rnd() * 3);
    else if (fill === "nan" && rnd() < 0.15) d[i] = Number.NaN;
    else if (fill === "neginf" && rnd() < 0.7) d[i] = Number.NEGATIVE_INFINITY;
  }
  return x;
}

function check(xs: number[], p: Pool2dParams, fill: Fill): void {
  const OH = outSize(xs[2], p.kernel[0], p.stride[0], p.padding[0], !!p.ceilMode);
  const OW = outSize(xs[3], p.kernel[1], p.stride[1], p.padding[1], !!p.ceilMode);
  if (OH <= 0 || OW <= 0) return;
  const ys = [xs[0], xs[1], OH, OW];
  const x = input(xs, fill);
  const [o1, o2] = [zerosT(ys), zerosT(ys)];
  const [i1, i2] = [zerosT(ys, "int32"), zerosT(ys, "int32")];
  const what = `${fill} ${xs} k${p.kernel} s${p.stride} p${p.padding}${p.ceilMode ? " ceil" : ""}`;
  nat().maxPool2d(x, o1, i1, p);
  ref.maxPool2d(x, o2, i2, p);
  assertClose(o1, o2, 0, `${what} values`);
  assert.deepEqual(Array.from(i1.data), Array.from(i2.data), `${what} indices`);
  const dy = randT(ys);
  const [d1, d2] = [zerosT(xs), zerosT(xs)];
  nat().maxPool2dBackward(dy, i1, d1);
  ref.maxPool2dBackward(dy, i2, d2);
  assertClose(d1, d2, 1e-6, `${what} backward`);
}

describe("native maxPool2d vector path", { skip }, () => {
  test("odd sizes x kernel/stride/padding/ceil, random values", () => {
    for (const [H, W] of [
      [1, 1],
      [7, 7],
      [33, 33],
      [7, 40],
      [33, 1],
      [1, 33],
    ])
      for (const kh of [1, 2, 3])
        for (const kw of [1, 3, 4])
          for (const s of [
            [1, 1],
            [2, 2],
            [3, 2],
          ] as [number, number][])
            for (const ceilMode of [false, true]) {
              const pad: [number, number] = [Math.floor(kh / 2), Math.floor(kw / 2)];
              check([1, 2, H, W], { kernel: [kh, kw], stride: s, padding: pad, ceilMode }, "random");
              check([1, 2, H, W], { kernel: [kh, kw], stride: s, padding: [0, 0], ceilMode }, "random");
            }
  });

  test("ties, NaN and all -inf windows keep the reference's first-in-window-order index", () => {
    for (const fill of ["ties", "nan", "neginf"] as Fill[])
      for (const [H, W] of [
        [7, 7],
        [33, 33],
        [9, 40],
      ])
        for (const [k, s, pd] of [
          [3, 2, 1],
          [2, 2, 0],
          [3, 1, 1],
          [4, 3, 2],
        ])
          for (const ceilMode of [false, true])
            check([2, 3, H, W], { kernel: [k, k], stride: [s, s], padding: [pd, pd], ceilMode }, fill);
  });

  test("closed-form cases: row-major first max, first NaN", () => {
    const p: Pool2dParams = { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
    // window [[1, 5], [5, 2]]: both 5s tie, the first in row-major order (index 1) wins
    const run = (vals: number[]) => {
      const x = new Tensor(Float32Array.from(vals), "float32", [1, 1, 2, 2]);
      const [o, i] = [zerosT([1, 1, 1, 1]), zerosT([1, 1, 1, 1], "int32")];
      nat().maxPool2d(x, o, i, p);
      return [o.data[0], i.data[0]];
    };
    assert.deepEqual(run([1, 5, 5, 2]), [5, 1]);
    assert.deepEqual(run([1, 2, 3, 4]), [4, 3]);
    const [v, at] = run([1, Number.NaN, 9, Number.NaN]);
    assert.ok(Number.isNaN(v));
    assert.equal(at, 1);
    const m = Number.NEGATIVE_INFINITY;
    assert.deepEqual(run([m, m, m, m]), [m, 0]);
  });
});
