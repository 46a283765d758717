// The native linear kernel (SGEMM with the bias added per output tile) against the reference one:
// sizes 1, 7, 33, 257 (and the M <= 4 GEMV and K = 0 paths), transposed and sliced operands, a
// strided bias, bf16 weights; then F.linear's gradients on the native backend against the
// reference backend's.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { backend, setBackend } from "../../src/backend/index.ts";
import * as F from "../../src/ops/index.ts";
import { f32ToBf16 } from "../../src/tensor/dtype.ts";
import { Tensor } from "../../src/tensor/tensor.ts";
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

/** A (rows, cols) operand in one of three layouts. */
function operand(rows: number, cols: number, layout: number): Tensor {
  if (layout === 1) return permutedView([rows, cols], [1, 0]);
  if (layout === 2) return slicedView([rows, cols]);
  return randT([rows, cols], -2, 2);
}

function check(x: Tensor, w: Tensor, bias: Tensor, what: string): void {
  const [M, N] = [x.shape[0], w.shape[0]];
  const [o1, o2] = [zerosT([M, N]), zerosT([M, N])];
  nat().fused.linear?.(x, w, bias, o1);
  ref.fused.linear?.(x, w, bias, o2);
  // plain 1e-5 relative; long float32 sums (K >= 256) need the scaled check below instead
  assertClose(o1, o2, x.shape[1] >= 256 ? 1e-4 : 1e-5, what);
  if (w.dtype === "float32") {
    // against the float32 GEMM error scale sum |x||w| + |b|
    const scale = zerosT([M, N]);
    ref.fused.linear?.(absT(x), absT(w), absT(bias), scale);
    assertCloseScaled(o1, o2, scale, 1e-6, `${what} (scaled)`);
  }
}

describe("native linear (GEMM + bias epilogue)", { skip }, () => {
  const sizes: [number, number, number][] = [
    [1, 1, 1],
    [1, 7, 33],
    [7, 33, 257],
    [33, 257, 7],
    [257, 33, 33],
    [4, 257, 7],
    [257, 7, 1],
    [33, 1, 257],
    [65, 130, 257],
    [7, 513, 257],
    [300, 500, 700],
  ];
  test("sizes and layouts", () => {
    for (const [M, K, N] of sizes)
      for (let layout = 0; layout < 3; layout++) {
        const x = operand(M, K, layout);
        const w = operand(N, K, (layout + 1) % 3);
        check(x, w, randT([N], -2, 2), `${M}x${K}x${N} layout ${layout}`);
      }
  });

  test("K = 0: out = bias", () => check(randT([5, 0]), randT([9, 0]), randT([9], -3, 3), "K=0"));

  test("strided bias views (slices of a fused in_proj bias)", () => {
    const big = randT([3 * 40]);
    for (const b of [big.view_([40], [1], 40), big.view_([40], [3], 1)])
      check(randT([33, 17]), randT([40, 17]), b, "strided bias");
  });

  test("bf16 weight (widened in the GEMM, the bias in a pass after it)", () => {
    for (const [M, K, N] of [
      [1, 33, 7],
      [33, 65, 257],
    ] as const) {
      const wf = randT([N, K]);
      const w = new Tensor(Uint16Array.from(wf.data as Float32Array, f32ToBf16), "bfloat16", [N, K]);
      check(randT([M, K]), w, randT([N]), `bf16 ${M}x${K}x${N}`);
    }
  });

  test("F.linear forward and gradients on native match the reference backend", () => {
    const prev = backend();
    try {
      for (const [M, K, N] of [
        [7, 33, 257],
        [257, 33, 7],
        [2, 1, 33],
      ] as const) {
        const xs = randT([M, K]);
        const ws = permutedView([N, K], [1, 0]); // GPT-2's Conv1D weight (in, out), transposed
        const bs = randT([N]);
        const g = randT([1, M, N]);
        const run = () => {
          const [x, w, b] = [xs, ws, bs].map((t) => t.clone().requiresGrad_(true));
          const y = F.linear(F.reshape(x, [1, M, K]), w, b);
          backward(F.sum(F.mul(y, g)));
          return { y, dx: x.grad, dw: w.grad, db: b.grad, op: y.node?.inputs[0].node?.op };
        };
        setBackend(nat());
        const n = run();
        setBackend(ref);
        const r = run();
        assert.equal(n.op, "linear");
        const what = `${M}x${K}x${N}`;
        assertClose(n.y, r.y, 1e-5, `${what} y`);
        assertClose(n.dx as Tensor, r.dx as Tensor, 1e-5, `${what} dx`);
        assertClose(n.dw as Tensor, r.dw as Tensor, 1e-5, `${what} dw`);
        assertClose(n.db as Tensor, r.db as Tensor, 1e-5, `${what} db`);
      }
    } finally {
      setBackend(prev);
    }
  });
});
