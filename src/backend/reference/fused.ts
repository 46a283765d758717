/**
 * Reference versions of the fused batch-norm, clamp and linear kernels (the definition the native ones
 * are tested against). float64 accumulation; float32 or float64 tensors. x / dy / outputs are
 * contiguous (the op layer makes them so); the per-channel vectors may be strided views.
 */
import { readElem, type Tensor } from "../../tensor/tensor.ts";
import type { FusedKernels } from "../backend.ts";

/** Element i of a 1-D view. */
const at = (t: Tensor, i: number): number => t.data[t.offset + i * (t.strides[0] ?? 0)] as number;
const put = (t: Tensor, i: number, v: number): void => {
  t.data[t.offset + i * (t.strides[0] ?? 0)] = v;
};

/** The bounds in x's precision (float32 compares against the float32-rounded bounds, as a tensor would). */
const bounds = (x: Tensor, lo: number, hi: number): [number, number] =>
  x.dtype === "float32" ? [Math.fround(lo), Math.fround(hi)] : [lo, hi];

/** (N, C, S) of a batch-norm input of any rank >= 2 (S = product of the trailing dims). */
function ncs(x: Tensor): [number, number, number] {
  const N = x.shape[0];
  const C = x.shape[1];
  return [N, C, N * C === 0 ? 0 : x.size / (N * C)];
}

export const referenceFused: Pick<
  FusedKernels,
  "batchNorm" | "batchNormBackward" | "clamp" | "clampBackward" | "linear"
> = {
  /** x and weight any strides; out contiguous. */
  linear(x, weight, bias, out) {
    const [M, K] = x.shape;
    const N = weight.shape[0];
    const [xs0, xs1] = x.strides;
    const [ws0, ws1] = weight.strides;
    const wide = weight.dtype !== "float32" && weight.dtype !== "float64";
    const row = new Float64Array(N);
    for (let m = 0; m < M; m++) {
      for (let n = 0; n < N; n++) row[n] = at(bias, n);
      for (let k = 0; k < K; k++) {
        const xv = x.data[x.offset + m * xs0 + k * xs1] as number;
        if (xv === 0) continue; // as the reference matmul
        const wk = weight.offset + k * ws1;
        if (wide) for (let n = 0; n < N; n++) row[n] += xv * readElem(weight.data, weight.dtype, wk + n * ws0);
        else for (let n = 0; n < N; n++) row[n] += xv * (weight.data[wk + n * ws0] as number);
      }
      out.data.set(row, out.offset + m * N);
    }
  },
  batchNorm(x, weight, bias, training, eps, out, mean, variance, rstd) {
    const [N, C, S] = ncs(x);
    const xd = x.data as Float32Array | Float64Array;
    const od = out.data as Float32Array | Float64Array;
    const n = N * S;
    for (let c = 0; c < C; c++) {
      if (training) {
        let s = 0;
        for (let i = 0; i < N; i++) for (let j = 0, o = x.offset + (i * C + c) * S; j < S; j++) s += xd[o + j];
        const mu = n > 0 ? s / n : 0;
        let ss = 0;
        for (let i = 0; i < N; i++) {
          for (let j = 0, o = x.offset + (i * C + c) * S; j < S; j++) {
            const d = xd[o + j] - mu;
            ss += d * d;
          }
        }
        const v = n > 0 ? ss / n : 0;
        put(mean, c, mu);
        if (variance) put(variance, c, v);
        put(rstd, c, 1 / Math.sqrt(v + eps));
      }
      // Normalise with the stored (dtype-rounded) statistics, as the backward will see them.
      const mu = at(mean, c);
      const rs = at(rstd, c);
      const w = weight ? at(weight, c) : 1;
      const b = bias ? at(bias, c) : 0;
      for (let i = 0; i < N; i++) {
        const o = (i * C + c) * S;
        for (let j = 0; j < S; j++) od[out.offset + o + j] = (xd[x.offset + o + j] - mu) * rs * w + b;
      }
    }
  },

  batchNormBackward(x, weight, mean, rstd, dy, training, dx, dweight, dbias) {
    const [N, C, S] = ncs(x);
    const xd = x.data as Float32Array | Float64Array;
    const gd = dy.data as Float32Array | Float64Array;
    const n = N * S;
    for (let c = 0; c < C; c++) {
      const mu = at(mean, c);
      const rs = at(rstd, c);
      const w = weight ? at(weight, c) : 1;
      let sg = 0;
      let sgx = 0;
      if (training || dweight || dbias) {
        for (let i = 0; i < N; i++) {
          for (let j = 0, o = (i * C + c) * S; j < S; j++) {
            const g = gd[dy.offset + o + j];
            sg += g;
            sgx += g * (xd[x.offset + o + j] - mu) * rs;
          }
        }
      }
      if (dweight) put(dweight, c, sgx);
      if (dbias) put(dbias, c, sg);
      if (!dx) continue;
      const dd = dx.data as Float32Array | Float64Array;
      const k = w * rs;
      const mg = training && n > 0 ? sg / n : 0;
      const mgx = training && n > 0 ? sgx / n : 0;
      for (let i = 0; i < N; i++) {
        for (let j = 0, o = (i * C + c) * S; j < S; j++) {
          const g = gd[dy.offset + o + j];
          dd[dx.offset + o + j] = training ? k * (g - mg - (xd[x.offset + o + j] - mu) * rs * mgx) : k * g;
        }
      }
    }
  },

  clamp(x, lo0, hi0, out) {
    const [lo, hi] = bounds(x, lo0, hi0);
    const xd = x.data as Float32Array | Float64Array;
    const od = out.data as Float32Array | Float64Array;
    for (let i = 0; i < x.size; i++) {
      let v = xd[x.offset + i];
      if (v < lo) v = lo;
      if (v > hi) v = hi;
      od[out.offset + i] = v;
    }
  },

  clampBackward(x, dy, lo0, hi0, inclusive, dx) {
    const [lo, hi] = bounds(x, lo0, hi0);
    const xd = x.data as Float32Array | Float64Array;
    const gd = dy.data as Float32Array | Float64Array;
    const dd = dx.data as Float32Array | Float64Array;
    for (let i = 0; i < x.size; i++) {
      const v = xd[x.offset + i];
      const out = inclusive ? v < lo || v > hi : v <= lo || v >= hi;
      dd[dx.offset + i] = out ? 0 : gd[dy.offset + i];
    }
  },
};
