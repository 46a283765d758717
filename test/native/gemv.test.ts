// The M <= 4 SGEMM path (native/gemv.cc: B streamed, not packed) against the reference matmul and
// against the packed GEMM (the same rows computed inside an M = 6 product): both B layouts it
// takes (row-major, and the transposed view of an (N, K) weight), padded strides, A views it
// must fall back on, odd N/K, sizes large enough to thread, and accumulate.
import { describe, test } from "node:test";
import type { Tensor } from "../../src/tensor/tensor.ts";
import {
  absT,
  assertClose,
  assertCloseScaled,
  nat,
  permutedView,
  randT,
  ref,
  skip,
  slicedView,
  zerosT,
} from "./helpers.ts";

type Layout = "rows" | "transposed" | "sliced" | "sliced-transposed";

function makeB(K: number, N: number, layout: Layout): Tensor {
  if (layout === "rows") return randT([K, N]);
  if (layout === "transposed") return permutedView([K, N], [1, 0]);
  if (layout === "sliced") return slicedView([K, N]);
  const w = slicedView([N, K]); // rows of an (N, K) weight with padded stride, viewed as (K, N)
  return w.view_([K, N], [w.strides[1], w.strides[0]], w.offset);
}

function makeA(M: number, K: number, kind: "contiguous" | "sliced" | "transposed"): Tensor {
  if (kind === "contiguous") return randT([M, K]);
  if (kind === "sliced") return slicedView([M, K]);
  return permutedView([M, K], [1, 0]);
}

/** native (gemv path) vs reference, plain and error-scaled (sum |a||b| (+|out|) per output). */
function checkRef(a: Tensor, b: Tensor, accumulate: boolean, what: string): void {
  const shape = [a.shape[0], b.shape[1]];
  const o1 = accumulate ? randT(shape) : zerosT(shape);
  const o2 = zerosT(shape);
  o2.data.set(o1.data);
  nat().matmul(a, b, o1, accumulate);
  ref.matmul(a, b, o2, accumulate);
  assertClose(o1, o2, a.shape[1] >= 512 ? 1e-4 : 1e-5, what);
  const scale = accumulate ? absT(o2) : zerosT(shape);
  ref.matmul(absT(a), absT(b), scale, accumulate);
  assertCloseScaled(o1, o2, scale, 1e-6, what);
}

/** Rows 0..M-1 of a packed M = 6 product vs the same rows as an M-row (gemv) product. */
function checkPacked(M: number, b: Tensor, what: string): void {
  const K = b.shape[0];
  const N = b.shape[1];
  const a6 = randT([6, K]);
  const packed = zerosT([6, N]);
  nat().matmul(a6, b, packed);
  const a = a6.view_([M, K], a6.strides, 0);
  const small = zerosT([M, N]);
  nat().matmul(a, b, small);
  const rows = packed.view_([M, N], packed.strides, 0);
  const scale = zerosT([M, N]);
  ref.matmul(absT(a), absT(b), scale);
  assertCloseScaled(small, rows, scale, 1e-6, what);
}

describe("native gemv path (M <= 4)", { skip }, () => {
  const sizes: [number, number][] = [
    [1, 1],
    [7, 33],
    [33, 7],
    [17, 4],
    [129, 1023],
    [1025, 65],
    [2304, 96],
    [4099, 257],
  ];
  const layouts: Layout[] = ["rows", "transposed", "sliced", "sliced-transposed"];
  test("matches the reference for M = 1..4, every B layout, overwrite and accumulate", () => {
    for (let M = 1; M <= 4; M++)
      for (const [N, K] of sizes)
        for (const layout of layouts)
          for (const accumulate of [false, true])
            checkRef(
              randT([M, K]),
              makeB(K, N, layout),
              accumulate,
              `M=${M} N=${N} K=${K} B=${layout} acc=${accumulate}`,
            );
  });
  test("A views: padded rows, and transposed A (falls back for a transposed B)", () => {
    for (let M = 1; M <= 4; M++)
      for (const [N, K] of [
        [33, 65],
        [1025, 129],
      ] as const)
        for (const kind of ["sliced", "transposed"] as const)
          for (const layout of layouts)
            checkRef(makeA(M, K, kind), makeB(K, N, layout), M % 2 === 0, `M=${M} N=${N} K=${K} A=${kind} B=${layout}`);
  });
  test("matches the packed GEMM on the same rows", () => {
    for (let M = 1; M <= 4; M++)
      for (const [N, K] of [
        [7, 33],
        [1025, 65],
        [4099, 257],
      ] as const)
        for (const layout of layouts) checkPacked(M, makeB(K, N, layout), `M=${M} N=${N} K=${K} B=${layout}`);
  });
  test("batch dims of size 1 and the (1, T, K) @ (K, N) linear shape", () => {
    const x = randT([1, 3, 200]);
    const w = permutedView([1, 200, 700], [0, 2, 1]);
    const o1 = zerosT([1, 3, 700]);
    const o2 = zerosT([1, 3, 700]);
    nat().matmul(x, w, o1);
    ref.matmul(x, w, o2);
    assertClose(o1, o2, 1e-5, "(1,3,200) @ (1,200,700)^T");
  });
});
