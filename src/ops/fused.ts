/**
 * Fused ops: table entries whose forward is one backend kernel and whose VJP is explicit. Each is
 * used only when the active backend provides the kernel and the inputs are float32; otherwise the
 * caller's composite (defined in terms of primitives) runs. Both must agree (tested).
 */

import type { FusedKernels } from "../backend/backend.ts";
import { backend } from "../backend/index.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { defineOp } from "./table.ts";
import { contiguous, reshape } from "./view.ts";

/** True when the active backend has fused kernel `k` and every tensor is float32. */
export function canFuse(k: keyof FusedKernels, ...ts: (Tensor | null | undefined)[]): boolean {
  return backend().fused[k] !== undefined && ts.every((t) => !t || t.dtype === "float32");
}

const fusedSoftmaxOp = defineOp<{ log: boolean }>({
  name: "fusedSoftmax",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }),
  forward: (be, out, [x], { log }) => be.fused.softmax!(contiguous(x), out, log),
  vjp: (g, _x, y, { log }) => {
    const dx = empty(y.shape, "float32");
    backend().fused.softmaxBackward!(y, contiguous(g), dx, log);
    return [dx];
  },
});

/** Softmax / log-softmax over the last dim of a float32 tensor through the fused kernel. */
export function fusedSoftmaxLast(x: Tensor, log: boolean): Tensor {
  const c = x.shape[x.ndim - 1];
  return reshape(fusedSoftmaxOp([reshape(x, [-1, c])], { log }), x.shape);
}

const fusedNormOp = defineOp<{ eps: number; rms: boolean }>({
  name: "fusedNorm",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }),
  forward: (be, out, [x, w, b], { eps, rms }) => {
    const mean = empty([x.shape[0]], "float32");
    const rstd = empty([x.shape[0]], "float32");
    be.fused.norm!(contiguous(x), w ?? null, b ?? null, eps, rms, out, mean, rstd);
    return { mean, rstd };
  },
  vjp: (g, [x, w, b], _y, { rms }, saved) => {
    const { mean, rstd } = saved as { mean: Tensor; rstd: Tensor };
    const dx = empty(x.shape, "float32");
    const dw = w?.requiresGrad ? empty(w.shape, "float32") : null;
    const db = b?.requiresGrad ? empty(b.shape, "float32") : null;
    backend().fused.normBackward!(contiguous(x), w ?? null, mean, rstd, contiguous(g), rms, dx, dw, db);
    return [dx, dw, db];
  },
});

/** Layer norm (rms=false) or RMS norm over the last dim via the fused kernel. */
export function fusedNormLast(
  x: Tensor,
  weight: Tensor | null,
  bias: Tensor | null,
  eps: number,
  rms: boolean,
): Tensor {
  const c = x.shape[x.ndim - 1];
  // Inputs are positional [x, weight?, bias?]: callers fuse only when a bias comes with a weight.
  const ins = [reshape(x, [-1, c])];
  if (weight) ins.push(weight);
  if (weight && bias) ins.push(bias);
  return reshape(fusedNormOp(ins, { eps, rms }), x.shape);
}

type Act = "gelu" | "gelu_tanh" | "silu";
const fusedActOp = defineOp<{ kind: Act }>({
  name: "fusedActivation",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }),
  forward: (be, out, [x], { kind }) => be.fused.activation!(kind, contiguous(x), out),
  vjp: (g, [x], _y, { kind }) => {
    const dx = empty(x.shape, "float32");
    backend().fused.activationBackward!(kind, contiguous(x), contiguous(g), dx);
    return [dx];
  },
});

export function fusedActivation(kind: Act, x: Tensor): Tensor {
  return fusedActOp([x], { kind });
}

const fusedCeOp = defineOp<{ ignoreIndex: number; labelSmoothing: number }>({
  name: "fusedCrossEntropy",
  infer: ([logits]) => ({ shape: [logits.shape[0]], dtype: "float32" }),
  forward: (be, out, [logits, target], { ignoreIndex, labelSmoothing }) => {
    const lse = empty([logits.shape[0]], "float32");
    be.fused.crossEntropy!(contiguous(logits), contiguous(target), ignoreIndex, labelSmoothing, out, lse);
    return lse;
  },
  vjp: (g, [logits, target], _o, { ignoreIndex, labelSmoothing }, lse) => {
    const d = empty(logits.shape, "float32");
    backend().fused.crossEntropyBackward!(
      contiguous(logits),
      contiguous(target),
      lse as Tensor,
      contiguous(g),
      ignoreIndex,
      labelSmoothing,
      d,
    );
    return [d, null];
  },
});

/** Per-row cross-entropy losses (0 on ignored rows) via the fused kernel. */
export function fusedCrossEntropyRows(
  logits: Tensor,
  target: Tensor,
  ignoreIndex: number,
  labelSmoothing: number,
): Tensor {
  return fusedCeOp([logits, target], { ignoreIndex, labelSmoothing });
}

const fusedAttnOp = defineOp<{ causal: boolean; scale: number; hasMask: boolean }>({
  name: "fusedAttention",
  infer: ([q]) => ({ shape: [...q.shape], dtype: "float32" }),
  forward: (be, out, [q, k, v, mask], { causal, scale }) => {
    const lse = empty(q.shape.slice(0, 3), "float32");
    be.fused.attention!(
      contiguous(q),
      contiguous(k),
      contiguous(v),
      mask ? contiguous(mask) : null,
      causal,
      scale,
      out,
      lse,
    );
    return lse;
  },
  vjp: (g, [q, k, v, mask], out, { causal, scale }, lse) => {
    const dq = empty(q.shape, "float32");
    const dk = empty(k.shape, "float32");
    const dv = empty(v.shape, "float32");
    backend().fused.attentionBackward!(
      contiguous(q),
      contiguous(k),
      contiguous(v),
      mask ? contiguous(mask) : null,
      causal,
      scale,
      out,
      lse as Tensor,
      contiguous(g),
      dq,
      dk,
      dv,
    );
    return [dq, dk, dv, null];
  },
});

export function fusedAttention(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  causal: boolean,
  scale: number,
): Tensor {
  const ins = mask ? [q, k, v, mask] : [q, k, v];
  return fusedAttnOp(ins, { causal, scale, hasMask: !!mask });
}

interface BatchNormAttrs {
  training: boolean;
  eps: number;
  momentum: number;
  hasWeight: boolean;
  hasBias: boolean;
  /** Training: updated in place when both are given. Eval: the statistics used. */
  runningMean: Tensor | null;
  runningVar: Tensor | null;
  /** Clamp range of a fused activation (relu: [0, inf), relu6: [0, 6]), or null. */
  clamp: [number, number] | null;
  /** A tensor of x's shape added before the activation (the last input), as ResNet's shortcut. */
  hasResidual: boolean;
}

const fusedBatchNormOp = defineOp<BatchNormAttrs>({
  name: "fusedBatchNorm",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }),
  forward: (be, out, ins, a) => {
    const x = contiguous(ins[0]);
    const w = a.hasWeight ? ins[1] : null;
    const b = a.hasBias ? ins[a.hasWeight ? 2 : 1] : null;
    const C = x.shape[1];
    const mean = empty([C], x.dtype);
    const rstd = empty([C], x.dtype);
    const rm = a.runningMean;
    const rv = a.runningVar;
    if (a.training) {
      const v = empty([C], x.dtype);
      be.fused.batchNorm!(x, w, b, true, a.eps, out, mean, v, rstd);
      if (rm && rv) {
        // PyTorch: running = (1 - m) * running + m * batch, with the unbiased batch variance.
        const n = x.size / C;
        const m = a.momentum;
        for (let c = 0; c < C; c++) {
          const im = rm.offset + c * rm.strides[0];
          const iv = rv.offset + c * rv.strides[0];
          rm.data[im] = (1 - m) * (rm.data[im] as number) + m * (mean.data[c] as number);
          rv.data[iv] = (1 - m) * (rv.data[iv] as number) + m * (v.data[c] as number) * (n / Math.max(1, n - 1));
        }
      }
    } else {
      for (let c = 0; c < C; c++) {
        mean.data[c] = rm!.data[rm!.offset + c * rm!.strides[0]] as number;
        // rsqrt of the dtype-rounded var + eps, as the composite computes it
        const ve =
          x.dtype === "float32"
            ? Math.fround((rv!.data[rv!.offset + c * rv!.strides[0]] as number) + a.eps)
            : (rv!.data[rv!.offset + c * rv!.strides[0]] as number) + a.eps;
        rstd.data[c] = 1 / Math.sqrt(ve);
      }
      be.fused.batchNorm!(x, w, b, false, a.eps, out, mean, null, rstd);
    }
    if (a.hasResidual) be.binary("add", out, contiguous(ins[ins.length - 1]), out);
    if (a.clamp) be.fused.clamp!(out, a.clamp[0], a.clamp[1], out);
    return { mean, rstd };
  },
  vjp: (g0, ins, y, a, saved) => {
    const { mean, rstd } = saved as { mean: Tensor; rstd: Tensor };
    // relu / relu6 pass the gradient where lo < x < hi, i.e. where lo < y < hi: read from y.
    const g = a.clamp ? clampBackward(y, g0, a.clamp[0], a.clamp[1], false) : g0;
    const x = ins[0];
    const w = a.hasWeight ? ins[1] : null;
    const b = a.hasBias ? ins[a.hasWeight ? 2 : 1] : null;
    const dx = x.requiresGrad ? empty(x.shape, x.dtype) : null;
    const dw = w?.requiresGrad ? empty(w.shape, w.dtype) : null;
    const db = b?.requiresGrad ? empty(b.shape, b.dtype) : null;
    backend().fused.batchNormBackward!(contiguous(x), w, mean, rstd, contiguous(g), a.training, dx, dw, db);
    const grads: (Tensor | null)[] = [dx];
    if (w) grads.push(dw);
    if (b) grads.push(db);
    if (a.hasResidual) grads.push(g);
    return grads;
  },
});

/**
 * `F.batch_norm` through the fused kernel: x (N, C, ...), float32 (float64 on the reference
 * backend). Training updates the running buffers in place when both are given (momentum, unbiased
 * variance); eval normalises with them. Gradients for x, weight and bias, each only when needed.
 * `residual` (x's shape) is added to the output, then `activation` clamps it in place (relu,
 * relu6); the backward reads the output, not the sum before the clamp.
 */
export function fusedBatchNorm(
  x: Tensor,
  runningMean: Tensor | null,
  runningVar: Tensor | null,
  weight: Tensor | null,
  bias: Tensor | null,
  training: boolean,
  momentum: number,
  eps: number,
  activation?: "relu" | "relu6",
  residual?: Tensor | null,
): Tensor {
  const ins = [reshape(x, [x.shape[0], x.shape[1], -1])];
  if (weight) ins.push(weight);
  if (bias) ins.push(bias);
  if (residual) ins.push(reshape(residual, ins[0].shape));
  const clamp: [number, number] | null =
    activation === "relu" ? [0, Number.POSITIVE_INFINITY] : activation === "relu6" ? [0, 6] : null;
  const attrs = { training, eps, momentum, hasWeight: !!weight, hasBias: !!bias, runningMean, runningVar, clamp, hasResidual: !!residual };
  return reshape(fusedBatchNormOp(ins, attrs), x.shape);
}

const fusedClampOp = defineOp<{ lo: number; hi: number; inclusive: boolean }>({
  name: "fusedClamp",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }),
  forward: (be, out, [x], { lo, hi }) => be.fused.clamp!(contiguous(x), lo, hi, out),
  vjp: (g, [x], _y, { lo, hi, inclusive }) => [clampBackward(x, g, lo, hi, inclusive)],
});

/** `g` where x is inside [lo, hi] (inclusive) or (lo, hi), else 0, from x alone: no masks. */
export function clampBackward(x: Tensor, g: Tensor, lo: number, hi: number, inclusive: boolean): Tensor {
  const dx = empty(x.shape, x.dtype);
  backend().fused.clampBackward!(contiguous(x), contiguous(g), lo, hi, inclusive, dx);
  return dx;
}

/**
 * Clamp into [lo, hi] through the fused kernel; the backward keeps only x (no masks).
 * inclusive: gradient on lo <= x <= hi (`torch.clamp`); else on lo < x < hi (`hardtanh`, `relu6`).
 */
export function fusedClamp(x: Tensor, lo: number, hi: number, inclusive: boolean): Tensor {
  return fusedClampOp([x], { lo, hi, inclusive });
}
