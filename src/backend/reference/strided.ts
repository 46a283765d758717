/** Strided iteration helpers for the reference kernels: plain, obviously correct loops. */
import { f32ToBf16, f32ToF16 } from "../../tensor/dtype.ts";
import { type Tensor, forEachOffset, readElem } from "../../tensor/tensor.ts";

/** Storage offsets of every element of `t` in row-major order. */
export function offsets(t: Tensor): Int32Array {
  const out = new Int32Array(t.size);
  if (t.isContiguous()) {
    for (let i = 0; i < out.length; i++) out[i] = t.offset + i;
  } else {
    forEachOffset(t.shape, t.strides, t.offset, (off, i) => {
      out[i] = off;
    });
  }
  return out;
}

/** Values of `t` as float64 in row-major order (widening bf16/f16). */
export function values(t: Tensor): Float64Array {
  return t.toFloat64Array();
}

/** Writes `v` at storage offset `off` of `t`, casting to its dtype. */
export function writeElem(t: Tensor, off: number, v: number): void {
  switch (t.dtype) {
    case "int32":
      t.data[off] = Math.trunc(v);
      break;
    case "bool":
      t.data[off] = v !== 0 ? 1 : 0;
      break;
    case "bfloat16":
      t.data[off] = f32ToBf16(v);
      break;
    case "float16":
      t.data[off] = f32ToF16(v);
      break;
    default:
      t.data[off] = v;
  }
}

/** Calls fn(index, flat) for every multi-index of `shape` (row-major). */
export function forEachIndex(shape: readonly number[], fn: (idx: number[], i: number) => void): void {
  let n = 1;
  for (const d of shape) n *= d;
  if (n === 0) return;
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = 0; i < n; i++) {
    fn(idx, i);
    for (let d = shape.length - 1; d >= 0; d--) {
      if (++idx[d] < shape[d]) break;
      idx[d] = 0;
    }
  }
}

export function offsetOf(t: Tensor, idx: readonly number[]): number {
  let off = t.offset;
  for (let d = 0; d < idx.length; d++) off += idx[d] * t.strides[d];
  return off;
}

export { readElem };
