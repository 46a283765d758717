/** Index ops: gather, scatter-add, index_select, embedding. Indices are int32 and checked. */
import { isHalf } from "../tensor/dtype.ts";
import { DTypeError, IndexError, ShapeError, fmtShape } from "../tensor/errors.ts";
import { normDim } from "../tensor/shape.ts";
import { type Tensor, zeros } from "../tensor/tensor.ts";
import { backend } from "../backend/index.ts";
import { defineOp } from "./table.ts";
import { contiguous, reshape } from "./view.ts";

function checkIndex(op: string, index: Tensor, size: number, what: string): void {
  if (index.dtype !== "int32") throw new DTypeError(`${op}: indices must be int32, got ${index.dtype}`);
  const v = index.toFloat64Array();
  for (let i = 0; i < v.length; i++) {
    if (v[i] < 0 || v[i] >= size) throw new IndexError(`${op}: index ${v[i]} out of range for ${what} of size ${size} (index shape ${fmtShape(index.shape)})`);
  }
}

const gatherOp = defineOp<{ dim: number }>({
  name: "gather",
  infer: ([x, index], { dim }) => {
    if (index.ndim !== x.ndim) throw new ShapeError(`gather: index ${fmtShape(index.shape)} must have as many dims as input ${fmtShape(x.shape)}`);
    checkIndex("gather", index, x.shape[dim], `dim ${dim} of input ${fmtShape(x.shape)}`);
    return { shape: [...index.shape], dtype: x.dtype };
  },
  forward: (be, out, [x, index], { dim }) => be.gather(x, dim, index, out),
  vjp: (g, [x, index], _o, { dim }) => {
    const dx = zeros(x.shape, { dtype: g.dtype });
    backend().scatterAdd(dx, dim, index, g);
    return [dx, null];
  },
});

/** `torch.gather(x, dim, index)`. */
export function gather(x: Tensor, dim: number, index: Tensor): Tensor {
  return gatherOp([x, index], { dim: normDim(dim, x.ndim, "gather") });
}

const scatterAddOp = defineOp<{ dim: number }>({
  name: "scatterAdd",
  infer: ([x, index, src], { dim }) => {
    if (index.ndim !== x.ndim || src.ndim !== x.ndim) throw new ShapeError(`scatterAdd: dims differ: ${fmtShape(x.shape)}, index ${fmtShape(index.shape)}, src ${fmtShape(src.shape)}`);
    checkIndex("scatterAdd", index, x.shape[dim], `dim ${dim} of ${fmtShape(x.shape)}`);
    return { shape: [...x.shape], dtype: x.dtype };
  },
  forward: (be, out, [x, index, src], { dim }) => {
    be.copy(x, out);
    be.scatterAdd(out, dim, index, src);
  },
  vjp: (g, [, index], _o, { dim }) => [g, null, gather(g, dim, index)],
});

/** Out-of-place `x.scatter_add(dim, index, src)`. */
export function scatterAdd(x: Tensor, dim: number, index: Tensor, src: Tensor): Tensor {
  return scatterAddOp([x, index, src], { dim: normDim(dim, x.ndim, "scatterAdd") });
}

const indexSelectOp = defineOp<{ dim: number }>({
  name: "indexSelect",
  // A bf16/f16 table (a frozen embedding) is read in place: only the selected rows are widened.
  acceptsHalf: true,
  infer: ([x, index], { dim }) => {
    if (index.ndim !== 1) throw new ShapeError(`indexSelect: index must be 1-d, got ${fmtShape(index.shape)}`);
    checkIndex("indexSelect", index, x.shape[dim], `dim ${dim} of ${fmtShape(x.shape)}`);
    const shape = [...x.shape];
    shape[dim] = index.shape[0];
    return { shape, dtype: isHalf(x.dtype) ? "float32" : x.dtype };
  },
  forward: (be, out, [x, index], { dim }) => be.indexSelect(x, dim, index, out),
  vjp: (g, [x, index], _o, { dim }) => {
    const dx = zeros(x.shape, { dtype: g.dtype });
    backend().indexAdd(dx, dim, index, contiguous(g));
    return [dx, null];
  },
});

/** `torch.index_select(x, dim, index)`. */
export function indexSelect(x: Tensor, dim: number, index: Tensor): Tensor {
  return indexSelectOp([x, index], { dim: normDim(dim, x.ndim, "indexSelect") });
}

/**
 * Embedding lookup: weight (V, D), ids int32 of any shape -> (...ids.shape, D).
 * @example embedding(wte, inputIds)
 */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  if (ids.dtype !== "int32") throw new DTypeError(`embedding: ids must be int32, got ${ids.dtype}`);
  if (weight.ndim !== 2) throw new ShapeError(`embedding: weight must be 2-d (num_embeddings, dim), got ${fmtShape(weight.shape)}`);
  const flat = indexSelect(weight, 0, reshape(ids, [-1]));
  return reshape(flat, [...ids.shape, weight.shape[1]]);
}
