// The fused linear op (x @ W^T + b, then relu / gelu / gelu_tanh in one kernel) against its
// composite definition (matmul, add, F.relu / F.gelu) and float64 finite differences, on the
// reference backend: odd sizes, size-1 dims, transposed and sliced operands, with and without bias.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import type { LinearAct } from "../../src/backend/backend.ts";
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
const vec = (n: number) => randn([n], { dtype: "float64", generator: gen }).requiresGrad_(true);
const copy = (t: Tensor) => tensor(t.toFloat64Array(), { shape: [...t.shape], dtype: t.dtype }).requiresGrad_(true);

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

const ACTS: LinearAct[] = ["none", "relu", "gelu", "gelu_tanh"];
const SHAPES: [number, number, number, "contig" | "perm" | "slice"][] = [
  [1, 1, 1, "contig"],
  [1, 7, 33, "perm"],
  [7, 33, 1, "slice"],
  [33, 7, 7, "contig"],
  [5, 1, 6, "perm"],
];

describe("fused linear (reference backend, float64)", () => {
  for (const act of ACTS) {
    test(`forward and gradients match the composite: act=${act}`, () => {
      for (const [M, K, N, layout] of SHAPES)
        for (const withBias of [true, false]) {
          const what = `${M}x${K}x${N} ${layout} bias=${withBias}`;
          const [x, w, b] = [leaf(M, K, layout), leaf(N, K, layout), withBias ? vec(N) : null];
          const [x2, w2, b2] = [copy(x), copy(w), b ? copy(b) : null];
          const y = linearFused(x, w, b, act);
          const want = composite(() => F.linear(x2, w2, b2, act));
          assertClose(y, want, 1e-12, `${what} forward`);
          const g = randn(y.shape, { dtype: "float64", generator: gen });
          backward(F.sum(F.mul(y, g)));
          composite(() => backward(F.sum(F.mul(want, g))));
          assertClose(x.grad!, x2.grad!, 1e-12, `${what} dx`);
          assertClose(w.grad!, w2.grad!, 1e-12, `${what} dw`);
          if (b) assertClose(b.grad!, b2!.grad!, 1e-12, `${what} db`);
        }
    });

    test(`gradcheck: act=${act}`, () => {
      for (const [M, K, N, layout] of SHAPES) {
        const ins = [leaf(M, K, layout), leaf(N, K, layout), vec(N)];
        gradcheck(`linear ${act} ${M}x${K}x${N} ${layout}`, (x, w, b) => linearFused(x, w, b, act), ins);
        gradcheck(
          `linear ${act} ${M}x${K}x${N} ${layout} no bias`,
          (x, w) => linearFused(x, w, null, act),
          ins.slice(0, 2),
        );
      }
    });
  }

  test("float32 F.linear takes the fused op (3-d input, transposed Conv1D weight, backward)", () => {
    const f32 = (shape: number[]) => randn(shape, { generator: gen }).requiresGrad_(true);
    const [x, wIn, b] = [f32([2, 3, 5]), f32([5, 4]), f32([4])]; // wIn (in, out) as GPT-2 stores it
    const y = F.linear(x, F.transpose(wIn), b, "gelu_tanh");
    assert.equal(F.linear(F.reshape(x, [6, 5]), F.transpose(wIn), b).node?.op, "linear");
    const [x2, w2, b2] = [copy(x), copy(wIn), copy(b)];
    const want = composite(() => F.gelu(F.add(F.matmul(x2, w2), b2), "tanh"));
    assertClose(y, want, 1e-6, "3-d gelu_tanh");
    backward(F.sum(y));
    composite(() => backward(F.sum(want)));
    assertClose(x.grad!, x2.grad!, 1e-6, "dx");
    assertClose(wIn.grad!, w2.grad!, 1e-6, "dw");
    assertClose(b.grad!, b2.grad!, 1e-6, "db");
  });
});
