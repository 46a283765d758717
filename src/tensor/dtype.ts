/**
 * Data types. Compute happens in float32 (float64 for gradient checks); int32 holds ids and labels;
 * bool holds masks; bfloat16/float16 are storage types that widen to float32 when read.
 */
import { DTypeError } from "./errors.ts";

export type DType = "float32" | "float64" | "int32" | "bool" | "bfloat16" | "float16";
export type FloatDType = "float32" | "float64";
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array | Uint16Array;

export const DTYPES: readonly DType[] = ["float32", "float64", "int32", "bool", "bfloat16", "float16"];

export function itemSize(dtype: DType): number {
  switch (dtype) {
    case "float64":
      return 8;
    case "float32":
    case "int32":
      return 4;
    case "bfloat16":
    case "float16":
      return 2;
    case "bool":
      return 1;
  }
}

/** Allocates a zeroed storage array for `n` elements of `dtype`. */
export function allocStorage(dtype: DType, n: number): TypedArray {
  switch (dtype) {
    case "float32":
      return new Float32Array(n);
    case "float64":
      return new Float64Array(n);
    case "int32":
      return new Int32Array(n);
    case "bool":
      return new Uint8Array(n);
    case "bfloat16":
    case "float16":
      return new Uint16Array(n);
    default:
      throw new DTypeError(`unknown dtype '${String(dtype)}'`);
  }
}

/** True for dtypes the arithmetic kernels compute in directly. */
export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === "float32" || dtype === "float64";
}

/** A storage dtype that must be widened to float32 before computing. */
export function isHalf(dtype: DType): boolean {
  return dtype === "bfloat16" || dtype === "float16";
}

/** The dtype of a binary op's result (PyTorch-style promotion restricted to our set). */
export function promote(a: DType, b: DType): DType {
  if (a === b) return isHalf(a) ? "float32" : a;
  if (a === "float64" || b === "float64") return "float64";
  return "float32";
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** bfloat16 bits -> float32 value. */
export function bf16ToF32(bits: number): number {
  u32[0] = bits << 16;
  return f32[0];
}

/** float32 value -> bfloat16 bits, rounding to nearest even (NaN stays NaN). */
export function f32ToBf16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** IEEE half bits -> float32 value. */
export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Number.POSITIVE_INFINITY;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 value -> IEEE half bits, rounding to nearest even. */
export function f32ToF16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let r = mant >>> shift;
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 31) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** Widens a bf16/f16 storage array into float32. */
export function widenHalf(src: Uint16Array, dtype: "bfloat16" | "float16", out = new Float32Array(src.length)): Float32Array {
  if (dtype === "bfloat16") {
    const o32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
    for (let i = 0; i < src.length; i++) o32[i] = src[i] << 16;
  } else {
    for (let i = 0; i < src.length; i++) out[i] = f16ToF32(src[i]);
  }
  return out;
}
