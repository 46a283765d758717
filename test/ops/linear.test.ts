// The fused linear op (x @ W^T + b in one kernel) against its composite definition (matmul + add)
// and float64 finite differences, on the reference backend: odd sizes, size-1 dims, transposed and
// sliced operands, a strided bias.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { backend, referenceBackend, setBackend } from "../../src/backend/index.ts";
import * as F from "../../src/ops/index.ts";
import { linearFused } from "../../src/ops/linalg.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { gradcheck } from "../core/gradcheck.ts";
import { assertClose } from "../helpers.ts";

setBackend(referenceBackend);
const gen = new Generator(31);

/** A float64 leaf (rows, cols): contiguous, a transposed view, or a strided slice with an offset. */
function leaf(rows: number, cols: number, layout: "contig" | "perm" | "slice" = "contig"): Tensor {
  let t: Tensor;
  if (layout === "perm") {
    const base = randn([cols, rows], { dtype: "float64", generator: gen });
    t = base.view_([rows, cols], [1, rows], 0);
  } else if (layout === "slice") {
    const base = randn([rows, 2 * cols + 1], { dtype: "float64", generator: gen });
    t = base.view_([rows, cols], [2 * cols + 1, 2], 1);
  } else {
    t = randn([rows, cols], { dtype: "float64", generator: gen });
  }
  return t.requiresGrad_(true);
}
/** A float64 bias (n): contiguous, or every other element of a larger tensor from an offset. */
function bias(n: number, strided: boolean): Tensor {
  if (!strided) return randn([n], { dtype: "float64", generator: gen }).requiresGrad_(true);
  return randn([2 * n + 1], { dtype: "float64", generator: gen })
    .view_([n], [2], 1)
    .requiresGrad_(true);
}
const copy = (t: Tensor) => tensor(t.toFloat64Array(), { shape: [...t.shape], dtype: t.dtype }).requiresGrad_(true);
const grad = (t: Tensor): Tensor => {
  assert.ok(t.grad, "no gradient");
  return t.grad;
};

/** The composite definition: the fused kernel hidden from the backend. */
function composite<T>(fn: () => T): T {
  const be = backend();
  const { linear: _l, ...rest } = be.fused;
  setBackend({ ...be, fused: rest });
  try {
    return fn();
  } finally {
    setBackend(be);
  }
}

const SHAPES: [number, number, number, "contig" | "perm" | "slice"][] = [
  [1, 1, 1, "contig"],
  [1, 7, 33, "perm"],
  [7, 33, 1, "slice"],
  [33, 7, 7, "contig"],
  [5, 1, 6, "perm"],
  [4, 0, 3, "contig"],
];

describe("fused linear (reference backend, float64)", () => {
  test("forward and gradients match matmul + add", () => {
    for (const [M, K, N, layout] of SHAPES) {
      const what = `${M}x${K}x${N} ${layout}`;
      const [x, w, b] = [leaf(M, K, layout), leaf(N, K, layout), bias(N, layout === "slice")];
      const [x2, w2, b2] = [copy(x), copy(w), copy(b)];
      const y = linearFused(x, w, b);
      const want = composite(() => F.linear(x2, w2, b2));
      assertClose(y, want, 1e-12, `${what} forward`);
      const g = randn(y.shape, { dtype: "float64", generator: gen });
      backward(F.sum(F.mul(y, g)));
      composite(() => backward(F.sum(F.mul(want, g))));
      if (K > 0) assertClose(grad(x), grad(x2), 1e-12, `${what} dx`);
      assertClose(grad(w), grad(w2), 1e-12, `${what} dw`);
      assertClose(grad(b), grad(b2), 1e-12, `${what} db`);
    }
  });

  test("gradcheck", () => {
    for (const [M, K, N, layout] of SHAPES) {
      if (K === 0) continue;
      const ins = [leaf(M, K, layout), leaf(N, K, layout), bias(N, layout === "slice")];
      gradcheck(`linear ${M}x${K}x${N} ${layout}`, (x, w, b) => linearFused(x, w, b), ins);
    }
  });

  test("float32 F.linear takes the fused op (3-d input, transposed Conv1D weight, backward)", () => {
    const f32 = (shape: number[]) => randn(shape, { generator: gen }).requiresGrad_(true);
    const [x, wIn, b] = [f32([2, 3, 5]), f32([5, 4]), f32([4])]; // wIn (in, out) as GPT-2 stores it
    assert.equal(F.linear(F.reshape(x, [6, 5]), F.transpose(wIn), b).node?.op, "linear");
    assert.notEqual(F.linear(F.reshape(x, [6, 5]), F.transpose(wIn)).node?.op, "linear"); // no bias: matmul
    const y = F.linear(x, F.transpose(wIn), b);
    const [x2, w2, b2] = [copy(x), copy(wIn), copy(b)];
    const want = composite(() => F.add(F.matmul(x2, w2), b2));
    assertClose(y, want, 1e-6, "3-d forward");
    backward(F.sum(F.mul(y, y)));
    composite(() => backward(F.sum(F.mul(want, want))));
    assertClose(grad(x), grad(x2), 1e-6, "dx");
    assertClose(grad(wIn), grad(w2), 1e-6, "dw");
    assertClose(grad(b), grad(b2), 1e-6, "db");
  });
});
