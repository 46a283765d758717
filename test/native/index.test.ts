// Native index_select / index_add (native/index.cc) against the reference loops: dims 0, 1 and
// last, odd shapes, non-contiguous inputs (permuted and sliced views), strided index vectors,
// repeated indices (index_add accumulates them in order), sizes large enough to thread, and the
// reference's IndexError for an out-of-range index (nothing written).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { IndexError } from "../../src/tensor/errors.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, nat, permutedView, randInt, randT, ref, skip, slicedView, zerosT } from "./helpers.ts";

const shapes: number[][] = [[7], [13, 5], [3, 17, 6], [2, 3, 5, 7], [1031, 67]];

/** Inputs of `shape` in three layouts: contiguous, permuted (reversed dims) and sliced. */
function views(shape: number[]): [string, Tensor][] {
  const rev = shape.map((_, i) => shape.length - 1 - i);
  return [
    ["contiguous", randT(shape)],
    ["permuted", permutedView(shape, rev)],
    ["sliced", slicedView(shape)],
  ];
}

/** n indices in [0, size) with repeats, optionally as a stride-2 view. */
function indices(n: number, size: number, strided: boolean): Tensor {
  if (!strided) return randInt([n], 0, size);
  const big = randInt([2 * n + 1], 0, size);
  return big.view_([n], [2], 1);
}

function check(shape: number[], dim: number, n: number, strided: boolean): void {
  for (const [kind, x] of views(shape)) {
    const idx = indices(n, shape[dim], strided);
    const what = `${kind} ${JSON.stringify(shape)} dim=${dim} n=${n}${strided ? " strided idx" : ""}`;
    const oshape = [...shape];
    oshape[dim] = n;
    const o1 = zerosT(oshape);
    const o2 = zerosT(oshape);
    nat().indexSelect(x, dim, idx, o1);
    ref.indexSelect(x, dim, idx, o2);
    assertClose(o1, o2, 0, `indexSelect ${what}`);
    // index_add of a src shaped like the selection (in the same layout kind) into a random dst
    const src = views(oshape).find(([k]) => k === kind)?.[1] as Tensor;
    const d1 = randT(shape);
    const d2 = zerosT(shape);
    d2.data.set(d1.data);
    nat().indexAdd(d1, dim, idx, src);
    ref.indexAdd(d2, dim, idx, src);
    // same additions in the same order, each rounded to float32: bit-identical
    assertClose(d1, d2, 0, `indexAdd ${what}`);
  }
}

describe("native index kernels", { skip }, () => {
  test("indexSelect and indexAdd match the reference on dims 0, 1 and last", () => {
    for (const shape of shapes)
      for (const dim of new Set([0, Math.min(1, shape.length - 1), shape.length - 1]))
        for (const n of [1, 4, 2 * shape[dim] + 3]) check(shape, dim, n, n === 4);
  });
  test("embedding-sized lookups and gradients (threaded), many repeats of few rows", () => {
    check([5003, 96], 0, 4096, false);
    check([3, 2048], 1, 4099, false);
    // above the kernel's 2M-float serial cutoff: rows split across threads; index_add by
    // destination-row ranges (outer 1) and by whole outer slices (outer 8)
    check([4099, 600], 0, 4096, false);
    check([8, 300, 1000], 1, 301, true);
    const idx = randInt([20000], 0, 3);
    const d1 = zerosT([9, 257]);
    const d2 = zerosT([9, 257]);
    const src = randT([20000, 257]);
    nat().indexAdd(d1, 0, idx, src);
    ref.indexAdd(d2, 0, idx, src);
    assertClose(d1, d2, 0, "20000 rows into 3");
  });
  test("an out-of-range index raises the reference's IndexError and writes nothing", () => {
    const x = randT([6, 4]);
    for (const bad of [6, -1]) {
      const idx = new Tensor(Int32Array.from([0, 5, bad, 1]), "int32", [4]);
      const out = zerosT([4, 4]);
      assert.throws(
        () => nat().indexSelect(x, 0, idx, out),
        (e: unknown) =>
          e instanceof IndexError &&
          /indexSelect: index -?\d+ out of range for dim 0 of \[6,4\] of size 6/.test(e.message),
      );
      assert.ok(out.toFloat64Array().every((v) => v === 0));
      const dst = zerosT([6, 4]);
      assert.throws(() => nat().indexAdd(dst, 0, idx, randT([4, 4])), IndexError);
      assert.ok(dst.toFloat64Array().every((v) => v === 0));
    }
  });
});
