/** Reductions: sum, max/min (amax), argmax, cumsum; mean, var, logsumexp as composites. */
import type { ReduceOp } from "../backend/backend.ts";
import { DTypeError } from "../tensor/errors.ts";
import { normDim, normDims, shapesEqual } from "../tensor/shape.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { add, div, eq, exp, log, mul, sub, where } from "./elementwise.ts";
import { defineOp } from "./table.ts";
import { expand, reshape, squeeze } from "./view.ts";

interface ReduceAttrs {
  dims: number[];
}

const keptShape = (x: Tensor, dims: number[]) => x.shape.map((d, i) => (dims.includes(i) ? 1 : d));

function defineReduce(op: ReduceOp, vjp: (g: Tensor, x: Tensor, out: Tensor) => Tensor) {
  return defineOp<ReduceAttrs>({
    name: op,
    infer: ([x], { dims }) => {
      if (x.dtype === "bool" && op !== "sum") throw new DTypeError(`${op}: bool input not supported`);
      return { shape: keptShape(x, dims), dtype: x.dtype === "bool" ? "int32" : x.dtype };
    },
    forward: (be, out, [x], { dims }) => be.reduce(op, x, dims, out),
    vjp: (g, [x], out) => [vjp(g, x, out)],
  });
}

const sumOp = defineReduce("sum", (g, x) => expand(g, x.shape));
// Max/min: the gradient goes to every element equal to the extremum, split evenly (PyTorch amax).
const extremumVjp = (g: Tensor, x: Tensor, out: Tensor) => {
  const hit = eq(x, expand(out, x.shape));
  const counts = sumOp([hit], { dims: x.shape.map((_, i) => i).filter((i) => out.shape[i] === 1 && x.shape[i] !== 1) });
  return where(hit, div(expand(g, x.shape), expand(counts, x.shape)), 0);
};
const maxOp = defineReduce("max", extremumVjp);
const minOp = defineReduce("min", extremumVjp);

function reduceWith(opFn: (i: Tensor[], a: ReduceAttrs) => Tensor, x: Tensor, dim: number | readonly number[] | undefined, keepdim: boolean, name: string): Tensor {
  const dims = normDims(dim, x.ndim, name);
  const out = opFn([x], { dims });
  if (keepdim) return out;
  return reshape(out, x.shape.filter((_, i) => !dims.includes(i)));
}

/**
 * Sum over `dim` (all dims when undefined).
 * @example sum(x, [0, 2], true)
 */
export function sum(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return reduceWith(sumOp, x, dim, keepdim, "sum");
}
/** Maximum over `dim` (PyTorch `amax`). */
export function amax(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return reduceWith(maxOp, x, dim, keepdim, "amax");
}
/** Minimum over `dim` (PyTorch `amin`). */
export function amin(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  return reduceWith(minOp, x, dim, keepdim, "amin");
}
/** Alias of `amax` for one dim (values only; use `argmax` for indices). */
export const max = amax;
export const min = amin;

/** Mean over `dim`. */
export function mean(x: Tensor, dim?: number | readonly number[], keepdim = false): Tensor {
  const dims = normDims(dim, x.ndim, "mean");
  const n = dims.reduce((a, d) => a * x.shape[d], 1);
  return div(sum(x, dims, keepdim), n);
}

/** Variance over `dim`; `correction` 0 = biased (PyTorch `unbiased=False`), 1 = unbiased. */
export function variance(x: Tensor, dim?: number | readonly number[], keepdim = false, correction = 1): Tensor {
  const dims = normDims(dim, x.ndim, "var");
  const n = dims.reduce((a, d) => a * x.shape[d], 1);
  const c = sub(x, mean(x, dims, true));
  return div(sum(mul(c, c), dims, keepdim), Math.max(0, n - correction));
}

/** log(sum(exp(x))) over `dim`, stable. */
export function logsumexp(x: Tensor, dim: number | readonly number[], keepdim = false): Tensor {
  const dims = normDims(dim, x.ndim, "logsumexp");
  const m = amax(x, dims, true).detach();
  const r = add(log(sum(exp(sub(x, m)), dims, true)), m);
  return keepdim ? r : reshape(r, x.shape.filter((_, i) => !dims.includes(i)));
}

const argmaxOp = defineOp<{ dim: number }>({
  name: "argmax",
  infer: ([x], { dim }) => ({ shape: keptShape(x, [dim]), dtype: "int32" }),
  forward: (be, out, [x], { dim }) => be.argmax(x, dim, out),
});

/** Index of the maximum along `dim` (first on ties), int32. */
export function argmax(x: Tensor, dim = -1, keepdim = false): Tensor {
  const d = normDim(dim, x.ndim, "argmax");
  const out = argmaxOp([x], { dim: d });
  return keepdim ? out : squeeze(out, d);
}

const cumsumOp = defineOp<{ dim: number }>({
  name: "cumsum",
  infer: ([x]) => ({ shape: [...x.shape], dtype: x.dtype === "bool" ? "int32" : x.dtype }),
  forward: (be, out, [x], { dim }) => be.cumsum(x, dim, out),
  // d/dx_j sum_{i>=j} g_i: a reversed cumsum of g.
  vjp: (g, _x, _o, { dim }) => [flipCumsum(g, dim)],
});

function flipCumsum(g: Tensor, dim: number): Tensor {
  const total = sum(g, dim, true);
  return add(sub(expand(total, g.shape), cumsumOp([g], { dim })), g);
}

/** Cumulative sum along `dim`. */
export function cumsum(x: Tensor, dim: number): Tensor {
  return cumsumOp([x], { dim: normDim(dim, x.ndim, "cumsum") });
}

/** Sums `g` down to `shape` (undoing broadcasting). */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (shapesEqual(g.shape, shape)) return g;
  const lead = g.ndim - shape.length;
  const dims: number[] = [];
  for (let i = 0; i < g.ndim; i++) if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) dims.push(i);
  const s = dims.length ? sumOp([g], { dims }) : g;
  return reshape(s, shape);
}
