/** conv2d (stride, padding, dilation, groups) and 2-d pooling, NCHW. */
import type { Conv2dParams, Pool2dParams } from "../backend/backend.ts";
import { backend } from "../backend/index.ts";
import { ShapeError, ValueError, fmtShape } from "../tensor/errors.ts";
import { type Tensor, empty, zeros } from "../tensor/tensor.ts";
import { add } from "./elementwise.ts";
import { defineOp } from "./table.ts";
import { contiguous, reshape } from "./view.ts";

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === "number" ? [v, v] : v);

function outSize(h: number, k: number, s: number, p: number, d: number, ceil = false): number {
  const v = (h + 2 * p - d * (k - 1) - 1) / s;
  let o = (ceil ? Math.ceil(v) : Math.floor(v)) + 1;
  if (ceil && (o - 1) * s >= h + p) o--; // last window must start inside the input or left padding
  return o;
}

const conv2dOp = defineOp<Conv2dParams>({
  name: "conv2d",
  infer: ([x, w], p) => {
    if (x.ndim !== 4 || w.ndim !== 4) throw new ShapeError(`conv2d: expected input (N,C,H,W) and weight (O,C/groups,kh,kw), got ${fmtShape(x.shape)} and ${fmtShape(w.shape)}`);
    const [N, C, H, W] = x.shape;
    const [O, Cg, KH, KW] = w.shape;
    if (C % p.groups !== 0 || O % p.groups !== 0 || Cg * p.groups !== C) {
      throw new ShapeError(`conv2d: input ${fmtShape(x.shape)} with ${C} channels does not match weight ${fmtShape(w.shape)} and groups=${p.groups}`);
    }
    const OH = outSize(H, KH, p.stride[0], p.padding[0], p.dilation[0]);
    const OW = outSize(W, KW, p.stride[1], p.padding[1], p.dilation[1]);
    if (OH <= 0 || OW <= 0) throw new ShapeError(`conv2d: input ${fmtShape(x.shape)} is too small for kernel ${KH}x${KW}`);
    return { shape: [N, O, OH, OW], dtype: x.dtype };
  },
  forward: (be, out, [x, w], p) => be.conv2d(x, w, out, p),
  vjp: (g, [x, w], _o, p) => {
    const gc = contiguous(g);
    let dx: Tensor | null = null;
    let dw: Tensor | null = null;
    if (x.requiresGrad) {
      dx = empty(x.shape, g.dtype);
      backend().conv2dBackwardInput(gc, w, dx, p);
    }
    if (w.requiresGrad) {
      dw = empty(w.shape, g.dtype);
      backend().conv2dBackwardWeight(x, gc, dw, p);
    }
    return [dx, dw];
  },
});

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

/**
 * 2-d convolution, PyTorch `F.conv2d`: x (N,C,H,W), weight (O,C/groups,kh,kw), bias (O).
 * @example conv2d(x, w, b, { stride: 2, padding: 1 })
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const p: Conv2dParams = { stride: pair(opts.stride ?? 1), padding: pair(opts.padding ?? 0), dilation: pair(opts.dilation ?? 1), groups: opts.groups ?? 1 };
  if (p.groups < 1 || !Number.isInteger(p.groups)) throw new ValueError(`conv2d: groups must be a positive integer, got ${p.groups}`);
  const y = conv2dOp([x, weight], p);
  return bias ? add(y, reshape(bias, [1, -1, 1, 1])) : y;
}

function poolParams(op: string, kernel: Pair, stride?: Pair, padding: Pair = 0, ceilMode = false, countIncludePad = true): Pool2dParams {
  const p = { kernel: pair(kernel), stride: pair(stride ?? kernel), padding: pair(padding), ceilMode, countIncludePad };
  if (p.padding[0] * 2 > p.kernel[0] || p.padding[1] * 2 > p.kernel[1]) throw new ValueError(`${op}: padding must be at most half the kernel size`);
  return p;
}

function poolShape(op: string, x: Tensor, p: Pool2dParams): number[] {
  if (x.ndim !== 4) throw new ShapeError(`${op}: expected (N,C,H,W), got ${fmtShape(x.shape)}`);
  const OH = outSize(x.shape[2], p.kernel[0], p.stride[0], p.padding[0], 1, p.ceilMode);
  const OW = outSize(x.shape[3], p.kernel[1], p.stride[1], p.padding[1], 1, p.ceilMode);
  if (OH <= 0 || OW <= 0) throw new ShapeError(`${op}: input ${fmtShape(x.shape)} too small for kernel ${p.kernel}`);
  return [x.shape[0], x.shape[1], OH, OW];
}

const maxPoolOp = defineOp<Pool2dParams>({
  name: "maxPool2d",
  infer: ([x], p) => ({ shape: poolShape("maxPool2d", x, p), dtype: x.dtype }),
  forward: (be, out, [x], p) => {
    const idx = empty(out.shape, "int32");
    be.maxPool2d(x, out, idx, p);
    return idx;
  },
  vjp: (g, [x], _o, _p, idx) => {
    const dx = zeros(x.shape, { dtype: g.dtype });
    backend().maxPool2dBackward(contiguous(g), idx as Tensor, dx);
    return [dx];
  },
});

/** `F.max_pool2d(x, kernel, stride, padding)`. */
export function maxPool2d(x: Tensor, kernel: Pair, stride?: Pair, padding: Pair = 0, ceilMode = false): Tensor {
  return maxPoolOp([x], poolParams("maxPool2d", kernel, stride, padding, ceilMode));
}

const avgPoolOp = defineOp<Pool2dParams>({
  name: "avgPool2d",
  infer: ([x], p) => ({ shape: poolShape("avgPool2d", x, p), dtype: x.dtype }),
  forward: (be, out, [x], p) => be.avgPool2d(x, out, p),
  vjp: (g, [x], _o, p) => {
    const dx = empty(x.shape, g.dtype);
    backend().avgPool2dBackward(contiguous(g), dx, p);
    return [dx];
  },
});

/** `F.avg_pool2d(x, kernel, stride, padding)`. */
export function avgPool2d(x: Tensor, kernel: Pair, stride?: Pair, padding: Pair = 0, ceilMode = false, countIncludePad = true): Tensor {
  return avgPoolOp([x], poolParams("avgPool2d", kernel, stride, padding, ceilMode, countIncludePad));
}

const adaptiveOp = defineOp<{ size: [number, number] }>({
  name: "adaptiveAvgPool2d",
  infer: ([x], { size }) => {
    if (x.ndim !== 4) throw new ShapeError(`adaptiveAvgPool2d: expected (N,C,H,W), got ${fmtShape(x.shape)}`);
    return { shape: [x.shape[0], x.shape[1], size[0], size[1]], dtype: x.dtype };
  },
  forward: (be, out, [x]) => be.adaptiveAvgPool2d(x, out),
  vjp: (g, [x]) => {
    const dx = empty(x.shape, g.dtype);
    backend().adaptiveAvgPool2dBackward(contiguous(g), dx);
    return [dx];
  },
});

/** `F.adaptive_avg_pool2d(x, size)`. */
export function adaptiveAvgPool2d(x: Tensor, size: Pair): Tensor {
  return adaptiveOp([x], { size: pair(size) });
}
