/**
 * Composite ops (PyTorch `torch.nn.functional` names): activations, softmax, normalisation,
 * dropout, losses, attention, rotary embeddings. Each is written in primitives (the definition);
 * where the backend has a fused kernel and the inputs are float32, the fused op runs instead.
 */
import { noGrad } from "../autograd/tape.ts";
import { DTypeError, ShapeError, ValueError, fmtShape } from "../tensor/errors.ts";
import { type Generator, defaultGenerator } from "../tensor/rng.ts";
import { normDim, shapesEqual } from "../tensor/shape.ts";
import { type Tensor, arange, empty, full, tensor } from "../tensor/tensor.ts";
import { abs, add, clamp, div, erf, exp, ge, gt, le, log, mul, neg, relu, rsqrt, sigmoid, sub, tanh, where } from "./elementwise.ts";
import { canFuse, fusedActivation, fusedAttention, fusedBatchNorm, fusedClamp, fusedCrossEntropyRows, fusedNormLast, fusedSoftmaxLast } from "./fused.ts";
import { gather } from "./indexing.ts";
import { matmul } from "./linalg.ts";
import { amax, logsumexp, mean, sum, variance } from "./reduce.ts";
import { defineOp } from "./table.ts";
import { cat, contiguous, expand, expandView, permute, reshape, slice, transpose, unsqueeze } from "./view.ts";

// ---- activations ------------------------------------------------------------------------------

/** GELU, exact (erf) or `approximate: "tanh"` (GPT-2's gelu_new). */
export function gelu(x: Tensor, approximate: "none" | "tanh" = "none"): Tensor {
  const kind = approximate === "tanh" ? "gelu_tanh" : "gelu";
  if (canFuse("activation", x)) return fusedActivation(kind, x);
  if (approximate === "tanh") {
    const inner = mul(add(x, mul(mul(mul(x, x), x), 0.044715)), Math.sqrt(2 / Math.PI));
    return mul(mul(x, 0.5), add(tanh(inner), 1));
  }
  return mul(mul(x, 0.5), add(erf(mul(x, Math.SQRT1_2)), 1));
}

/** SiLU / swish: x * sigmoid(x). */
export function silu(x: Tensor): Tensor {
  if (canFuse("activation", x)) return fusedActivation("silu", x);
  return mul(x, sigmoid(x));
}

/** log(1 + exp(x)), stable; PyTorch's threshold 20 returns x above it. */
export function softplus(x: Tensor, beta = 1, threshold = 20): Tensor {
  const bx = mul(x, beta);
  const sp = div(add(relu(bx), log(add(exp(neg(abs(bx))), 1))), beta);
  return where(gt(bx, threshold), x, sp);
}

export function leakyRelu(x: Tensor, slope = 0.01): Tensor {
  return where(gt(x, 0), x, mul(x, slope));
}

/** `F.relu6` = hardtanh(x, 0, 6). */
export function relu6(x: Tensor): Tensor {
  return hardtanh(x, 0, 6);
}

/**
 * `F.hardtanh`: clamp into [lo, hi]; the gradient passes on lo < x < hi only (PyTorch's
 * hardtanh_backward, unlike `clamp`'s closed range).
 */
export function hardtanh(x: Tensor, lo = -1, hi = 1): Tensor {
  if (canFuse("clamp", x)) return fusedClamp(x, lo, hi, false);
  return where(le(x, lo), lo, where(ge(x, hi), hi, x));
}

export function hardswish(x: Tensor): Tensor {
  return div(mul(x, clamp(add(x, 3), 0, 6)), 6);
}

export { relu, sigmoid, tanh };

// ---- softmax ----------------------------------------------------------------------------------

/** Softmax over `dim`. */
export function softmax(x: Tensor, dim = -1): Tensor {
  const d = normDim(dim, x.ndim, "softmax");
  if (d === x.ndim - 1 && canFuse("softmax", x)) return fusedSoftmaxLast(x, false);
  const e = exp(sub(x, amax(x, d, true).detach()));
  return div(e, sum(e, d, true));
}

/** log(softmax(x)) over `dim`, stable. */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  const d = normDim(dim, x.ndim, "logSoftmax");
  if (d === x.ndim - 1 && canFuse("softmax", x)) return fusedSoftmaxLast(x, true);
  return sub(x, logsumexp(x, d, true));
}

// ---- normalisation ----------------------------------------------------------------------------

/** `F.layer_norm` over the trailing `normalizedShape` dims (biased variance). */
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const k = normalizedShape.length;
  const tail = x.shape.slice(x.ndim - k);
  if (tail.join() !== normalizedShape.join()) throw new ShapeError(`layerNorm: input ${fmtShape(x.shape)} does not end with normalized shape ${fmtShape(normalizedShape)}`);
  if (k === 1 && canFuse("norm", x, weight, bias) && !(bias && !weight)) return fusedNormLast(x, weight ?? null, bias ?? null, eps, false);
  const dims = [...Array(k).keys()].map((i) => x.ndim - k + i);
  const mu = mean(x, dims, true);
  const c = sub(x, mu);
  let y = mul(c, rsqrt(add(mean(mul(c, c), dims, true), eps)));
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/** RMS norm over the last dim (HF Llama: x * rsqrt(mean(x^2) + eps) * weight). */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  if (canFuse("norm", x, weight)) return fusedNormLast(x, weight, null, eps, true);
  const y = mul(x, rsqrt(add(mean(mul(x, x), -1, true), eps)));
  return weight ? mul(y, weight) : y;
}

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
  /**
   * An activation applied to the output, fused into the op where the backend can: its backward
   * reads the normalised output, so the pre-activation tensor is not kept for backward (ResNet's
   * BN-ReLU and MobileNetV2's BN-ReLU6 hold one activation less per layer). Same values and
   * gradients as `relu(batchNorm(...))` / `relu6(batchNorm(...))`.
   */
  activation?: "relu" | "relu6";
  /**
   * Added to the normalised output before the activation (x's shape): ResNet's
   * `relu(bn2(conv2(y)) + shortcut)` as one op, keeping neither the BN output nor the sum.
   */
  residual?: Tensor | null;
}

/**
 * `F.batch_norm` over (N, C, ...). Training: batch statistics (biased variance) and, when running
 * buffers are given, an in-place update with momentum and the unbiased variance (PyTorch rule).
 * Eval: the running statistics.
 */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, weight: Tensor | null, bias: Tensor | null, opts: BatchNormOptions): Tensor {
  const eps = opts.eps ?? 1e-5;
  if (!opts.training && (!runningMean || !runningVar)) throw new ValueError("batchNorm: eval mode needs running statistics");
  const statsOk = [runningMean, runningVar].every((t) => !t || t.dtype === x.dtype);
  const act = opts.activation;
  const res = opts.residual ?? null;
  if (res && !shapesEqual(res.shape, x.shape))
    throw new ShapeError(`batchNorm: residual ${fmtShape(res.shape)} must have the input's shape ${fmtShape(x.shape)}`);
  const fusable = canFuse("batchNorm", x, weight, bias, res) && (!act || canFuse("clamp", x));
  if (x.ndim >= 2 && statsOk && fusable) {
    const m = opts.momentum ?? 0.1;
    return fusedBatchNorm(x, runningMean, runningVar, weight, bias, opts.training, m, eps, act, res);
  }
  const C = x.shape[1];
  const bshape = x.shape.map((d, i) => (i === 1 ? d : 1));
  const dims = x.shape.map((_, i) => i).filter((i) => i !== 1);
  let mu: Tensor;
  let v: Tensor;
  if (opts.training) {
    mu = mean(x, dims, true);
    v = variance(x, dims, true, 0);
    if (runningMean && runningVar) {
      const n = x.size / C;
      const m = opts.momentum ?? 0.1;
      noGrad(() => {
        const bm = mu.toFloat64Array();
        const bv = v.toFloat64Array();
        for (let c = 0; c < C; c++) {
          runningMean.data[runningMean.offset + c] = (1 - m) * runningMean.data[runningMean.offset + c] + m * bm[c];
          runningVar.data[runningVar.offset + c] = (1 - m) * runningVar.data[runningVar.offset + c] + m * bv[c] * (n / Math.max(1, n - 1));
        }
      });
    }
  } else {
    if (!runningMean || !runningVar) throw new ValueError("batchNorm: eval mode needs running statistics");
    mu = reshape(runningMean, bshape);
    v = reshape(runningVar, bshape);
  }
  let y = mul(sub(x, mu), rsqrt(add(v, eps)));
  if (weight) y = mul(y, reshape(weight, bshape));
  if (bias) y = add(y, reshape(bias, bshape));
  if (res) y = add(y, res);
  return act === "relu" ? relu(y) : act === "relu6" ? relu6(y) : y;
}

/** `F.group_norm`: x (N, C, ...) normalised over groups of C/G channels. */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const [N, C] = x.shape;
  if (C % groups !== 0) throw new ShapeError(`groupNorm: ${C} channels are not divisible by ${groups} groups`);
  const g = reshape(x, [N, groups, -1]);
  const mu = mean(g, 2, true);
  const c = sub(g, mu);
  let y = reshape(mul(c, rsqrt(add(mean(mul(c, c), 2, true), eps))), x.shape);
  const bshape = x.shape.map((d, i) => (i === 1 ? d : 1));
  if (weight) y = mul(y, reshape(weight, bshape));
  if (bias) y = add(y, reshape(bias, bshape));
  return y;
}

/** Inverted dropout; identity when not training or p = 0. */
export function dropout(x: Tensor, p: number, training: boolean, generator: Generator = defaultGenerator): Tensor {
  if (p < 0 || p > 1) throw new ValueError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return mul(x, 0);
  const keep = bernoulliKeep(x.shape, p, generator);
  if (x.dtype === "float32" || x.dtype === "float64") return dropoutOp([x, keep], { p });
  return where(keep, div(x, 1 - p), 0);
}

// where(keep, div(x, 1 - p), 0) with the same backend kernels, run in place in one output buffer
// (no scaled intermediate); the gradient is the composite's, div(where(keep, g, 0), 1 - p).
const dropoutOp = defineOp<{ p: number }>({
  name: "dropout",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype }),
  forward: (be, out, [x, keep], { p }) => {
    be.binary("div", x, expandView(full([], 1 - p, { dtype: x.dtype }), out.shape), out);
    be.where(keep, out, expandView(full([], 0, { dtype: x.dtype }), out.shape), out);
  },
  vjp: (g, [x, keep], _o, { p }) => [div(where(keep, g, 0), full([], 1 - p, { dtype: x.dtype })), null],
});

/**
 * The keep mask of dropout, `gt(rand(shape, { generator }), p)`, drawn straight into bool storage
 * (1 byte per element instead of the 4-byte uniform tensor): the same draws in the same order,
 * each rounded to float32 and compared with float32 p, as the composite did.
 */
export function bernoulliKeep(shape: readonly number[], p: number, generator: Generator = defaultGenerator): Tensor {
  const keep = empty(shape, "bool");
  const m = keep.data as Uint8Array;
  const pf = Math.fround(p);
  for (let i = 0, n = keep.size; i < n; i++) m[i] = Math.fround(generator.random()) > pf ? 1 : 0;
  return keep;
}

// ---- losses -----------------------------------------------------------------------------------

export type Reduction = "mean" | "sum" | "none";

export interface CrossEntropyOptions {
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: Reduction;
}

/**
 * `F.cross_entropy`: logits (N, C) or (N, C, d...), integer targets (N) / (N, d...).
 * "mean" averages over non-ignored targets (PyTorch); label smoothing mixes in the uniform target.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  const reduction = opts.reduction ?? "mean";
  if (target.dtype !== "int32") throw new DTypeError(`crossEntropy: targets must be int32 class indices, got ${target.dtype}`);
  let x2 = logits;
  let t1 = target;
  if (logits.ndim > 2) {
    const C = logits.shape[1];
    x2 = reshape(permute(logits, [0, ...Array.from({ length: logits.ndim - 2 }, (_, i) => i + 2), 1]), [-1, C]);
    t1 = reshape(target, [-1]);
  }
  if (x2.ndim !== 2 || t1.ndim !== 1 || t1.shape[0] !== x2.shape[0]) {
    throw new ShapeError(`crossEntropy: logits ${fmtShape(logits.shape)} and targets ${fmtShape(target.shape)} do not match`);
  }
  const C = x2.shape[1];
  const tv = t1.toFloat64Array();
  let valid = 0;
  for (const t of tv) {
    if (t === ignore) continue;
    if (t < 0 || t >= C || !Number.isInteger(t)) throw new ValueError(`crossEntropy: target ${t} out of range for ${C} classes`);
    valid++;
  }
  let rows: Tensor;
  if (canFuse("crossEntropy", x2)) {
    rows = fusedCrossEntropyRows(x2, t1, ignore, eps);
  } else {
    const lp = logSoftmax(x2, 1);
    const isIgn = tensor(Uint8Array.from(tv, (t) => (t === ignore ? 1 : 0)), { shape: [tv.length], dtype: "bool" });
    const safeT = tensor(Int32Array.from(tv, (t) => (t === ignore ? 0 : t)), { shape: [tv.length, 1] });
    let nll = neg(reshape(gather(lp, 1, safeT), [-1]));
    if (eps > 0) nll = add(mul(nll, 1 - eps), mul(neg(mean(lp, 1)), eps));
    rows = where(isIgn, 0, nll);
  }
  if (reduction === "none") return logits.ndim > 2 ? reshape(rows, target.shape) : rows;
  const s = sum(rows);
  return reduction === "sum" ? s : div(s, valid);
}

/** `F.binary_cross_entropy_with_logits`, stable form max(x,0) - x*y + log(1+exp(-|x|)). */
export function bceWithLogits(x: Tensor, y: Tensor, reduction: Reduction = "mean", posWeight?: Tensor): Tensor {
  let l: Tensor;
  if (posWeight) {
    const lw = add(mul(sub(posWeight, 1), y), 1);
    l = add(mul(sub(1, y), x), mul(lw, add(log(add(exp(neg(abs(x))), 1)), relu(neg(x)))));
  } else {
    l = add(sub(relu(x), mul(x, y)), log(add(exp(neg(abs(x))), 1)));
  }
  return reduce(l, reduction);
}

/** `F.mse_loss`. */
export function mseLoss(x: Tensor, y: Tensor, reduction: Reduction = "mean"): Tensor {
  const d = sub(x, y);
  return reduce(mul(d, d), reduction);
}

function reduce(l: Tensor, r: Reduction): Tensor {
  return r === "none" ? l : r === "sum" ? sum(l) : mean(l);
}

// ---- attention --------------------------------------------------------------------------------

export interface AttentionOptions {
  /** Additive float mask or boolean keep-mask, broadcastable to (B, H, T, S). */
  mask?: Tensor | null;
  /** Causal: query i sees keys j <= i + (S - T) (so a KV cache works). */
  causal?: boolean;
  scale?: number;
  dropout?: number;
  training?: boolean;
}

/**
 * Scaled-dot-product attention: q (B,H,T,D), k/v (B,Hkv,S,D); GQA repeats k/v heads H/Hkv times.
 * @example sdpa(q, k, v, { causal: true })
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) throw new ShapeError(`attention: expected (B,H,T,D) tensors, got q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  const [B, H, T, D] = q.shape;
  const [, Hkv, S] = k.shape;
  if (H % Hkv !== 0 || v.shape[1] !== Hkv || k.shape[3] !== D || v.shape[2] !== S) {
    throw new ShapeError(`attention: incompatible q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)}`);
  }
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  let mask = opts.mask ?? null;
  if (mask && mask.dtype === "bool") mask = where(mask, 0, -Infinity);
  const drop = opts.training && (opts.dropout ?? 0) > 0;
  if (!drop && canFuse("attention", q, k, v, mask)) {
    const m = mask ? contiguous(expand(mask, [B, mask.shape[1] === 1 ? 1 : H, T, S])) : null;
    return fusedAttention(q, k, v, m, !!opts.causal, scale);
  }
  const rep = H / Hkv;
  const kk = rep === 1 ? k : reshape(expand(unsqueeze(k, 2), [B, Hkv, rep, S, D]), [B, H, S, D]);
  const vv = rep === 1 ? v : reshape(expand(unsqueeze(v, 2), [B, Hkv, rep, S, D]), [B, H, S, D]);
  let scores = mul(matmul(q, transpose(kk)), scale);
  if (opts.causal) scores = add(scores, causalMask(T, S));
  if (mask) scores = add(scores, mask);
  let p = softmax(scores, -1);
  if (drop) p = dropout(p, opts.dropout ?? 0, true);
  return matmul(p, vv);
}

/** Additive causal mask (T, S): 0 where j <= i + S - T, -inf elsewhere. */
export function causalMask(T: number, S = T): Tensor {
  const m = new Float32Array(T * S);
  for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) m[i * S + j] = j <= i + S - T ? 0 : Number.NEGATIVE_INFINITY;
  return tensor(m, { shape: [T, S] });
}

// ---- rotary embeddings ------------------------------------------------------------------------

/**
 * Rotary cos/sin tables (HF Llama convention: frequencies repeated over both halves).
 * `invFreq` overrides the default theta^(-2i/d) (for rope scaling). Returns (T, D) tensors.
 */
export function rotaryCosSin(positions: readonly number[] | Tensor, dim: number, theta = 10000, invFreq?: Float64Array, attentionScaling = 1): { cos: Tensor; sin: Tensor } {
  const pos = Array.isArray(positions) ? positions : (positions as Tensor).toList();
  const half = dim / 2;
  const inv = invFreq ?? Float64Array.from({ length: half }, (_, i) => 1 / theta ** ((2 * i) / dim));
  const c = new Float32Array(pos.length * dim);
  const s = new Float32Array(pos.length * dim);
  pos.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      // float32 product, as HF computes inv_freq @ positions in float32
      const a = Math.fround(Math.fround(inv[i]) * p);
      c[t * dim + i] = c[t * dim + i + half] = Math.cos(a) * attentionScaling;
      s[t * dim + i] = s[t * dim + i + half] = Math.sin(a) * attentionScaling;
    }
  });
  return { cos: tensor(c, { shape: [pos.length, dim] }), sin: tensor(s, { shape: [pos.length, dim] }) };
}

/** HF `rotate_half`: [-x2, x1]. */
export function rotateHalf(x: Tensor): Tensor {
  const h = x.shape[x.ndim - 1] / 2;
  return cat([neg(slice(x, -1, h)), slice(x, -1, 0, h)], -1);
}

/** x * cos + rotate_half(x) * sin; x (..., T, D), cos/sin broadcastable (T, D). */
export function applyRotary(x: Tensor, cos: Tensor, sin: Tensor): Tensor {
  return add(mul(x, cos), mul(rotateHalf(x), sin));
}

/** Positions 0..n-1 as int32. */
export function positions(n: number, start = 0): Tensor {
  return arange(start, start + n);
}
