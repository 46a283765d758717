/**
 * `Tensor`: storage (a typed array) + layout (shape, strides, offset) + dtype, plus the autograd
 * fields. Views (reshape, permute, slice, expand) share storage; ops live in `src/ops/` and are
 * attached as methods there, so this file depends on nothing but layer-0 utilities.
 */
import { type DType, type TypedArray, bf16ToF32, f16ToF32, isHalf } from "./dtype.ts";
import { DTypeError, IndexError, ReleasedTensorError, ShapeError, ValueError, fmtShape } from "./errors.ts";
import { type Lease, allocate, leaseOf } from "./pool.ts";
import { type Generator, defaultGenerator } from "./rng.ts";
import { type Shape, checkShape, contiguousStrides, isContiguous, numel } from "./shape.ts";

/** An autograd graph node: the op that produced a tensor and how to push a gradient back. */
export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  /** Given d(loss)/d(output), returns d(loss)/d(input_i) (null where an input needs none). */
  vjp: (grad: Tensor) => (Tensor | null)[];
}

export type NestedArray = number | boolean | NestedArray[];

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  #data: TypedArray;
  /** Set when the storage came from the step pool (`src/tensor/pool.ts`). */
  readonly #lease: Lease | null;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  /** Leaf tensors with `requiresGrad` receive `.grad` from `backward()`. */
  requiresGrad = false;
  grad: Tensor | null = null;
  /** Set on tensors produced by a recorded op. */
  node: GradNode | null = null;

  constructor(data: TypedArray, dtype: DType, shape: Shape, strides?: Shape, offset = 0) {
    this.#data = data;
    this.#lease = leaseOf(data);
    this.dtype = dtype;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
  }

  /** The storage (shared by views). Throws once a step scope released it (see `stepScope`). */
  get data(): TypedArray {
    if (this.#lease?.released) throw new ReleasedTensorError(`${this.toString()} was released at the end of a step scope (stepScope) and has no storage any more; keep it (the scope's keep list or its return value) to use it after the scope`);
    return this.#data;
  }

  /** True once a step scope released this tensor's storage. */
  get released(): boolean {
    return this.#lease?.released === true;
  }

  /** The storage without the release check (for the scope's own bookkeeping). */
  get storageUnchecked(): TypedArray {
    return this.#data;
  }

  get ndim(): number {
    return this.shape.length;
  }

  get size(): number {
    return numel(this.shape);
  }

  /** Size of one dim (negative counts from the end), like PyTorch `size(dim)`. */
  dim(d: number): number {
    const i = d < 0 ? d + this.shape.length : d;
    if (i < 0 || i >= this.shape.length) throw new IndexError(`size: dim ${d} out of range for ${fmtShape(this.shape)}`);
    return this.shape[i];
  }

  isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }

  /** A view with another layout over the same storage (no copy, no autograd). */
  view_(shape: Shape, strides: Shape, offset: number): Tensor {
    return new Tensor(this.data, this.dtype, shape, strides, offset);
  }

  /** Element at a flat row-major index, widened to a JS number. */
  getFlat(i: number): number {
    let off = this.offset;
    for (let d = this.shape.length - 1; d >= 0; d--) {
      const n = this.shape[d];
      off += (i % n) * this.strides[d];
      i = Math.floor(i / n);
    }
    return readElem(this.data, this.dtype, off);
  }

  /** A contiguous copy of the values as float64 (for tests and small reads). */
  toFloat64Array(): Float64Array {
    const out = new Float64Array(this.size);
    forEachOffset(this.shape, this.strides, this.offset, (off, i) => {
      out[i] = readElem(this.data, this.dtype, off);
    });
    return out;
  }

  /** A contiguous float32 copy (bf16/f16 widened). */
  toFloat32Array(): Float32Array {
    return Float32Array.from(this.toFloat64Array());
  }

  /** Values as a flat JS array (row-major). */
  toList(): number[] {
    return Array.from(this.toFloat64Array());
  }

  /** Values as nested JS arrays, like PyTorch `tolist()`. */
  toArray(): NestedArray {
    const flat = this.toList();
    const asBool = this.dtype === "bool";
    const build = (dim: number, start: number): NestedArray => {
      if (dim === this.shape.length) return asBool ? flat[start] !== 0 : flat[start];
      const inner = numel(this.shape.slice(dim + 1));
      return Array.from({ length: this.shape[dim] }, (_, i) => build(dim + 1, start + i * inner));
    };
    return build(0, 0);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError(`item: tensor of shape ${fmtShape(this.shape)} has ${this.size} elements, expected 1`);
    return readElem(this.data, this.dtype, this.offset);
  }

  /** Marks a leaf as trainable (PyTorch `requires_grad_`). */
  requiresGrad_(flag = true): this {
    if (flag && !(this.dtype === "float32" || this.dtype === "float64")) {
      throw new DTypeError(`requiresGrad: only float32/float64 tensors can require gradients, got ${this.dtype}`);
    }
    this.requiresGrad = flag;
    return this;
  }

  /** A tensor sharing storage, cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.dtype, this.shape, this.strides, this.offset);
  }

  /** Clears the accumulated gradient. */
  zeroGrad(): void {
    this.grad = null;
  }

  toString(): string {
    return `Tensor(${fmtShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ", requiresGrad" : ""})`;
  }
}

export function readElem(data: TypedArray, dtype: DType, off: number): number {
  if (dtype === "bfloat16") return bf16ToF32(data[off]);
  if (dtype === "float16") return f16ToF32(data[off]);
  return data[off];
}

/** Calls `fn(storageOffset, flatIndex)` for every element in row-major order. */
export function forEachOffset(shape: Shape, strides: Shape, offset: number, fn: (off: number, i: number) => void): void {
  const n = numel(shape);
  if (n === 0) return;
  const nd = shape.length;
  if (nd === 0) {
    fn(offset, 0);
    return;
  }
  const idx = new Array<number>(nd).fill(0);
  let off = offset;
  const last = nd - 1;
  const sl = strides[last];
  const dl = shape[last];
  for (let i = 0; i < n; ) {
    for (let j = 0; j < dl; j++, i++) fn(off + j * sl, i);
    // carry into higher dims
    let d = last - 1;
    while (d >= 0) {
      idx[d]++;
      off += strides[d];
      if (idx[d] < shape[d]) break;
      off -= idx[d] * strides[d];
      idx[d] = 0;
      d--;
    }
    if (d < 0) break;
  }
}

// ---------------------------------------------------------------------------------------------
// Creation

export interface TensorOptions {
  dtype?: DType;
  requiresGrad?: boolean;
}

function flatten(data: NestedArray, shape: number[], out: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length <= depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new ShapeError(`tensor: ragged nested array at depth ${depth}: ${data.length} vs ${shape[depth]}`);
    for (const d of data) flatten(d, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new ShapeError("tensor: ragged nested array (scalar where a list was expected)");
    out.push(typeof data === "boolean" ? Number(data) : data);
  }
}

/**
 * Creates a tensor from nested arrays, a typed array or a number.
 * @example tensor([[1, 2], [3, 4]]) // float32, shape [2, 2]
 * @example tensor(new Int32Array([1, 2, 3]), { shape: [3] })
 */
export function tensor(data: NestedArray | TypedArray | ArrayLike<number>, opts: TensorOptions & { shape?: Shape } = {}): Tensor {
  let flat: ArrayLike<number>;
  let shape: number[];
  if (ArrayBuffer.isView(data)) {
    flat = data as TypedArray;
    shape = opts.shape ? [...opts.shape] : [flat.length];
  } else if (typeof data === "number" || typeof data === "boolean") {
    flat = [Number(data)];
    shape = opts.shape ? [...opts.shape] : [];
  } else {
    const out: number[] = [];
    shape = [];
    flatten(data as NestedArray, shape, out, 0);
    flat = out;
    if (opts.shape) shape = [...opts.shape];
  }
  checkShape(shape, "tensor");
  if (numel(shape) !== flat.length) throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmtShape(shape)}`);
  const dtype = opts.dtype ?? inferDtype(data);
  const storage = allocate(dtype, flat.length);
  if (isHalf(dtype) && !(data instanceof Uint16Array)) {
    throw new DTypeError(`tensor: create ${dtype} tensors from float32 with .to("${dtype}") or from raw bits in a Uint16Array`);
  }
  storage.set(flat as ArrayLike<number>);
  const t = new Tensor(storage, dtype, shape);
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

function inferDtype(data: unknown): DType {
  if (data instanceof Float64Array) return "float64";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Uint8Array) return "bool";
  return "float32";
}

function make(shape: Shape, opts: TensorOptions, fill?: (a: TypedArray) => void): Tensor {
  checkShape(shape, "tensor");
  const dtype = opts.dtype ?? "float32";
  const data = allocate(dtype, numel(shape));
  fill?.(data);
  const t = new Tensor(data, dtype, shape);
  if (opts.requiresGrad) t.requiresGrad_(true);
  return t;
}

/** Uninitialised (zeroed) storage of the given shape. */
export function empty(shape: Shape, dtype: DType = "float32"): Tensor {
  return make(shape, { dtype });
}
export function zeros(shape: Shape, opts: TensorOptions = {}): Tensor {
  return make(shape, opts);
}
export function ones(shape: Shape, opts: TensorOptions = {}): Tensor {
  return full(shape, 1, opts);
}
export function full(shape: Shape, value: number, opts: TensorOptions = {}): Tensor {
  return make(shape, opts, (a) => a.fill(value));
}
export function scalar(value: number, dtype: DType = "float32"): Tensor {
  return full([], value, { dtype });
}

/** `[start, end)` by `step`, like `torch.arange`; int32 when all arguments are integers. */
export function arange(start: number, end?: number, step = 1, opts: TensorOptions = {}): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new ValueError("arange: step must be non-zero");
  const n = Math.max(0, Math.ceil((end - start) / step));
  const ints = [start, end, step].every(Number.isInteger);
  return make([n], { dtype: opts.dtype ?? (ints ? "int32" : "float32"), requiresGrad: opts.requiresGrad }, (a) => {
    for (let i = 0; i < n; i++) a[i] = start + i * step;
  });
}

export interface RandomOptions extends TensorOptions {
  generator?: Generator;
}

/** Standard normal samples. */
export function randn(shape: Shape, opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  return make(shape, opts, (a) => {
    for (let i = 0; i < a.length; i++) a[i] = g.normal();
  });
}
/** Uniform samples in [0, 1). */
export function rand(shape: Shape, opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  return make(shape, opts, (a) => {
    for (let i = 0; i < a.length; i++) a[i] = g.random();
  });
}
/** Uniform integers in [low, high), int32 by default. */
export function randint(low: number, high: number, shape: Shape, opts: RandomOptions = {}): Tensor {
  const g = opts.generator ?? defaultGenerator;
  return make(shape, { dtype: "int32", ...opts }, (a) => {
    for (let i = 0; i < a.length; i++) a[i] = g.randint(low, high);
  });
}
