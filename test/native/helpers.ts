/**
 * Shared helpers for the native-vs-reference tests: the backends, seeded random tensors, strided
 * views (permuted, sliced, broadcast) and a relative comparison that prints where it fails.
 */
import assert from "node:assert/strict";
import type { Backend } from "../../src/backend/backend.ts";
import { loadNativeBackend } from "../../src/backend/native.ts";
import { referenceBackend } from "../../src/backend/reference/index.ts";
import { type DType, allocStorage } from "../../src/tensor/dtype.ts";
import { Tensor } from "../../src/tensor/tensor.ts";

const loaded = loadNativeBackend();
export const native: Backend | null = "backend" in loaded ? loaded.backend : null;
export const ref = referenceBackend;
/** Pass as the `skip` option of node:test when the addon is not built. */
export const skip: string | false = native ? false : `native addon unavailable (${"error" in loaded ? loaded.error : ""}); build it with npm run build:native`;
export function nat(): Backend {
  if (!native) throw new Error("native backend not loaded");
  return native;
}

let seed = 12345;
/** Deterministic uniform in [0, 1). */
export function rnd(): number {
  seed = (seed * 1664525 + 1013904223) >>> 0;
  return seed / 4294967296;
}

/** Random contiguous tensor, values in [lo, hi). */
export function randT(shape: readonly number[], lo = -1, hi = 1, dtype: DType = "float32"): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = allocStorage(dtype, n);
  for (let i = 0; i < n; i++) data[i] = lo + (hi - lo) * rnd();
  return new Tensor(data, dtype, shape);
}

export function randInt(shape: readonly number[], lo: number, hi: number): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Int32Array(n);
  for (let i = 0; i < n; i++) data[i] = lo + Math.floor((hi - lo) * rnd());
  return new Tensor(data, "int32", shape);
}

export function zerosT(shape: readonly number[], dtype: DType = "float32"): Tensor {
  return new Tensor(allocStorage(dtype, shape.reduce((a, b) => a * b, 1)), dtype, shape);
}

/** A view of `shape` laid out in memory in `perm` order (a permuted, non-contiguous tensor). */
export function permutedView(shape: number[], perm: number[]): Tensor {
  const stored = randT(perm.map((p) => shape[p]));
  const strides = new Array<number>(shape.length);
  perm.forEach((p, i) => {
    strides[p] = stored.strides[i];
  });
  return stored.view_(shape, strides, 0);
}

/** A view of `shape` cut from a larger random tensor (offset + padded strides). */
export function slicedView(shape: number[], pad = 3): Tensor {
  const big = randT(shape.map((s) => s + pad));
  const off = big.strides.reduce((a, s) => a + s, 0);
  return big.view_(shape, big.strides, off);
}

/** `t` broadcast to `shape` (stride 0 on its size-1 dims, right-aligned). */
export function expandTo(t: Tensor, shape: number[]): Tensor {
  const lead = shape.length - t.ndim;
  const strides = shape.map((_, d) => (d < lead || t.shape[d - lead] === 1 ? 0 : t.strides[d - lead]));
  return t.view_(shape, strides, t.offset);
}

/** Asserts max|a-b| / max(1, |b|) <= tol elementwise (NaNs must match). */
export function assertClose(a: Tensor | ArrayLike<number>, b: Tensor | ArrayLike<number>, tol = 1e-5, what = ""): void {
  const av = a instanceof Tensor ? a.toFloat64Array() : Float64Array.from(a);
  const bv = b instanceof Tensor ? b.toFloat64Array() : Float64Array.from(b);
  assert.equal(av.length, bv.length, `${what}: length ${av.length} vs ${bv.length}`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < av.length; i++) {
    if (Number.isNaN(bv[i]) || Number.isNaN(av[i])) {
      if (Number.isNaN(bv[i]) !== Number.isNaN(av[i])) {
        worst = Infinity;
        at = i;
        break;
      }
      continue;
    }
    if (av[i] === bv[i]) continue;
    const e = Math.abs(av[i] - bv[i]) / Math.max(1, Math.abs(bv[i]));
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  if (worst > tol) {
    const first = (v: Float64Array) => Array.from(v.slice(0, 6), (x) => x.toPrecision(6)).join(", ");
    assert.fail(`${what}: max rel diff ${worst.toExponential(3)} at ${at} (${av[at]} vs ${bv[at]})\n  native:    ${first(av)}\n  reference: ${first(bv)}`);
  }
}

/** Contiguous copy of |t| (for error scales of sums: sum |a||b| bounds the rounding of sum a*b). */
export function absT(t: Tensor): Tensor {
  const v = t.toFloat64Array();
  const out = zerosT(t.shape, t.dtype);
  for (let i = 0; i < v.length; i++) out.data[i] = Math.abs(v[i]);
  return out;
}

/**
 * Asserts |a-b| / max(1, scale) <= tol elementwise, where scale is sum |terms| of each output
 * (float32 accumulation over K terms is only accurate relative to that, as in any BLAS).
 */
export function assertCloseScaled(a: Tensor, b: Tensor, scale: Tensor, tol = 1e-5, what = ""): void {
  const av = a.toFloat64Array();
  const bv = b.toFloat64Array();
  const sv = scale.toFloat64Array();
  let worst = 0;
  let at = 0;
  for (let i = 0; i < av.length; i++) {
    const e = Math.abs(av[i] - bv[i]) / Math.max(1, sv[i]);
    if (!(e <= worst)) {
      worst = e;
      at = i;
    }
  }
  if (!(worst <= tol)) assert.fail(`${what}: max scaled diff ${worst.toExponential(3)} at ${at} (${av[at]} vs ${bv[at]}, scale ${sv[at]})`);
}
