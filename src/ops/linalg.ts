/** matmul (batched, broadcasting, transposed operands as views) and linear. */
import { needsGrad } from "../autograd/tape.ts";
import type { LinearAct } from "../backend/backend.ts";
import { backend } from "../backend/index.ts";
import { isHalf, promote } from "../tensor/dtype.ts";
import { DTypeError, fmtShape, ShapeError } from "../tensor/errors.ts";
import { broadcastShapes } from "../tensor/shape.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { add, erf, exp, gt, mul, relu, sub, tanh, where } from "./elementwise.ts";
// functional.ts imports this module too; gelu is only called at run time, so the cycle is harmless.
import { gelu } from "./functional.ts";
import { clampBackward } from "./fused.ts";
import { sum, sumTo } from "./reduce.ts";
import { defineOp } from "./table.ts";
import { contiguous, expandView, reshape, transpose } from "./view.ts";

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

const K_TANH = Math.sqrt(2 / Math.PI);

/** g * act'(z) for the linear epilogue's activations (z: the saved pre-activation). */
function actGrad(act: LinearAct, z: Tensor, g: Tensor): Tensor {
  const be = backend();
  const f32 = z.dtype === "float32" && g.dtype === "float32";
  if (act === "relu") {
    return f32 && be.fused.clampBackward
      ? clampBackward(z, g, 0, Number.POSITIVE_INFINITY, false)
      : where(gt(z, 0), g, 0);
  }
  if (act === "none") return g;
  if (f32 && be.fused.activationBackward) {
    const dz = empty(z.shape, "float32");
    be.fused.activationBackward(act, z, contiguous(g), dz);
    return dz;
  }
  if (act === "gelu") {
    // Phi(z) + z phi(z)
    const cdf = mul(add(erf(mul(z, Math.SQRT1_2)), 1), 0.5);
    return mul(g, add(cdf, mul(z, mul(exp(mul(mul(z, z), -0.5)), 1 / Math.sqrt(2 * Math.PI)))));
  }
  const z2 = mul(z, z);
  const th = tanh(mul(add(z, mul(mul(z2, z), 0.044715)), K_TANH));
  const du = mul(add(mul(z2, 3 * 0.044715), 1), K_TANH);
  return mul(g, add(mul(add(th, 1), 0.5), mul(mul(mul(z, 0.5), sub(1, mul(th, th))), du)));
}

/**
 * x (M, K) @ weight^T (weight (N, K)) + bias (N), then `act`, in one backend kernel (the native
 * GEMM adds the bias and applies the activation to each output tile while it is in cache).
 * Inputs [x, weight, bias?]; a bf16/f16 weight is read as it is (frozen storage).
 */
const linearOp = defineOp<{ act: LinearAct }>({
  name: "linear",
  acceptsHalf: true,
  infer: ([x, w, b]) => {
    if (
      x.ndim !== 2 ||
      w.ndim !== 2 ||
      x.shape[1] !== w.shape[1] ||
      (b && (b.ndim !== 1 || b.shape[0] !== w.shape[0]))
    ) {
      throw new ShapeError(
        `linear: input ${fmtShape(x.shape)}, weight ${fmtShape(w.shape)}, bias ${b ? fmtShape(b.shape) : "none"} do not fit (M,K), (N,K), (N)`,
      );
    }
    if (
      isHalf(x.dtype) ||
      (b && b.dtype !== x.dtype) ||
      !(w.dtype === x.dtype || isHalf(w.dtype)) ||
      (x.dtype !== "float32" && x.dtype !== "float64")
    ) {
      throw new DTypeError(
        `linear: float input, weight and bias of one dtype (or a bf16/f16 weight) required, got ${x.dtype}, ${w.dtype}, ${b?.dtype ?? "none"}`,
      );
    }
    return { shape: [x.shape[0], w.shape[0]], dtype: x.dtype };
  },
  forward: (be, out, ins, { act }) => {
    // the pre-activation is kept only when a backward will need it
    const pre = act !== "none" && needsGrad(ins) ? empty(out.shape, out.dtype) : null;
    be.fused.linear!(ins[0], ins[1], ins[2] ?? null, act, out, pre);
    return pre;
  },
  vjp: (g, [x, w, b], _y, { act }, pre) => {
    const dz = act === "none" ? g : actGrad(act, pre as Tensor, g);
    return [
      x.requiresGrad ? matmul(dz, w) : null,
      w.requiresGrad ? matmul(transpose(dz), x) : null,
      b?.requiresGrad ? sum(dz, 0) : null,
    ];
  },
});

/** Whether `linear` can run as one fused kernel on the active backend. */
function fusesLinear(x: Tensor, weight: Tensor, bias: Tensor | null | undefined): boolean {
  return (
    backend().fused.linear !== undefined &&
    x.dtype === "float32" &&
    (weight.dtype === "float32" || isHalf(weight.dtype)) &&
    weight.ndim === 2 &&
    (!bias || (bias.dtype === "float32" && bias.ndim === 1 && bias.shape[0] === weight.shape[0]))
  );
}

/**
 * `x @ weight^T + bias` (PyTorch `F.linear`); weight (out, in). With `act` ("relu", "gelu",
 * "gelu_tanh"), `act(F.linear(x, weight, bias))` in one pass where the backend fuses it.
 * @example linear(x, w, b)
 * @example linear(h, fc1.weight, fc1.bias, "gelu") // F.gelu(F.linear(h, W, b))
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, act: LinearAct = "none"): Tensor {
  if (x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new ShapeError(
      `linear: input ${fmtShape(x.shape)} does not match weight ${fmtShape(weight.shape)} (in_features ${weight.shape[1]})`,
    );
  }
  // Flatten leading dims so the product is one 2-d GEMM (the weight is not broadcast per batch).
  const lead = x.shape.slice(0, -1);
  const x2 = x.ndim === 2 ? x : reshape(x, [-1, x.shape[x.ndim - 1]]);
  let y: Tensor;
  if ((bias || act !== "none") && fusesLinear(x2, weight, bias)) {
    y = linearOp(bias ? [x2, weight, bias] : [x2, weight], { act });
  } else {
    y = matmul(x2, transpose(weight));
    if (bias) y = add(y, bias);
    if (act === "relu") y = relu(y);
    else if (act !== "none") y = gelu(y, act === "gelu_tanh" ? "tanh" : "none");
  }
  return x.ndim === 2 ? y : reshape(y, [...lead, weight.shape[0]]);
}

/**
 * The fused op itself, whatever the dtypes (float64 on the reference backend for gradient checks);
 * x 2-d, bias (N) or null. `linear` picks it or the composite.
 */
export function linearFused(x: Tensor, weight: Tensor, bias: Tensor | null, act: LinearAct = "none"): Tensor {
  return linearOp(bias ? [x, weight, bias] : [x, weight], { act });
}
