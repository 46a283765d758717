/** matmul (batched, broadcasting, transposed operands as views) and linear. */
import { backend } from "../backend/index.ts";
import { isHalf, promote } from "../tensor/dtype.ts";
import { DTypeError, fmtShape, ShapeError } from "../tensor/errors.ts";
import { broadcastShapes } from "../tensor/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add } from "./elementwise.ts";
import { sum, sumTo } from "./reduce.ts";
import { defineOp } from "./table.ts";
import { expandView, reshape, transpose } from "./view.ts";

function batchShape(a: Tensor, b: Tensor): number[] {
  return broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), "matmul");
}

const matmulOp = defineOp<undefined>({
  name: "matmul",
  acceptsHalf: true,
  infer: ([a, b]) => {
    if (a.ndim < 2 || b.ndim < 2)
      throw new ShapeError(`matmul: expected >= 2-d operands, got ${fmtShape(a.shape)} @ ${fmtShape(b.shape)}`);
    if (a.dtype === "int32" || b.dtype === "int32" || a.dtype === "bool" || b.dtype === "bool") {
      throw new DTypeError(`matmul: float operands required, got ${a.dtype} @ ${b.dtype}`);
    }
    const K = a.shape[a.ndim - 1];
    if (K !== b.shape[b.ndim - 2]) {
      throw new ShapeError(
        `matmul: inner dimensions differ: ${fmtShape(a.shape)} @ ${fmtShape(b.shape)} (${K} vs ${b.shape[b.ndim - 2]})`,
      );
    }
    return { shape: [...batchShape(a, b), a.shape[a.ndim - 2], b.shape[b.ndim - 1]], dtype: promote(a.dtype, b.dtype) };
  },
  forward: (be, out, [a, b]) => {
    const bs = out.shape.slice(0, -2);
    be.matmul(expandView(a, [...bs, ...a.shape.slice(-2)]), expandView(b, [...bs, ...b.shape.slice(-2)]), out);
  },
  vjp: (g, [a, b]) => [
    a.requiresGrad ? sumTo(matmul(g, transpose(b)), a.shape) : null,
    b.requiresGrad ? sumTo(matmul(transpose(a), g), b.shape) : null,
  ],
});

/**
 * Matrix product with PyTorch semantics: 1-d operands are promoted and the added dim removed;
 * batch dims broadcast. Pass `transpose(b)` for `a @ b^T`: a view, no copy.
 * @example matmul(x, transpose(w)) // (B,T,in) @ (in,out)
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0)
    throw new ShapeError(`matmul: 0-d operand (${fmtShape(a.shape)} @ ${fmtShape(b.shape)})`);
  const a2 = a.ndim === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.ndim === 1 ? reshape(b, [b.shape[0], 1]) : b;
  let out = matmulOp([a2, b2], undefined);
  if (a.ndim === 1) out = reshape(out, [...out.shape.slice(0, -2), out.shape[out.ndim - 1]]);
  if (b.ndim === 1) out = reshape(out, out.shape.slice(0, -1));
  return out;
}

/**
 * x (M, K) @ weight^T (weight (N, K)) + bias (N) in one backend kernel (the native GEMM adds the
 * bias to each output tile while it is in cache: no separate broadcast-add pass over the output).
 * A bf16/f16 weight is read as it is (frozen storage).
 */
const linearOp = defineOp<undefined>({
  name: "linear",
  acceptsHalf: true,
  infer: ([x, w, b]) => {
    if (x.ndim !== 2 || w.ndim !== 2 || b.ndim !== 1 || x.shape[1] !== w.shape[1] || b.shape[0] !== w.shape[0]) {
      throw new ShapeError(
        `linear: input ${fmtShape(x.shape)}, weight ${fmtShape(w.shape)}, bias ${fmtShape(b.shape)} do not fit (M,K), (N,K), (N)`,
      );
    }
    if (
      (x.dtype !== "float32" && x.dtype !== "float64") ||
      b.dtype !== x.dtype ||
      !(w.dtype === x.dtype || isHalf(w.dtype))
    ) {
      throw new DTypeError(
        `linear: float input and bias of one dtype, weight of that dtype or bf16/f16, got ${x.dtype}, ${w.dtype}, ${b.dtype}`,
      );
    }
    return { shape: [x.shape[0], w.shape[0]], dtype: x.dtype };
  },
  forward: (be, out, [x, w, b]) => be.fused.linear!(x, w, b, out),
  vjp: (g, [x, w, b]) => [
    x.requiresGrad ? matmul(g, w) : null,
    w.requiresGrad ? matmul(transpose(g), x) : null,
    b.requiresGrad ? sum(g, 0) : null,
  ],
});

/** Whether `linear` with this bias can run as the one fused op on the active backend. */
export function fusesLinear(x: Tensor, weight: Tensor, bias: Tensor): boolean {
  return (
    backend().fused.linear !== undefined &&
    x.dtype === "float32" &&
    (weight.dtype === "float32" || isHalf(weight.dtype)) &&
    weight.ndim === 2 &&
    bias.dtype === "float32" &&
    bias.ndim === 1 &&
    bias.shape[0] === weight.shape[0]
  );
}

/**
 * `x @ weight^T + bias` (PyTorch `F.linear`); weight (out, in).
 * @example linear(x, w, b)
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(
      `linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(weight.shape)} (in_features ${weight.shape[1]})`,
    );
  }
  // Flatten leading dims so the product is one 2-d GEMM (the weight is not broadcast per batch).
  const lead = x.shape.slice(0, -1);
  const x2 = x.ndim === 2 ? x : reshape(x, [-1, x.shape[x.ndim - 1]]);
  let y: Tensor;
  if (bias && fusesLinear(x2, weight, bias)) y = linearOp([x2, weight, bias], undefined);
  else {
    y = matmul(x2, transpose(weight));
    if (bias) y = add(y, bias);
  }
  return x.ndim === 2 ? y : reshape(y, [...lead, weight.shape[0]]);
}

/**
 * The fused op itself, whatever the dtypes (float64 on the reference backend for gradient
 * checks): x (M, K), weight (N, K), bias (N). `linear` picks it or matmul + add.
 */
export function linearFused(x: Tensor, weight: Tensor, bias: Tensor): Tensor {
  return linearOp([x, weight, bias], undefined);
}
