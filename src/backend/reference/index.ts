/**
 * The reference backend: plain TypeScript loops with float64 accumulation. It is the living
 * definition of every kernel; the native backend is tested against it.
 */
import type { Backend, BinaryOp, Conv2dParams, Pool2dParams, ReduceOp, UnaryOp } from "../backend.ts";
import type { Tensor } from "../../tensor/tensor.ts";
import { contiguousStrides } from "../../tensor/shape.ts";
import { referenceFused } from "./fused.ts";
import { forEachIndex, offsetOf, offsets, readElem, values, writeElem } from "./strided.ts";

const erf = (x: number): number => {
  // Abramowitz-Stegun 7.1.26 is too coarse for 1e-5 checks; use a series / continued fraction.
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // Maclaurin series, converges fast for |x| < 2.5
    let sum = x;
    let term = x;
    const x2 = x * x;
    for (let n = 1; n < 100; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc continued fraction for large |x|
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return x > 0 ? 1 - erfc : erfc - 1;
};

const UNARY: Record<UnaryOp, (x: number) => number> = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  reciprocal: (x) => 1 / x,
  sin: Math.sin,
  cos: Math.cos,
  tanh: Math.tanh,
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  relu: (x) => (x > 0 ? x : 0),
  sign: (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : Number.NaN),
  erf,
  floor: Math.floor,
  logicalNot: (x) => (x === 0 ? 1 : 0),
};

const BINARY: Record<BinaryOp, (a: number, b: number) => number> = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: (a, b) => a ** b,
  maximum: (a, b) => (a !== a || b !== b ? Number.NaN : a > b ? a : b),
  minimum: (a, b) => (a !== a || b !== b ? Number.NaN : a < b ? a : b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
};

/** Writes a contiguous float64 buffer into the contiguous output, casting. */
function store(out: Tensor, vals: ArrayLike<number>): void {
  if (out.dtype === "float32" || out.dtype === "float64") (out.data as Float64Array).set(vals);
  else for (let i = 0; i < vals.length; i++) writeElem(out, out.offset + i, vals[i]);
}

/** View of the (keepdim) output `out` broadcast over x's shape (reduced dims get stride 0). */
function reducedView(out: Tensor, xShape: readonly number[], dims: readonly number[]): Int32Array {
  const strides = contiguousStrides(out.shape).map((s, d) => (dims.includes(d) ? 0 : s));
  return offsets(out.view_(xShape, strides, out.offset));
}

function convOut(h: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((h + 2 * p - d * (k - 1) - 1) / s) + 1;
}

function conv2d(x: Tensor, w: Tensor, out: Tensor, p: Conv2dParams): void {
  const [N, C, H, W] = x.shape;
  const [O, Cg, KH, KW] = w.shape;
  const [OH, OW] = [out.shape[2], out.shape[3]];
  const G = p.groups;
  const Og = O / G;
  const xv = values(x);
  const wv = values(w);
  const res = new Float64Array(out.size);
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          let acc = 0;
          for (let c = 0; c < Cg; c++) {
            const ci = g * Cg + c;
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * p.stride[0] - p.padding[0] + kh * p.dilation[0];
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * p.stride[1] - p.padding[1] + kw * p.dilation[1];
                if (iw < 0 || iw >= W) continue;
                acc += xv[((n * C + ci) * H + ih) * W + iw] * wv[((o * Cg + c) * KH + kh) * KW + kw];
              }
            }
          }
          res[((n * O + o) * OH + oh) * OW + ow] = acc;
        }
    }
  store(out, res);
}

/** Visits every (x element, w element, out element) triple of a conv, for the backward passes. */
function convPairs(xs: readonly number[], ws: readonly number[], os: readonly number[], p: Conv2dParams, fn: (xi: number, wi: number, oi: number) => void): void {
  const [N, C, H, W] = xs;
  const [O, Cg, KH, KW] = ws;
  const [OH, OW] = [os[2], os[3]];
  const Og = O / p.groups;
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++) {
      const g = Math.floor(o / Og);
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const oi = ((n * O + o) * OH + oh) * OW + ow;
          for (let c = 0; c < Cg; c++)
            for (let kh = 0; kh < KH; kh++) {
              const ih = oh * p.stride[0] - p.padding[0] + kh * p.dilation[0];
              if (ih < 0 || ih >= H) continue;
              for (let kw = 0; kw < KW; kw++) {
                const iw = ow * p.stride[1] - p.padding[1] + kw * p.dilation[1];
                if (iw < 0 || iw >= W) continue;
                fn(((n * C + g * Cg + c) * H + ih) * W + iw, ((o * Cg + c) * KH + kh) * KW + kw, oi);
              }
            }
        }
    }
}

function poolWindows(x: readonly number[], out: readonly number[], p: Pool2dParams, fn: (plane: number, oi: number, cells: number[], divisor: number) => void): void {
  const [N, C, H, W] = x;
  const [OH, OW] = [out[2], out[3]];
  for (let pl = 0; pl < N * C; pl++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        const h0 = oh * p.stride[0] - p.padding[0];
        const w0 = ow * p.stride[1] - p.padding[1];
        const h1 = Math.min(h0 + p.kernel[0], H + p.padding[0]);
        const w1 = Math.min(w0 + p.kernel[1], W + p.padding[1]);
        const cells: number[] = [];
        for (let h = Math.max(h0, 0); h < Math.min(h1, H); h++) for (let w = Math.max(w0, 0); w < Math.min(w1, W); w++) cells.push(h * W + w);
        const divisor = p.countIncludePad === false ? cells.length : (h1 - h0) * (w1 - w0);
        fn(pl, (pl * OH + oh) * OW + ow, cells, divisor);
      }
}

function adaptiveWindows(x: readonly number[], out: readonly number[], fn: (inBase: number, oi: number, cells: number[]) => void): void {
  const [N, C, H, W] = x;
  const [OH, OW] = [out[2], out[3]];
  for (let pl = 0; pl < N * C; pl++)
    for (let oh = 0; oh < OH; oh++)
      for (let ow = 0; ow < OW; ow++) {
        const hs = Math.floor((oh * H) / OH);
        const he = Math.ceil(((oh + 1) * H) / OH);
        const ws = Math.floor((ow * W) / OW);
        const we = Math.ceil(((ow + 1) * W) / OW);
        const cells: number[] = [];
        for (let h = hs; h < he; h++) for (let w = ws; w < we; w++) cells.push(h * W + w);
        fn(pl * H * W, (pl * OH + oh) * OW + ow, cells);
      }
}

export const referenceBackend: Backend = {
  name: "reference",
  fused: { ...referenceFused },

  unary(op, x, out) {
    const f = UNARY[op];
    const xo = offsets(x);
    for (let i = 0; i < xo.length; i++) writeElem(out, out.offset + i, f(readElem(x.data, x.dtype, xo[i])));
  },

  binary(op, a, b, out) {
    const f = BINARY[op];
    const ao = offsets(a);
    const bo = offsets(b);
    for (let i = 0; i < ao.length; i++) writeElem(out, out.offset + i, f(readElem(a.data, a.dtype, ao[i]), readElem(b.data, b.dtype, bo[i])));
  },

  where(cond, a, b, out) {
    const co = offsets(cond);
    const ao = offsets(a);
    const bo = offsets(b);
    for (let i = 0; i < co.length; i++) {
      const v = cond.data[co[i]] ? readElem(a.data, a.dtype, ao[i]) : readElem(b.data, b.dtype, bo[i]);
      writeElem(out, out.offset + i, v);
    }
  },

  copy(x, out) {
    const xo = offsets(x);
    const oo = offsets(out);
    for (let i = 0; i < xo.length; i++) writeElem(out, oo[i], readElem(x.data, x.dtype, xo[i]));
  },

  reduce(op: ReduceOp, x, dims, out) {
    const acc = new Float64Array(out.size).fill(op === "sum" ? 0 : op === "max" ? -Infinity : Infinity);
    const target = reducedView(out, x.shape, dims);
    const xo = offsets(x);
    for (let i = 0; i < xo.length; i++) {
      const v = readElem(x.data, x.dtype, xo[i]);
      const t = target[i] - out.offset;
      if (op === "sum") acc[t] += v;
      else if (v !== v || (op === "max" ? v > acc[t] : v < acc[t])) acc[t] = v;
      else if (acc[t] !== acc[t]) continue;
    }
    store(out, acc);
  },

  argmax(x, dim, out) {
    const best = new Float64Array(out.size).fill(-Infinity);
    const arg = new Int32Array(out.size).fill(-1);
    const target = reducedView(out, x.shape, [dim]);
    forEachIndex(x.shape, (idx, i) => {
      const v = readElem(x.data, x.dtype, offsetOf(x, idx));
      const t = target[i] - out.offset;
      if (arg[t] < 0 || v > best[t] || (v !== v && best[t] === best[t])) {
        best[t] = v;
        arg[t] = idx[dim];
      }
    });
    out.data.set(arg, out.offset);
  },

  cumsum(x, dim, out) {
    const xv = values(x);
    const inner = x.shape.slice(dim + 1).reduce((a, b) => a * b, 1);
    const n = x.shape[dim];
    const outer = x.size / Math.max(1, n * inner);
    const res = new Float64Array(x.size);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < inner; j++) {
        let acc = 0;
        for (let k = 0; k < n; k++) {
          const i = (o * n + k) * inner + j;
          acc += xv[i];
          res[i] = acc;
        }
      }
    store(out, res);
  },

  matmul(a, b, out, accumulate = false) {
    const nd = out.ndim;
    const [M, K, N] = [a.shape[nd - 2], a.shape[nd - 1], b.shape[nd - 1]];
    const batchShape = out.shape.slice(0, nd - 2);
    const [as0, as1] = [a.strides[nd - 2], a.strides[nd - 1]];
    const [bs0, bs1] = [b.strides[nd - 2], b.strides[nd - 1]];
    const row = new Float64Array(N);
    const ad = a.data;
    const bd = b.data;
    // bf16/f16 operands (frozen LoRA bases) are widened element by element, each on its own.
    const wideA = a.dtype !== "float32" && a.dtype !== "float64";
    const wideB = b.dtype !== "float32" && b.dtype !== "float64";
    forEachIndex(batchShape, (bi, batch) => {
      let ao = a.offset;
      let bo = b.offset;
      for (let d = 0; d < bi.length; d++) {
        ao += bi[d] * a.strides[d];
        bo += bi[d] * b.strides[d];
      }
      for (let m = 0; m < M; m++) {
        row.fill(0);
        for (let k = 0; k < K; k++) {
          const av = wideA ? readElem(ad, a.dtype, ao + m * as0 + k * as1) : ad[ao + m * as0 + k * as1];
          if (av === 0) continue;
          const bk = bo + k * bs0;
          if (wideB) for (let n = 0; n < N; n++) row[n] += av * readElem(bd, b.dtype, bk + n * bs1);
          else for (let n = 0; n < N; n++) row[n] += av * bd[bk + n * bs1];
        }
        const base = out.offset + (batch * M + m) * N;
        if (accumulate) for (let n = 0; n < N; n++) out.data[base + n] += row[n];
        else for (let n = 0; n < N; n++) out.data[base + n] = row[n];
      }
    });
  },

  gather(x, dim, index, out) {
    forEachIndex(index.shape, (idx, i) => {
      const j = index.data[offsetOf(index, idx)];
      const src = idx.slice();
      src[dim] = j;
      writeElem(out, out.offset + i, readElem(x.data, x.dtype, offsetOf(x, src)));
    });
  },

  scatterAdd(dst, dim, index, src) {
    forEachIndex(index.shape, (idx) => {
      const j = index.data[offsetOf(index, idx)];
      const d = idx.slice();
      d[dim] = j;
      const off = offsetOf(dst, d);
      dst.data[off] += readElem(src.data, src.dtype, offsetOf(src, idx));
    });
  },

  indexSelect(x, dim, index, out) {
    forEachIndex(out.shape, (idx, i) => {
      const src = idx.slice();
      src[dim] = index.data[index.offset + idx[dim] * index.strides[0]];
      writeElem(out, out.offset + i, readElem(x.data, x.dtype, offsetOf(x, src)));
    });
  },

  indexAdd(dst, dim, index, src) {
    forEachIndex(src.shape, (idx) => {
      const d = idx.slice();
      d[dim] = index.data[index.offset + idx[dim] * index.strides[0]];
      dst.data[offsetOf(dst, d)] += readElem(src.data, src.dtype, offsetOf(src, idx));
    });
  },

  conv2d,

  conv2dBackwardInput(dy, w, dx, p) {
    const dyv = values(dy);
    const wv = values(w);
    const res = new Float64Array(dx.size);
    convPairs(dx.shape, w.shape, dy.shape, p, (xi, wi, oi) => {
      res[xi] += dyv[oi] * wv[wi];
    });
    store(dx, res);
  },

  conv2dBackwardWeight(x, dy, dw, p) {
    const dyv = values(dy);
    const xv = values(x);
    const res = new Float64Array(dw.size);
    convPairs(x.shape, dw.shape, dy.shape, p, (xi, wi, oi) => {
      res[wi] += dyv[oi] * xv[xi];
    });
    store(dw, res);
  },

  maxPool2d(x, out, indices, p) {
    const xv = values(x);
    const res = new Float64Array(out.size);
    const [H, W] = [x.shape[2], x.shape[3]];
    poolWindows(x.shape, out.shape, p, (pl, oi, cells) => {
      let best = -Infinity;
      let arg = cells[0] ?? 0;
      for (const c of cells) {
        const v = xv[pl * H * W + c];
        if (v > best || v !== v) {
          best = v;
          arg = c;
          if (v !== v) break;
        }
      }
      res[oi] = best;
      indices.data[indices.offset + oi] = arg;
    });
    store(out, res);
  },

  maxPool2dBackward(dy, indices, dx) {
    const dyv = values(dy);
    const [H, W] = [dx.shape[2], dx.shape[3]];
    const [OH, OW] = [dy.shape[2], dy.shape[3]];
    for (let oi = 0; oi < dyv.length; oi++) {
      const pl = Math.floor(oi / (OH * OW));
      dx.data[dx.offset + pl * H * W + indices.data[indices.offset + oi]] += dyv[oi];
    }
  },

  avgPool2d(x, out, p) {
    const xv = values(x);
    const res = new Float64Array(out.size);
    const HW = x.shape[2] * x.shape[3];
    poolWindows(x.shape, out.shape, p, (pl, oi, cells, div) => {
      let s = 0;
      for (const c of cells) s += xv[pl * HW + c];
      res[oi] = s / div;
    });
    store(out, res);
  },

  avgPool2dBackward(dy, dx, p) {
    const dyv = values(dy);
    const res = new Float64Array(dx.size);
    const HW = dx.shape[2] * dx.shape[3];
    poolWindows(dx.shape, dy.shape, p, (pl, oi, cells, div) => {
      for (const c of cells) res[pl * HW + c] += dyv[oi] / div;
    });
    store(dx, res);
  },

  adaptiveAvgPool2d(x, out) {
    const xv = values(x);
    const res = new Float64Array(out.size);
    adaptiveWindows(x.shape, out.shape, (base, oi, cells) => {
      let s = 0;
      for (const c of cells) s += xv[base + c];
      res[oi] = s / cells.length;
    });
    store(out, res);
  },

  adaptiveAvgPool2dBackward(dy, dx) {
    const dyv = values(dy);
    const res = new Float64Array(dx.size);
    adaptiveWindows(dx.shape, dy.shape, (base, oi, cells) => {
      for (const c of cells) res[base + c] += dyv[oi] / cells.length;
    });
    store(dx, res);
  },
};
