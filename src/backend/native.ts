/**
 * The native backend: the C++ addon (`native/`) for float32 work, the reference backend for
 * everything else (float64 gradient checks, half/int inputs except matmul's bf16/f16 operands,
 * index kernels). Same semantics as the reference for every kernel; the addon reads and writes
 * the tensors' own typed arrays.
 */
import type { Backend, BinaryOp, Conv2dParams, FusedKernels, Pool2dParams, UnaryOp } from "./backend.ts";
import { type NativeAddon, loadAddon } from "./native-binding.ts";
import { referenceBackend as ref } from "./reference/index.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { IndexError, fmtShape } from "../tensor/errors.ts";

const UNARY_OPS: readonly UnaryOp[] = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu", "sign", "erf", "floor"];
const BINARY_OPS: readonly BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"];
const ACT = { gelu: 0, gelu_tanh: 1, silu: 2 } as const;
const MAX_I32 = 2 ** 31 - 1;
/** Operand storage codes of the addon's matmulMixed; other dtypes (float64 gradchecks) go to the reference. */
const GEMM_DT: Partial<Record<Tensor["dtype"], number>> = { float32: 0, bfloat16: 1, float16: 2 };

// Reused for every call: shapes/strides travel in this buffer, no allocation per kernel call.
const META = new Int32Array(16 * 6 + 16);

function f32(t: Tensor): t is Tensor & { data: Float32Array } {
  return t.dtype === "float32" && t.data.length <= MAX_I32;
}

/** meta = [nd, shape, strides of each view]. */
function stridedMeta(shape: readonly number[], ...strides: (readonly number[])[]): Int32Array | null {
  const nd = shape.length;
  if (nd > 16) return null;
  META[0] = nd;
  for (let d = 0; d < nd; d++) META[1 + d] = shape[d];
  for (let o = 0; o < strides.length; o++) for (let d = 0; d < nd; d++) META[1 + nd * (o + 1) + d] = strides[o][d];
  return META;
}

/** The tensor itself when contiguous, else a contiguous float32 copy made by the addon. */
function contig(n: NativeAddon, t: Tensor & { data: Float32Array }): { data: Float32Array; offset: number } {
  if (t.isContiguous()) return t;
  const data = new Float32Array(t.size);
  const cs = contiguousStrides(t.shape);
  n.copy(t.data, t.offset, data, 0, stridedMeta(t.shape, t.strides, cs)!);
  return { data, offset: 0 };
}

function contiguousStrides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d];
  }
  return s;
}

function convMeta(x: readonly number[], w: readonly number[], y: readonly number[], p: Conv2dParams): Int32Array {
  const m = [x[0], x[1], x[2], x[3], w[0], w[2], w[3], y[2], y[3], p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.dilation[0], p.dilation[1], p.groups];
  META.set(m);
  return META;
}

function poolMeta(x: readonly number[], y: readonly number[], p: Pool2dParams | null): Int32Array {
  const k = p ?? { kernel: [0, 0], stride: [1, 1], padding: [0, 0], countIncludePad: true };
  META.set([x[0] * x[1], x[2], x[3], y[2], y[3], k.kernel[0], k.kernel[1], k.stride[0], k.stride[1], k.padding[0], k.padding[1], k.countIncludePad === false ? 0 : 1]);
  return META;
}

function outOk(t: Tensor): t is Tensor & { data: Float32Array } {
  return f32(t) && t.offset === 0 && t.isContiguous();
}

/** One (size, stride) for dims [from, to) of a view, or null when they do not merge into one stride. */
function mergeDims(shape: readonly number[], strides: readonly number[], from: number, to: number): [number, number] | null {
  let size = 1;
  let stride = 0;
  for (let d = to - 1; d >= from; d--) {
    if (shape[d] === 1) continue;
    if (size === 1) stride = strides[d];
    else if (strides[d] !== stride * size) return null;
    size *= shape[d];
  }
  return [size, stride];
}

/** meta = [outer, S, inner, outer stride, dim stride, inner stride, n] of a view around `dim`, or null. */
function rowsMeta(shape: readonly number[], strides: readonly number[], dim: number, n: number): Int32Array | null {
  const o = mergeDims(shape, strides, 0, dim);
  const i = mergeDims(shape, strides, dim + 1, shape.length);
  if (!o || !i) return null;
  META.set([o[0], shape[dim], i[0], o[1], strides[dim], i[1], n]);
  return META;
}

/** The reference's error (src/ops/indexing.ts) for the index at `pos`, which the kernel rejected. */
function indexError(op: string, index: Tensor, pos: number, t: Tensor, dim: number): IndexError {
  const v = index.data[index.offset + pos * index.strides[0]];
  return new IndexError(`${op}: index ${v} out of range for dim ${dim} of ${fmtShape(t.shape)} of size ${t.shape[dim]} (index shape ${fmtShape(index.shape)})`);
}

function indexOk(index: Tensor): boolean {
  return index.dtype === "int32" && index.ndim === 1;
}

function makeBackend(n: NativeAddon): Backend {
  const fused: FusedKernels = {
    softmax(x, out, log) {
      const C = x.shape[x.ndim - 1];
      n.softmax(x.data as Float32Array, x.offset, out.data as Float32Array, x.size / Math.max(1, C), C, log);
    },
    softmaxBackward(y, dy, dx, log) {
      const C = y.shape[y.ndim - 1];
      n.softmaxBackward(y.data as Float32Array, y.offset, dy.data as Float32Array, dy.offset, dx.data as Float32Array, y.size / Math.max(1, C), C, log);
    },
    norm(x, weight, bias, eps, rms, out, mean, rstd) {
      const C = x.shape[x.ndim - 1];
      const w = weight ? contig(n, weight as Tensor & { data: Float32Array }) : null;
      const b = bias ? contig(n, bias as Tensor & { data: Float32Array }) : null;
      n.norm(x.data as Float32Array, x.offset, w?.data ?? null, w?.offset ?? 0, b?.data ?? null, b?.offset ?? 0, out.data as Float32Array, mean.data as Float32Array, rstd.data as Float32Array, x.size / Math.max(1, C), C, eps, rms);
    },
    normBackward(x, weight, mean, rstd, dy, rms, dx, dweight, dbias) {
      const C = x.shape[x.ndim - 1];
      const w = weight ? contig(n, weight as Tensor & { data: Float32Array }) : null;
      n.normBackward(x.data as Float32Array, x.offset, w?.data ?? null, w?.offset ?? 0, mean.data as Float32Array, mean.offset, rstd.data as Float32Array, rstd.offset, dy.data as Float32Array, dy.offset, dx.data as Float32Array, (dweight?.data as Float32Array) ?? null, (dbias?.data as Float32Array) ?? null, x.size / Math.max(1, C), C, rms);
    },
    crossEntropy(logits, target, ignoreIndex, labelSmoothing, loss, lse) {
      const [N, C] = logits.shape;
      n.crossEntropy(logits.data as Float32Array, logits.offset, target.data as Int32Array, target.offset, loss.data as Float32Array, lse.data as Float32Array, N, C, ignoreIndex, labelSmoothing);
    },
    crossEntropyBackward(logits, target, lse, dloss, ignoreIndex, labelSmoothing, dlogits) {
      const [N, C] = logits.shape;
      n.crossEntropyBackward(logits.data as Float32Array, logits.offset, target.data as Int32Array, target.offset, lse.data as Float32Array, lse.offset, dloss.data as Float32Array, dloss.offset, dlogits.data as Float32Array, N, C, ignoreIndex, labelSmoothing);
    },
    activation(kind, x, out) {
      n.activation(ACT[kind], x.data as Float32Array, x.offset, out.data as Float32Array, x.size);
    },
    activationBackward(kind, x, dy, dx) {
      n.activationBackward(ACT[kind], x.data as Float32Array, x.offset, dy.data as Float32Array, dy.offset, dx.data as Float32Array, x.size);
    },
    attention(q, k, v, mask, causal, scale, out, lse) {
      n.attention(q.data as Float32Array, q.offset, k.data as Float32Array, k.offset, v.data as Float32Array, v.offset, (mask?.data as Float32Array) ?? null, mask?.offset ?? 0, out.data as Float32Array, lse.data as Float32Array, attnMeta(q, k, mask, causal), scale);
    },
    attentionBackward(q, k, v, mask, causal, scale, out, lse, dout, dq, dk, dv) {
      n.attentionBackward(q.data as Float32Array, q.offset, k.data as Float32Array, k.offset, v.data as Float32Array, v.offset, (mask?.data as Float32Array) ?? null, mask?.offset ?? 0, out.data as Float32Array, out.offset, lse.data as Float32Array, lse.offset, dout.data as Float32Array, dout.offset, dq.data as Float32Array, dk.data as Float32Array, dv.data as Float32Array, attnMeta(q, k, mask, causal), scale);
    },
    batchNorm(x, weight, bias, training, eps, out, mean, variance, rstd) {
      const vecs = [weight, bias, mean, variance, rstd];
      if (!f32(x) || !f32(out) || !x.isContiguous() || !out.isContiguous() || !vecs.every((t) => !t || (f32(t) && t.isContiguous()))) {
        return ref.fused.batchNorm!(x, weight, bias, training, eps, out, mean, variance, rstd);
      }
      const [N, C] = x.shape;
      const S = N * C === 0 ? 0 : x.size / (N * C);
      const d = (t: Tensor | null) => (t ? (t.data as Float32Array) : null);
      n.batchNorm(x.data, x.offset, d(weight), weight?.offset ?? 0, d(bias), bias?.offset ?? 0, out.data, out.offset, mean.data as Float32Array, mean.offset, d(variance), variance?.offset ?? 0, rstd.data as Float32Array, rstd.offset, N, C, S, eps, training);
    },
    batchNormBackward(x, weight, mean, rstd, dy, training, dx, dweight, dbias) {
      const ts = [x, weight, mean, rstd, dy, dx, dweight, dbias];
      if (!ts.every((t) => !t || (f32(t) && t.isContiguous()))) return ref.fused.batchNormBackward!(x, weight, mean, rstd, dy, training, dx, dweight, dbias);
      const [N, C] = x.shape;
      const S = N * C === 0 ? 0 : x.size / (N * C);
      const d = (t: Tensor | null) => (t ? (t.data as Float32Array) : null);
      n.batchNormBackward(x.data as Float32Array, x.offset, d(weight), weight?.offset ?? 0, mean.data as Float32Array, mean.offset, rstd.data as Float32Array, rstd.offset, dy.data as Float32Array, dy.offset, d(dx), dx?.offset ?? 0, d(dweight), dweight?.offset ?? 0, d(dbias), dbias?.offset ?? 0, N, C, S, training);
    },
    clamp(x, lo, hi, out) {
      if (!f32(x) || !f32(out) || !x.isContiguous() || !out.isContiguous()) return ref.fused.clamp!(x, lo, hi, out);
      n.clamp(x.data, x.offset, out.data, out.offset, x.size, lo, hi);
    },
    clampBackward(x, dy, lo, hi, inclusive, dx) {
      if (!f32(x) || !f32(dy) || !f32(dx) || !x.isContiguous() || !dy.isContiguous() || !dx.isContiguous()) return ref.fused.clampBackward!(x, dy, lo, hi, inclusive, dx);
      n.clampBackward(x.data, x.offset, dy.data, dy.offset, dx.data, dx.offset, x.size, lo, hi, inclusive);
    },
    linear(x, weight, bias, out) {
      const wd = GEMM_DT[weight.dtype];
      if (!f32(x) || !outOk(out) || wd === undefined || weight.data.length > MAX_I32 || !f32(bias)) return ref.fused.linear!(x, weight, bias, out);
      const [M, K] = x.shape;
      const N = weight.shape[0];
      const b = contig(n, bias);
      META.set([0, M, N, K, x.strides[0], x.strides[1], weight.strides[1], weight.strides[0], N]);
      n.linear(x.data, x.offset, weight.data as Float32Array | Uint16Array, wd, weight.offset, b.data, b.offset, out.data, out.offset, META);
    },
    adamw(params, grads, m, v, hp) {
      n.adamw(params, grads, m, v, Float64Array.from(hp.lr), Float64Array.from(hp.weightDecay), hp.beta1, hp.beta2, hp.eps, hp.step);
    },
  };

  return {
    name: "native",
    fused,

    unary(op, x, out) {
      const code = UNARY_OPS.indexOf(op);
      if (code < 0 || !f32(x) || !f32(out)) return ref.unary(op, x, out);
      n.unary(code, x.data, x.offset, out.data, out.offset, stridedMeta(out.shape, x.strides, out.strides)!);
    },

    binary(op, a, b, out) {
      const code = BINARY_OPS.indexOf(op);
      const outOk = code >= 7 ? out.dtype === "bool" : f32(out);
      if (!f32(a) || !f32(b) || !outOk || out.ndim > 16) return ref.binary(op, a, b, out);
      n.binary(code, a.data, a.offset, b.data, b.offset, out.data as Float32Array | Uint8Array, out.offset, stridedMeta(out.shape, a.strides, b.strides, out.strides)!);
    },

    where(cond, a, b, out) {
      if (cond.dtype !== "bool" || !f32(a) || !f32(b) || !f32(out) || out.ndim > 16) return ref.where(cond, a, b, out);
      n.where(cond.data as Uint8Array, cond.offset, a.data, a.offset, b.data, b.offset, out.data, out.offset, stridedMeta(out.shape, cond.strides, a.strides, b.strides, out.strides)!);
    },

    copy(x, out) {
      if (!f32(x) || !f32(out) || out.ndim > 16) return ref.copy(x, out);
      n.copy(x.data, x.offset, out.data, out.offset, stridedMeta(out.shape, x.strides, out.strides)!);
    },

    reduce(op, x, dims, out) {
      if (!f32(x) || !f32(out) || x.ndim > 16 || !out.isContiguous()) return ref.reduce(op, x, dims, out);
      const os = contiguousStrides(out.shape).map((s, d) => (dims.includes(d) ? 0 : s));
      const flags = x.shape.map((_, d) => (dims.includes(d) ? 1 : 0));
      n.reduce(op === "sum" ? 0 : op === "max" ? 1 : 2, x.data, x.offset, out.data, out.offset, stridedMeta(x.shape, x.strides, os, flags)!);
    },

    argmax(x, dim, out) {
      if (!f32(x) || out.dtype !== "int32" || out.offset !== 0 || x.ndim > 16 || x.ndim === 0 || x.shape[dim] === 0) return ref.argmax(x, dim, out);
      n.argmax(x.data, x.offset, out.data as Int32Array, dim, stridedMeta(x.shape, x.strides)!);
    },

    cumsum(x, dim, out) {
      if (!f32(x) || !outOk(out) || x.ndim > 16 || x.ndim === 0) return ref.cumsum(x, dim, out);
      n.cumsum(x.data, x.offset, out.data, dim, stridedMeta(x.shape, x.strides)!);
    },

    matmul(a, b, out, accumulate = false) {
      const nd = out.ndim;
      const ad = GEMM_DT[a.dtype];
      const bd = GEMM_DT[b.dtype];
      if (ad === undefined || bd === undefined || a.data.length > MAX_I32 || b.data.length > MAX_I32 || !f32(out) || !out.isContiguous() || a.ndim !== nd || b.ndim !== nd || nd < 2 || nd > 14) return ref.matmul(a, b, out, accumulate);
      const M = out.shape[nd - 2];
      const N = out.shape[nd - 1];
      const K = a.shape[nd - 1];
      const nbd = nd - 2;
      META[0] = nbd;
      META.set([M, N, K, a.strides[nd - 2], a.strides[nd - 1], b.strides[nd - 2], b.strides[nd - 1], N], 1);
      for (let d = 0; d < nbd; d++) {
        const i = 9 + 4 * d;
        META[i] = out.shape[d];
        META[i + 1] = a.strides[d];
        META[i + 2] = b.strides[d];
        META[i + 3] = out.strides[d];
      }
      // bf16/f16 operands (frozen LoRA bases) are widened inside the GEMM's packing, no float32 copy
      if (ad === 0 && bd === 0) n.matmul(a.data as Float32Array, a.offset, b.data as Float32Array, b.offset, out.data, out.offset, META, accumulate);
      else n.matmulMixed(a.data as Float32Array | Uint16Array, ad, a.offset, b.data as Float32Array | Uint16Array, bd, b.offset, out.data, out.offset, META, accumulate);
    },

    gather: (x, dim, index, out) => ref.gather(x, dim, index, out),
    scatterAdd: (dst, dim, index, src) => ref.scatterAdd(dst, dim, index, src),
    indexSelect(x, dim, index, out) {
      if (!f32(x) || !outOk(out) || !indexOk(index)) return ref.indexSelect(x, dim, index, out);
      let xs: { data: Float32Array; offset: number } = x;
      let meta = rowsMeta(x.shape, x.strides, dim, index.shape[0]);
      if (!meta) {
        xs = contig(n, x);
        meta = rowsMeta(x.shape, contiguousStrides(x.shape), dim, index.shape[0]) as Int32Array;
      }
      const bad = n.indexSelect(xs.data, xs.offset, index.data as Int32Array, index.offset, index.strides[0], out.data, 0, meta);
      if (bad >= 0) throw indexError("indexSelect", index, bad, x, dim);
    },

    indexAdd(dst, dim, index, src) {
      if (!outOk(dst) || !f32(src) || !indexOk(index)) return ref.indexAdd(dst, dim, index, src);
      let ss: { data: Float32Array; offset: number } = src;
      let meta = rowsMeta(src.shape, src.strides, dim, index.shape[0]);
      if (!meta) {
        ss = contig(n, src);
        meta = rowsMeta(src.shape, contiguousStrides(src.shape), dim, index.shape[0]) as Int32Array;
      }
      meta[1] = dst.shape[dim];
      const bad = n.indexAdd(dst.data, 0, index.data as Int32Array, index.offset, index.strides[0], ss.data, ss.offset, meta);
      if (bad >= 0) throw indexError("indexAdd", index, bad, dst, dim);
    },

    conv2d(x, w, out, p) {
      if (!f32(x) || !f32(w) || !f32(out) || !out.isContiguous()) return ref.conv2d(x, w, out, p);
      const xc = contig(n, x);
      const wc = contig(n, w);
      n.conv2d(xc.data, xc.offset, wc.data, wc.offset, out.data, out.offset, convMeta(x.shape, w.shape, out.shape, p));
    },

    conv2dBackwardInput(dy, w, dx, p) {
      if (!f32(dy) || !f32(w) || !f32(dx) || !dx.isContiguous()) return ref.conv2dBackwardInput(dy, w, dx, p);
      const gc = contig(n, dy);
      const wc = contig(n, w);
      n.conv2dBackwardInput(gc.data, gc.offset, wc.data, wc.offset, dx.data, dx.offset, convMeta(dx.shape, w.shape, dy.shape, p));
    },

    conv2dBackwardWeight(x, dy, dw, p) {
      if (!f32(x) || !f32(dy) || !f32(dw) || !dw.isContiguous()) return ref.conv2dBackwardWeight(x, dy, dw, p);
      const xc = contig(n, x);
      const gc = contig(n, dy);
      n.conv2dBackwardWeight(xc.data, xc.offset, gc.data, gc.offset, dw.data, dw.offset, convMeta(x.shape, dw.shape, dy.shape, p));
    },

    maxPool2d(x, out, indices, p) {
      if (!f32(x) || !outOk(out) || indices.dtype !== "int32" || indices.offset !== 0) return ref.maxPool2d(x, out, indices, p);
      const xc = contig(n, x);
      n.maxPool2d(xc.data, xc.offset, out.data, indices.data as Int32Array, poolMeta(x.shape, out.shape, p));
    },

    maxPool2dBackward(dy, indices, dx) {
      if (!f32(dy) || !outOk(dx) || indices.dtype !== "int32" || indices.offset !== 0 || !indices.isContiguous()) return ref.maxPool2dBackward(dy, indices, dx);
      const gc = contig(n, dy);
      n.maxPool2dBackward(gc.data, gc.offset, dx.data, indices.data as Int32Array, poolMeta(dx.shape, dy.shape, null));
    },

    avgPool2d(x, out, p) {
      if (!f32(x) || !outOk(out)) return ref.avgPool2d(x, out, p);
      const xc = contig(n, x);
      n.avgPool2d(xc.data, xc.offset, out.data, poolMeta(x.shape, out.shape, p));
    },

    avgPool2dBackward(dy, dx, p) {
      if (!f32(dy) || !outOk(dx)) return ref.avgPool2dBackward(dy, dx, p);
      const gc = contig(n, dy);
      n.avgPool2dBackward(gc.data, gc.offset, dx.data, poolMeta(dx.shape, dy.shape, p));
    },

    adaptiveAvgPool2d(x, out) {
      if (!f32(x) || !outOk(out)) return ref.adaptiveAvgPool2d(x, out);
      const xc = contig(n, x);
      n.adaptiveAvgPool2d(xc.data, xc.offset, out.data, poolMeta(x.shape, out.shape, null));
    },

    adaptiveAvgPool2dBackward(dy, dx) {
      if (!f32(dy) || !outOk(dx)) return ref.adaptiveAvgPool2dBackward(dy, dx);
      const gc = contig(n, dy);
      n.adaptiveAvgPool2dBackward(gc.data, gc.offset, dx.data, poolMeta(dx.shape, dy.shape, null));
    },
  };
}

/** [B, H, Hkv, T, S, D, causal, mask strides (0 where the mask broadcasts)]. */
function attnMeta(q: Tensor, k: Tensor, mask: Tensor | null, causal: boolean): Int32Array {
  const [B, H, T, D] = q.shape;
  META.set([B, H, k.shape[1], T, k.shape[2], D, causal ? 1 : 0]);
  for (let d = 0; d < 4; d++) META[7 + d] = mask && mask.shape[d] !== 1 ? mask.strides[d] : 0;
  return META;
}

let loaded: { backend: Backend } | { error: string } | null = null;

/**
 * The native backend, or the reason it is unavailable (addon not built, failed to load, or
 * `TUNEKIT_ISA` names a path this CPU lacks). The caller prints one warning.
 * @example const r = loadNativeBackend(); const be = "backend" in r ? r.backend : referenceBackend;
 */
export function loadNativeBackend(): { backend: Backend } | { error: string } {
  if (loaded) return loaded;
  const r = loadAddon();
  loaded = "error" in r ? { error: r.error } : { backend: makeBackend(r.addon) };
  return loaded;
}
