// Native fused batch-norm and clamp kernels against the reference backend's (plain TS, float64
// accumulation), on odd shapes: 1, 7, 33 channels, N = 1, planes of 1, 7, 33 and 49 elements,
// offset data (statistics far from zero), every null/non-null combination of the optional tensors.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { FusedKernels } from "../../src/backend/backend.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, nat, randT, ref, skip, zerosT } from "./helpers.ts";

const kn = () => nat().fused as Required<FusedKernels>;
const kr = () => ref.fused as Required<FusedKernels>;
const shift = (t: Tensor, by: number) => {
  for (let i = 0; i < t.data.length; i++) t.data[i] = (t.data[i] as number) + by;
  return t;
};
/** A (C) vector stored at an offset inside a larger array (the kernels take offsets). */
function offsetVec(C: number, lo: number, hi: number): Tensor {
  const big = randT([C + 3], lo, hi);
  return big.view_([C], [1], 3);
}

const SHAPES: number[][] = [
  [1, 1, 7],
  [1, 7, 33],
  [2, 33, 49],
  [3, 7, 1],
  [5, 1, 33],
  [1, 33, 7],
  [4, 7],
];

describe("native batch norm vs reference", { skip }, () => {
  for (const training of [true, false]) {
    test(`forward and backward, training=${training}`, () => {
      for (const shape of SHAPES) {
        const x = shift(randT(shape, -2, 2), 5);
        const N = shape[0];
        const C = shape[1];
        const S = shape.length > 2 ? shape[2] : 1;
        for (const affine of [0, 1, 2, 3]) {
          const w = affine & 1 ? offsetVec(C, 0.5, 1.5) : null;
          const b = affine & 2 ? offsetVec(C, -1, 1) : null;
          const evalMean = shift(randT([C], -1, 1), 5);
          const evalRstd = randT([C], 0.5, 2);
          const run = (k: Required<FusedKernels>) => {
            const out = zerosT(shape);
            const mean = training ? zerosT([C]) : evalMean;
            const rstd = training ? zerosT([C]) : evalRstd;
            const v = training ? zerosT([C]) : null;
            k.batchNorm(x, w, b, training, 1e-5, out, mean, v, rstd);
            return { out, mean, rstd, v };
          };
          const a = run(kn());
          const e = run(kr());
          const what = `${shape} training=${training} affine=${affine}`;
          if (training) {
            assertClose(a.mean, e.mean, 1e-6, `mean ${what}`);
            assertClose(a.v!, e.v!, 1e-5, `var ${what}`);
            assertClose(a.rstd, e.rstd, 1e-5, `rstd ${what}`);
          }
          // same statistics on both sides for the normalise pass and the backward
          const out = zerosT(shape);
          kn().batchNorm(x, w, b, false, 1e-5, out, e.mean, null, e.rstd);
          assertClose(out, e.out, 1e-5, `out ${what}`);
          assertClose(a.out, e.out, 1e-5, `out (own stats) ${what}`);
          const dy = randT(shape, -1, 1);
          for (const need of [7, 1, 6, 4]) {
            const grads = () => ({
              dx: need & 1 ? zerosT(shape) : null,
              dw: need & 2 ? zerosT([C]) : null,
              db: need & 4 ? zerosT([C]) : null,
            });
            const gn = grads();
            const gr = grads();
            kn().batchNormBackward(x, w, e.mean, e.rstd, dy, training, gn.dx, gn.dw, gn.db);
            kr().batchNormBackward(x, w, e.mean, e.rstd, dy, training, gr.dx, gr.dw, gr.db);
            // dw/db are sums over N*S terms of size ~1: compare relative to that scale
            const scale = Math.sqrt(N * S);
            if (gn.dx) assertClose(gn.dx, gr.dx!, 1e-5, `dx ${what} need=${need}`);
            if (gn.dw)
              assertClose(
                gn.dw.toFloat64Array().map((u) => u / scale),
                gr.dw!.toFloat64Array().map((u) => u / scale),
                1e-5,
                `dw ${what}`,
              );
            if (gn.db)
              assertClose(
                gn.db.toFloat64Array().map((u) => u / scale),
                gr.db!.toFloat64Array().map((u) => u / scale),
                1e-5,
                `db ${what}`,
              );
          }
        }
      }
    });
  }

  test("near-constant channels: the shifted single-pass variance does not cancel", () => {
    // var 1e-6 on a mean of 1000: a naive E[x^2] - E[x]^2 in float would lose every digit
    const x = shift(randT([4, 3, 33], -1e-3, 1e-3), 1000);
    const run = (k: Required<FusedKernels>) => {
      const o = { out: zerosT(x.shape), mean: zerosT([3]), v: zerosT([3]), rstd: zerosT([3]) };
      k.batchNorm(x, null, null, true, 1e-9, o.out, o.mean, o.v, o.rstd);
      return o;
    };
    const a = run(kn());
    const e = run(kr());
    assertClose(a.v, e.v, 1e-4, "var");
    assertClose(a.out, e.out, 1e-3, "out");
  });
});

describe("native clamp vs reference", { skip }, () => {
  test("forward and both backward conventions, boundaries and NaN included", () => {
    for (const n of [1, 7, 33, 70001]) {
      const x = randT([n], -8, 8);
      const edges = [0, 6, -0.5, 0.7, Number.NaN, -1, 1];
      for (let i = 0; i < Math.min(n, edges.length); i++) x.data[(i * 7919) % n] = Math.fround(edges[i]);
      const dy = randT([n], -1, 1);
      for (const [lo, hi] of [
        [0, 6],
        [-0.5, 0.7],
        [-1, 1],
        [Number.NEGATIVE_INFINITY, 0.7],
        [-0.5, Number.POSITIVE_INFINITY],
      ]) {
        const a = zerosT([n]);
        const e = zerosT([n]);
        kn().clamp(x, lo, hi, a);
        kr().clamp(x, lo, hi, e);
        assert.deepEqual([...a.data], [...e.data], `clamp ${n} [${lo}, ${hi}]`);
        for (const inclusive of [true, false]) {
          const ga = zerosT([n]);
          const ge = zerosT([n]);
          kn().clampBackward(x, dy, lo, hi, inclusive, ga);
          kr().clampBackward(x, dy, lo, hi, inclusive, ge);
          assert.deepEqual([...ga.data], [...ge.data], `clampBackward ${n} [${lo}, ${hi}] inclusive=${inclusive}`);
        }
      }
    }
  });
});
