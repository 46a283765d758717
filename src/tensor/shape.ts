/** Shape utilities: contiguous strides, broadcasting, dimension normalisation. */
import { IndexError, ShapeError, fmtShape } from "./errors.ts";

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides for `shape`. */
export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i];
  }
  return s;
}

export function isContiguous(shape: Shape, strides: Shape): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i];
  }
  return true;
}

/** Normalises a possibly negative dimension index against `ndim`. */
export function normDim(dim: number, ndim: number, op = "op"): number {
  const d = dim < 0 ? dim + ndim : dim;
  if (!Number.isInteger(d) || d < 0 || d >= Math.max(ndim, 1)) {
    throw new IndexError(`${op}: dimension ${dim} out of range for a ${ndim}-d tensor`);
  }
  return d;
}

/** Normalises `dims` (undefined = all) into sorted unique non-negative dims. */
export function normDims(dims: number | readonly number[] | undefined, ndim: number, op = "op"): number[] {
  if (dims === undefined) return [...Array(ndim).keys()];
  const list = typeof dims === "number" ? [dims] : dims;
  const out = [...new Set(list.map((d) => normDim(d, ndim, op)))];
  return out.sort((a, b) => a - b);
}

/** NumPy broadcasting of two shapes. */
export function broadcastShapes(a: Shape, b: Shape, op = "broadcast"): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: shapes ${fmtShape(a)} and ${fmtShape(b)} cannot be broadcast (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Checks a user-supplied shape: non-negative integers. */
export function checkShape(shape: Shape, op: string): void {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new ShapeError(`${op}: invalid shape ${fmtShape(shape)}`);
  }
}
