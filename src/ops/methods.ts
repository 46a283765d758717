/**
 * PyTorch-style methods on `Tensor` (x.add(y), x.matmul(w), x.sum(1)), attached here so that the
 * tensor layer does not depend on the op table.
 */
import { backward } from "../autograd/backward.ts";
import type { DType } from "../tensor/dtype.ts";
import { Tensor } from "../tensor/tensor.ts";
import * as E from "./elementwise.ts";
import { matmul } from "./linalg.ts";
import * as R from "./reduce.ts";
import * as V from "./view.ts";

type TL = E.TensorLike;

declare module "../tensor/tensor.ts" {
  interface Tensor {
    add(o: TL): Tensor;
    sub(o: TL): Tensor;
    mul(o: TL): Tensor;
    div(o: TL): Tensor;
    pow(o: TL): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    abs(): Tensor;
    relu(): Tensor;
    sigmoid(): Tensor;
    tanh(): Tensor;
    matmul(o: Tensor): Tensor;
    sum(dim?: number | number[], keepdim?: boolean): Tensor;
    mean(dim?: number | number[], keepdim?: boolean): Tensor;
    amax(dim?: number | number[], keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    reshape(...shape: number[]): Tensor;
    view(...shape: number[]): Tensor;
    permute(...dims: number[]): Tensor;
    transpose(d0?: number, d1?: number): Tensor;
    get T(): Tensor;
    expand(...shape: number[]): Tensor;
    slice(dim: number, start?: number, end?: number, step?: number): Tensor;
    select(dim: number, i: number): Tensor;
    squeeze(dim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    flatten(start?: number, end?: number): Tensor;
    contiguous(): Tensor;
    clone(): Tensor;
    to(dtype: DType): Tensor;
    float(): Tensor;
    backward(grad?: Tensor): void;
  }
}

const P = Tensor.prototype;
P.add = function (o) { return E.add(this, o); };
P.sub = function (o) { return E.sub(this, o); };
P.mul = function (o) { return E.mul(this, o); };
P.div = function (o) { return E.div(this, o); };
P.pow = function (o) { return E.pow(this, o); };
P.neg = function () { return E.neg(this); };
P.exp = function () { return E.exp(this); };
P.log = function () { return E.log(this); };
P.sqrt = function () { return E.sqrt(this); };
P.abs = function () { return E.abs(this); };
P.relu = function () { return E.relu(this); };
P.sigmoid = function () { return E.sigmoid(this); };
P.tanh = function () { return E.tanh(this); };
P.matmul = function (o) { return matmul(this, o); };
P.sum = function (dim, keepdim) { return R.sum(this, dim, keepdim); };
P.mean = function (dim, keepdim) { return R.mean(this, dim, keepdim); };
P.amax = function (dim, keepdim) { return R.amax(this, dim, keepdim); };
P.argmax = function (dim, keepdim) { return R.argmax(this, dim, keepdim); };
P.reshape = function (...shape) { return V.reshape(this, shape); };
P.view = function (...shape) { return V.reshape(this, shape); };
P.permute = function (...dims) { return V.permute(this, dims); };
P.transpose = function (d0, d1) { return V.transpose(this, d0, d1); };
Object.defineProperty(P, "T", { get(this: Tensor) { return V.transpose(this); } });
P.expand = function (...shape) { return V.expand(this, shape); };
P.slice = function (dim, start, end, step) { return V.slice(this, dim, start, end, step); };
P.select = function (dim, i) { return V.select(this, dim, i); };
P.squeeze = function (dim) { return V.squeeze(this, dim); };
P.unsqueeze = function (dim) { return V.unsqueeze(this, dim); };
P.flatten = function (s, e) { return V.flatten(this, s, e); };
P.contiguous = function () { return V.contiguous(this); };
P.clone = function () { return V.clone(this); };
P.to = function (dtype) { return V.cast(this, dtype); };
P.float = function () { return V.cast(this, "float32"); };
P.backward = function (grad) { backward(this, grad); };
