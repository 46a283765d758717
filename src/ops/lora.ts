/**
 * `loraLinear`: a LoRA layer's whole forward as one op,
 * y = x W^T + b + ((h A^T) * s) B^T, with h the LoRA path's input (dropout(x), or x itself).
 * As separate ops the graph keeps five (M, out) tensors per layer (base product, bias sum, B's
 * product, its scaled copy, the sum) until backward; here only y and the small (M, r) product
 * t = (h A^T) * s exist: the bias is added in place and B's product accumulates into the output.
 */
import { promote } from "../tensor/dtype.ts";
import { fmtShape, ShapeError } from "../tensor/errors.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { mul } from "./elementwise.ts";
import { fusesLinear, matmul } from "./linalg.ts";
import { sum } from "./reduce.ts";
import { defineOp } from "./table.ts";
import { expandView, reshape, transpose } from "./view.ts";

interface LoraAttrs {
  scaling: number;
  hasBias: boolean;
}

// Inputs: x (M, in), h (M, in), wT (in, out) (any strides: W^T of a Linear, a Conv1D's weight as
// is; float32 or half), A (r, in), B (out, r), bias (out)?
const loraLinearOp = defineOp<LoraAttrs>({
  name: "loraLinear",
  acceptsHalf: true, // a bf16/f16 base weight is widened inside the GEMM, never copied
  infer: ([x, , wT, A]) => ({ shape: [x.shape[0], wT.shape[1]], dtype: promote(x.dtype, A.dtype) }),
  forward: (be, out, [x, h, wT, A, B, bias], { scaling, hasBias }) => {
    const t = empty([h.shape[0], A.shape[0]], out.dtype);
    be.matmul(h, transpose(A), t);
    const td = t.data;
    for (let i = 0; i < td.length; i++) td[i] = (td[i] as number) * scaling;
    // x W^T + b computed as `linear` computes it (with B = 0 the layer is exactly its base).
    const w = transpose(wT);
    if (hasBias && fusesLinear(x, w, bias)) be.fused.linear?.(x, w, bias, out);
    else {
      be.matmul(x, wT, out);
      if (hasBias) be.binary("add", out, expandView(bias, out.shape), out);
    }
    be.matmul(t, transpose(B), out, true);
    return t;
  },
  vjp: (g, [x, h, wT, A, B, bias], _y, { scaling }, saved) => {
    const t = saved as Tensor;
    // dt = g B is (M, r); A's and h's gradients take it times s (t already carries s for B's).
    const dts = A.requiresGrad || h.requiresGrad ? mul(matmul(g, B), scaling) : null;
    return [
      x.requiresGrad ? matmul(g, transpose(wT)) : null,
      h.requiresGrad && dts ? matmul(dts, A) : null,
      wT.requiresGrad ? matmul(transpose(x), g) : null,
      A.requiresGrad && dts ? matmul(transpose(dts), h) : null,
      B.requiresGrad ? matmul(transpose(g), t) : null,
      bias?.requiresGrad ? sum(g, 0) : null,
    ];
  },
});

/**
 * x W^T + b + (h A^T B^T) * scaling for x, h (..., in): the LoRA layer's forward as one op.
 * `weightT` is W^T, (in, out): `transpose(weight)` for an nn.Linear, GPT-2's Conv1D weight as is.
 * Same values as `add(linear(x, W, b), mul(linear(linear(h, A), B), scaling))` up to float
 * rounding (the scaling is applied to the rank-r product, before B).
 * @example loraLinear(x, x, transpose(w), b, loraA, loraB, alpha / r)
 */
export function loraLinear(
  x: Tensor,
  h: Tensor,
  weightT: Tensor,
  bias: Tensor | null,
  A: Tensor,
  B: Tensor,
  scaling: number,
): Tensor {
  const [K, N] = weightT.shape;
  const r = A.shape[0];
  const ok =
    weightT.ndim === 2 &&
    x.shape[x.ndim - 1] === K &&
    h.ndim === x.ndim &&
    h.shape.every((d, i) => d === x.shape[i]) &&
    A.ndim === 2 &&
    A.shape[1] === K &&
    B.ndim === 2 &&
    B.shape[0] === N &&
    B.shape[1] === r &&
    (!bias || (bias.ndim === 1 && bias.shape[0] === N));
  if (!ok) {
    const shapes = [x, h, weightT, A, B, bias].map((s) => (s ? fmtShape(s.shape) : "none")).join(", ");
    throw new ShapeError(
      `loraLinear: expected x, h (..., in), W^T (in, out), A (r, in), B (out, r), bias (out); got ${shapes}`,
    );
  }
  const lead = x.shape.slice(0, -1);
  const flat = (v: Tensor) => (v.ndim === 2 ? v : reshape(v, [-1, K]));
  const fx = flat(x);
  const ins = [fx, h === x ? fx : flat(h), weightT, A, B];
  if (bias) ins.push(bias);
  const y = loraLinearOp(ins, { scaling, hasBias: !!bias });
  return x.ndim === 2 ? y : reshape(y, [...lead, N]);
}
