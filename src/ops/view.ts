/**
 * View primitives: new layout over the same storage, no copy. reshape (when the layout allows),
 * permute, expand, slice with steps; plus contiguous/cast, cat and pad, which copy.
 */
import { record } from "../autograd/tape.ts";
import { backend } from "../backend/index.ts";
import type { DType } from "../tensor/dtype.ts";
import { IndexError, ShapeError, ValueError, fmtShape } from "../tensor/errors.ts";
import { contiguousStrides, normDim, numel, shapesEqual } from "../tensor/shape.ts";
import { Tensor, empty, zeros } from "../tensor/tensor.ts";
import { sumTo } from "./reduce.ts";
import { OPS } from "./table.ts";

export interface ViewSpec<A> {
  name: string;
  /** Shape rule + layout: returns the view (validating attrs). */
  view(x: Tensor, attrs: A): Tensor;
  vjp(g: Tensor, x: Tensor, attrs: A): Tensor;
}

export const VIEWS = new Map<string, ViewSpec<never>>();

function defineView<A>(spec: ViewSpec<A>): (x: Tensor, attrs: A) => Tensor {
  VIEWS.set(spec.name, spec as ViewSpec<never>);
  return (x, attrs) => {
    const v = spec.view(x, attrs);
    // An identity view is x itself: recording on it would turn a leaf into its own child.
    return v === x ? x : record(v, spec.name, [x], (g) => [spec.vjp(g, x, attrs)]);
  };
}

/** Strides for viewing `x` as `shape` without a copy, or null when the layout forbids it. */
function viewStrides(x: Tensor, shape: readonly number[]): number[] | null {
  if (x.isContiguous()) return contiguousStrides(shape);
  // Merge x's dims into contiguous chunks, then split each chunk among the new dims.
  const oldShape = x.shape.filter((d) => d !== 1);
  const oldStrides = x.strides.filter((_, i) => x.shape[i] !== 1);
  const out = new Array<number>(shape.length).fill(0);
  let oi = 0;
  let ni = 0;
  while (ni < shape.length && shape[ni] === 1) out[ni++] = 1;
  while (oi < oldShape.length) {
    // collect a chunk of old dims that are contiguous with each other
    let chunk = oldShape[oi];
    let j = oi;
    while (j + 1 < oldShape.length && oldStrides[j] === oldStrides[j + 1] * oldShape[j + 1]) chunk *= oldShape[++j];
    const innerStride = oldStrides[j];
    // take new dims until their product equals the chunk
    let prod = 1;
    const start = ni;
    while (ni < shape.length && prod < chunk) prod *= shape[ni++];
    if (prod !== chunk) return null;
    let s = innerStride;
    for (let k = ni - 1; k >= start; k--) {
      out[k] = s;
      s *= shape[k];
    }
    while (ni < shape.length && shape[ni] === 1) out[ni++] = 1;
    oi = j + 1;
  }
  return ni === shape.length ? out : null;
}

function resolveShape(x: Tensor, shape: readonly number[]): number[] {
  const s = [...shape];
  const neg = s.indexOf(-1);
  if (neg >= 0) {
    const rest = numel(s.filter((_, i) => i !== neg));
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError(`reshape: cannot infer -1 in ${fmtShape(shape)} for ${x.size} elements`);
    s[neg] = x.size / rest;
  }
  if (numel(s) !== x.size || s.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new ShapeError(`reshape: shape ${fmtShape(shape)} is invalid for input of shape ${fmtShape(x.shape)} (${x.size} elements)`);
  }
  return s;
}

const viewOp = defineView<{ shape: number[] }>({
  name: "view",
  view: (x, { shape }) => {
    const st = viewStrides(x, shape);
    if (!st) throw new ShapeError(`view: shape ${fmtShape(shape)} is not compatible with the layout of ${fmtShape(x.shape)}; use reshape`);
    return x.view_(shape, st, x.offset);
  },
  vjp: (g, x) => reshape(g, x.shape),
});

/** Reshape: a view when the layout allows, else a contiguous copy. `-1` infers one dim. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = resolveShape(x, shape);
  if (shapesEqual(s, x.shape)) return x;
  return viewOp(viewStrides(x, s) ? x : contiguous(x), { shape: s });
}

const permuteOp = defineView<{ dims: number[] }>({
  name: "permute",
  view: (x, { dims }) => {
    const nd = x.ndim;
    const d = dims.map((v) => normDim(v, nd, "permute"));
    if (d.length !== nd || new Set(d).size !== nd) throw new ShapeError(`permute: dims [${dims}] are not a permutation for a ${nd}-d tensor ${fmtShape(x.shape)}`);
    return x.view_(d.map((i) => x.shape[i]), d.map((i) => x.strides[i]), x.offset);
  },
  vjp: (g, x, { dims }) => {
    const inv = new Array<number>(dims.length);
    dims.forEach((v, i) => {
      inv[v < 0 ? v + x.ndim : v] = i;
    });
    return permute(g, inv);
  },
});

/** Reorders dims (a view). */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  return permuteOp(x, { dims: [...dims] });
}

/** Swaps two dims (a view). */
export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const nd = x.ndim;
  const dims = [...Array(nd).keys()];
  const a = normDim(d0, nd, "transpose");
  const b = normDim(d1, nd, "transpose");
  [dims[a], dims[b]] = [dims[b], dims[a]];
  return permute(x, dims);
}

const expandOp = defineView<{ shape: number[] }>({
  name: "expand",
  view: (x, { shape }) => expandView(x, shape),
  vjp: (g, x) => sumTo(g, x.shape),
});

/** Broadcast view of `x` to `shape` (stride 0 on expanded dims), without autograd. */
export function expandView(x: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(x.shape, shape)) return x;
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const xd = x.shape[i - lead];
    const target = d === -1 ? xd : d;
    if (xd === target) return x.strides[i - lead];
    if (xd === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i}: ${xd} -> ${d})`);
  });
  const s = shape.map((d, i) => (d === -1 ? x.shape[i - lead] : d));
  return x.view_(s, strides, x.offset);
}

/** Broadcasts `x` to `shape` (a view; -1 keeps a dim). */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  return expandOp(x, { shape: [...shape] });
}

export interface SliceSpec {
  dim: number;
  start?: number;
  end?: number;
  step?: number;
}

const sliceOp = defineView<{ dim: number; start: number; end: number; step: number }>({
  name: "slice",
  view: (x, { dim, start, end, step }) => {
    const n = Math.max(0, Math.ceil((end - start) / step));
    const shape = [...x.shape];
    shape[dim] = n;
    const strides = [...x.strides];
    strides[dim] *= step;
    return x.view_(shape, strides, x.offset + (n > 0 ? start * x.strides[dim] : 0));
  },
  vjp: (g, x, a) => {
    const out = zeros(x.shape, { dtype: g.dtype });
    const v = sliceOp(out, a);
    backend().copy(g, v);
    return out;
  },
});

/**
 * `x[..., start:end:step, ...]` along `dim` (a view). Negative start/end count from the end.
 * @example slice(x, 1, 1, 4, 2) // x[:, 1:4:2]
 */
export function slice(x: Tensor, dim: number, start = 0, end = Number.POSITIVE_INFINITY, step = 1): Tensor {
  const d = normDim(dim, x.ndim, "slice");
  const n = x.shape[d];
  if (!Number.isInteger(step) || step <= 0) throw new ValueError(`slice: step must be a positive integer, got ${step}`);
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  return sliceOp(x, { dim: d, start: clampIdx(start), end: clampIdx(end), step });
}

/** Selects index `i` along `dim`, removing that dim (a view). */
export function select(x: Tensor, dim: number, i: number): Tensor {
  const d = normDim(dim, x.ndim, "select");
  const n = x.shape[d];
  if (i < -n || i >= n) throw new IndexError(`select: index ${i} out of range for dim ${dim} of size ${n}`);
  const s = slice(x, d, i < 0 ? i + n : i, (i < 0 ? i + n : i) + 1);
  return squeeze(s, d);
}

/** Removes size-1 dims (all, or the given one). */
export function squeeze(x: Tensor, dim?: number): Tensor {
  if (dim === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const d = normDim(dim, x.ndim, "squeeze");
  if (x.shape[d] !== 1) return x;
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

/** Inserts a size-1 dim at `dim`. */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim(dim, x.ndim + 1, "unsqueeze");
  const s = [...x.shape];
  s.splice(d, 0, 1);
  return reshape(x, s);
}

/** Flattens dims `start..end` into one. */
export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normDim(start, x.ndim, "flatten");
  const e = normDim(end, x.ndim, "flatten");
  return reshape(x, [...x.shape.slice(0, s), numel(x.shape.slice(s, e + 1)), ...x.shape.slice(e + 1)]);
}

function copyOp(x: Tensor, dtype: DType): Tensor {
  const out = empty(x.shape, dtype);
  backend().copy(x, out);
  const float = dtype === "float32" || dtype === "float64";
  return float ? record(out, "copy", [x], (g) => [x.dtype === g.dtype ? g : copyOp(g, x.dtype)]) : out;
}
OPS.set("copy", { name: "copy" } as never);

/** A contiguous tensor with the same values (x itself when already contiguous). */
export function contiguous(x: Tensor): Tensor {
  return x.isContiguous() && x.offset + x.size <= x.data.length ? x : copyOp(x, x.dtype);
}

/** A contiguous copy that owns its storage (PyTorch `clone`). */
export function clone(x: Tensor): Tensor {
  return copyOp(x, x.dtype);
}

/** Casts to `dtype` (a copy unless already that dtype). Gradients flow through float casts. */
export function cast(x: Tensor, dtype: DType): Tensor {
  return x.dtype === dtype ? x : copyOp(x, dtype);
}

/** Concatenates along `dim`. */
export function cat(xs: readonly Tensor[], dim = 0): Tensor {
  if (xs.length === 0) throw new ValueError("cat: expected a non-empty list of tensors");
  const nd = xs[0].ndim;
  const d = normDim(dim, nd, "cat");
  for (const t of xs) {
    if (t.ndim !== nd || t.shape.some((s, i) => i !== d && s !== xs[0].shape[i])) {
      throw new ShapeError(`cat: shapes ${xs.map((x) => fmtShape(x.shape)).join(", ")} differ outside dim ${dim}`);
    }
  }
  const shape = [...xs[0].shape];
  shape[d] = xs.reduce((a, t) => a + t.shape[d], 0);
  const out = empty(shape, xs[0].dtype);
  let at = 0;
  const starts: number[] = [];
  for (const t of xs) {
    starts.push(at);
    backend().copy(t, sliceView(out, d, at, at + t.shape[d]));
    at += t.shape[d];
  }
  return record(out, "cat", xs, (g) => xs.map((t, i) => (t.requiresGrad ? contiguous(slice(g, d, starts[i], starts[i] + t.shape[d])) : null)));
}
OPS.set("cat", { name: "cat" } as never);

function sliceView(x: Tensor, d: number, start: number, end: number): Tensor {
  const shape = [...x.shape];
  shape[d] = end - start;
  return x.view_(shape, x.strides, x.offset + start * x.strides[d]);
}

/** Stacks along a new dim. */
export function stack(xs: readonly Tensor[], dim = 0): Tensor {
  if (xs.length === 0) throw new ValueError("stack: expected a non-empty list of tensors");
  for (const t of xs) if (!shapesEqual(t.shape, xs[0].shape)) throw new ShapeError(`stack: shapes ${xs.map((x) => fmtShape(x.shape)).join(", ")} differ`);
  const d = normDim(dim, xs[0].ndim + 1, "stack");
  return cat(xs.map((t) => unsqueeze(t, d)), d);
}

/** Splits into chunks of `size` (number) or the given sizes along `dim` (views). */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normDim(dim, x.ndim, "split");
  const n = x.shape[d];
  const list = typeof sizes === "number" ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : [...sizes];
  if (list.reduce((a, b) => a + b, 0) !== n) throw new ShapeError(`split: sizes [${list}] do not sum to dim ${dim} of ${fmtShape(x.shape)}`);
  let at = 0;
  return list.map((s) => {
    const t = slice(x, d, at, at + s);
    at += s;
    return t;
  });
}

/** Splits into `n` nearly equal chunks along `dim`. */
export function chunk(x: Tensor, n: number, dim = 0): Tensor[] {
  const size = Math.ceil(x.shape[normDim(dim, x.ndim, "chunk")] / n);
  return split(x, size, dim);
}

/**
 * Constant padding, PyTorch `F.pad` order: pairs from the last dim backwards.
 * @example pad(x, [1, 2, 0, 1]) // last dim +1 left +2 right, second-last +0 / +1
 */
export function pad(x: Tensor, pads: readonly number[], value = 0): Tensor {
  if (pads.length % 2 !== 0 || pads.length / 2 > x.ndim) throw new ShapeError(`pad: ${pads.length} pad values for a ${x.ndim}-d tensor`);
  const shape = [...x.shape];
  const lo = new Array<number>(x.ndim).fill(0);
  for (let i = 0; i < pads.length / 2; i++) {
    const d = x.ndim - 1 - i;
    if (pads[2 * i] < 0 || pads[2 * i + 1] < 0) throw new ValueError(`pad: negative padding [${pads}] is not supported`);
    lo[d] = pads[2 * i];
    shape[d] += pads[2 * i] + pads[2 * i + 1];
  }
  const out = empty(shape, x.dtype);
  if (value !== 0) out.data.fill(value);
  const inner = () => {
    let v = out;
    for (let d = 0; d < x.ndim; d++) v = sliceView(v, d, lo[d], lo[d] + x.shape[d]);
    return v;
  };
  backend().copy(x, inner());
  return record(out, "pad", [x], (g) => {
    let v = g;
    for (let d = 0; d < x.ndim; d++) v = sliceView(v, d, lo[d], lo[d] + x.shape[d]);
    return [contiguous(v)];
  });
}
OPS.set("pad", { name: "pad" } as never);

export { Tensor };
