/**
 * Basic layers with PyTorch names and default initialisation: Linear, Embedding, Conv2d, Dropout,
 * Identity, Flatten, pools, activations, and the containers Sequential and ModuleList.
 * Construction draws from the default generator (seed it with `manualSeed`) unless one is given.
 */
import { forwardChain } from "../autograd/release.ts";
import { eq, where } from "../ops/elementwise.ts";
import * as F from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { defaultGenerator, type Generator } from "../tensor/rng.ts";
import { empty, type Tensor } from "../tensor/tensor.ts";
import { fans, kaimingUniform_, noInit, normal_, uniform_, zeros_ } from "./init.ts";
import { Module, Parameter } from "./module.ts";

/** Options shared by layers that create parameters. */
export interface LayerOptions {
  /** float32 (default) or float64 (gradient checks, fixtures). */
  dtype?: "float32" | "float64";
  /** Source of the initial values (the default generator when omitted). */
  generator?: Generator;
  /**
   * Leave the random parameters at zero (no draws): a checkpoint will overwrite them. Fixed values
   * (norm weights of one, an Embedding's padding row) are still set. `noInit` does this for a whole build.
   */
  skipInit?: boolean;
}

/** Options of the layers with a weight and a bias (Linear, Conv2d). */
export interface AffineOptions extends LayerOptions {
  bias?: boolean;
  /**
   * Weight ~ N(0, std²) and bias 0 (HF `_init_weights` with `initializer_range`, torchvision's
   * normal inits) instead of PyTorch's default uniform(±1/sqrt(fan_in)).
   */
  std?: number;
}

/** What `resetParameters()` needs to draw again: the generator and the init chosen at construction. */
interface InitSpec {
  generator: Generator;
  std?: number;
  skipInit?: boolean;
}

function initSpec(opts: LayerOptions & { std?: number }): InitSpec {
  return { generator: opts.generator ?? defaultGenerator, std: opts.std, skipInit: opts.skipInit };
}

/** Runs a layer's first initialisation, or nothing random when the layer was built with `skipInit`. */
function firstInit(spec: InitSpec, reset: () => void): void {
  if (spec.skipInit) noInit(reset);
  else reset();
}

/** Weight and bias of Linear/Conv2d: N(0, std) and 0 with `std`, else PyTorch's `reset_parameters`. */
function initAffine_(weight: Parameter, bias: Parameter | null, spec: InitSpec): void {
  const g = spec.generator;
  if (spec.std !== undefined) {
    normal_(weight, 0, spec.std, g);
    if (bias) zeros_(bias);
    return;
  }
  kaimingUniform_(weight, Math.sqrt(5), g);
  const bound = 1 / Math.sqrt(fans(weight.shape)[0]);
  if (bias) uniform_(bias, -bound, bound, g);
}

/** A module with a one-tensor forward (what Sequential chains). */
export interface Layer extends Module {
  forward(x: Tensor): Tensor;
}

/** A fresh parameter of `shape` (values filled by the caller). */
export function param(shape: readonly number[], opts: LayerOptions = {}): Parameter {
  return new Parameter(empty(shape, opts.dtype ?? "float32"));
}

/**
 * `nn.Linear`: y = x W^T + b, weight (out, in). Init as PyTorch: kaiming-uniform(a=sqrt 5), so
 * weight and bias are uniform in ±1/sqrt(in); with `std`, N(0, std) and zero bias (HF).
 * @example const fc = new Linear(768, 2); const logits = fc.forward(h);
 * @example const q = new Linear(768, 768, { std: 0.02, skipInit: true });   // HF layer, weights to be loaded
 */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  private readonly _init: InitSpec;
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: AffineOptions = {},
  ) {
    super();
    this.weight = param([outFeatures, inFeatures], opts);
    this.bias = opts.bias === false ? null : param([outFeatures], opts);
    this._init = initSpec(opts);
    firstInit(this._init, () => this.resetParameters());
  }
  /** Draws fresh values in place (`reset_parameters`; the loader calls it for a head the checkpoint lacks). */
  resetParameters(): void {
    initAffine_(this.weight, this.bias, this._init);
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
}

/**
 * `nn.Embedding` (weight (num, dim), init N(0, 1), or N(0, std) with `std`). With `paddingIdx`
 * that row starts at zero and receives no gradient, as in PyTorch.
 * @example const wte = new Embedding(50257, 768); const h = wte.forward(ids);
 */
export class Embedding extends Module {
  weight: Parameter;
  readonly paddingIdx: number | null;
  private readonly _init: InitSpec;
  constructor(
    readonly numEmbeddings: number,
    readonly embeddingDim: number,
    opts: LayerOptions & { paddingIdx?: number; std?: number } = {},
  ) {
    super();
    let p = opts.paddingIdx ?? null;
    if (p !== null && p < 0) p += numEmbeddings;
    if (p !== null && (p < 0 || p >= numEmbeddings))
      throw new ValueError(`Embedding: paddingIdx ${opts.paddingIdx} out of range for ${numEmbeddings} embeddings`);
    this.paddingIdx = p;
    this.weight = param([numEmbeddings, embeddingDim], opts);
    this._init = initSpec(opts);
    firstInit(this._init, () => this.resetParameters());
  }
  /** Draws fresh values in place, the padding row zero (`reset_parameters`). */
  resetParameters(): void {
    normal_(this.weight, 0, this._init.std ?? 1, this._init.generator);
    const p = this.paddingIdx;
    if (p !== null) this.weight.data.fill(0, p * this.embeddingDim, (p + 1) * this.embeddingDim);
  }
  forward(ids: Tensor): Tensor {
    const y = F.embedding(this.weight, ids);
    if (this.paddingIdx === null || !y.requiresGrad) return y;
    // Same values, but the padding rows take the detached branch, so the padding row gets no gradient.
    const isPad = F.unsqueeze(eq(ids, this.paddingIdx), -1);
    return where(isPad, y.detach(), y);
  }
}

type Pair = number | [number, number];

/**
 * `nn.Conv2d`: weight (out, in/groups, kh, kw), bias (out); PyTorch default init (bound
 * 1/sqrt(in/groups*kh*kw)), or N(0, std) and zero bias with `std`.
 * @example new Conv2d(3, 16, 3, { padding: 1 })
 */
export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly stride: Pair;
  readonly padding: Pair;
  readonly dilation: Pair;
  readonly groups: number;
  private readonly _init: InitSpec;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    kernelSize: Pair,
    opts: AffineOptions & { stride?: Pair; padding?: Pair; dilation?: Pair; groups?: number } = {},
  ) {
    super();
    const [kh, kw] = typeof kernelSize === "number" ? [kernelSize, kernelSize] : kernelSize;
    this.groups = opts.groups ?? 1;
    if (inChannels % this.groups || outChannels % this.groups)
      throw new ValueError(
        `Conv2d: channels ${inChannels} -> ${outChannels} are not divisible by groups=${this.groups}`,
      );
    this.stride = opts.stride ?? 1;
    this.padding = opts.padding ?? 0;
    this.dilation = opts.dilation ?? 1;
    this.weight = param([outChannels, inChannels / this.groups, kh, kw], opts);
    this.bias = opts.bias === false ? null : param([outChannels], opts);
    this._init = initSpec(opts);
    firstInit(this._init, () => this.resetParameters());
  }
  /** Draws fresh values in place (`reset_parameters`). */
  resetParameters(): void {
    initAffine_(this.weight, this.bias, this._init);
  }
  forward(x: Tensor): Tensor {
    return F.conv2d(x, this.weight, this.bias, {
      stride: this.stride,
      padding: this.padding,
      dilation: this.dilation,
      groups: this.groups,
    });
  }
}

/** `nn.Dropout` (inverted); active only in training mode. */
export class Dropout extends Module {
  private _generator: Generator;
  constructor(
    readonly p = 0.5,
    generator?: Generator,
  ) {
    super();
    if (p < 0 || p > 1) throw new ValueError(`Dropout: p must be in [0, 1], got ${p}`);
    this._generator = generator ?? defaultGenerator;
  }
  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training, this._generator);
  }
}

/** `nn.Identity`. */
export class Identity extends Module {
  forward(x: Tensor): Tensor {
    return x;
  }
}

/** `nn.Flatten` (dims startDim..endDim into one). */
export class Flatten extends Module {
  constructor(
    readonly startDim = 1,
    readonly endDim = -1,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.flatten(x, this.startDim, this.endDim);
  }
}

/** `nn.MaxPool2d`. */
export class MaxPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly stride?: Pair,
    readonly padding: Pair = 0,
    readonly ceilMode = false,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.maxPool2d(x, this.kernelSize, this.stride, this.padding, this.ceilMode);
  }
}

/** `nn.AvgPool2d`. */
export class AvgPool2d extends Module {
  constructor(
    readonly kernelSize: Pair,
    readonly stride?: Pair,
    readonly padding: Pair = 0,
    readonly ceilMode = false,
    readonly countIncludePad = true,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.avgPool2d(x, this.kernelSize, this.stride, this.padding, this.ceilMode, this.countIncludePad);
  }
}

/** `nn.AdaptiveAvgPool2d`. */
export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: Pair) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.adaptiveAvgPool2d(x, this.outputSize);
  }
}

// ---- activations ------------------------------------------------------------------------------

/** Activation modules (no parameters), PyTorch names. */
export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return F.relu(x);
  }
}
export class ReLU6 extends Module {
  forward(x: Tensor): Tensor {
    return F.relu6(x);
  }
}
export class GELU extends Module {
  constructor(readonly approximate: "none" | "tanh" = "none") {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.gelu(x, this.approximate);
  }
}
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return F.silu(x);
  }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return F.tanh(x);
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return F.sigmoid(x);
  }
}
export class LeakyReLU extends Module {
  constructor(readonly negativeSlope = 0.01) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.leakyRelu(x, this.negativeSlope);
  }
}
export class Hardswish extends Module {
  forward(x: Tensor): Tensor {
    return F.hardswish(x);
  }
}
export class Softplus extends Module {
  constructor(
    readonly beta = 1,
    readonly threshold = 20,
  ) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.softplus(x, this.beta, this.threshold);
  }
}
export class Softmax extends Module {
  constructor(readonly dim = -1) {
    super();
  }
  forward(x: Tensor): Tensor {
    return F.softmax(x, this.dim);
  }
}

// ---- containers -------------------------------------------------------------------------------

/**
 * `nn.ModuleList`: children named "0", "1", ... (so `features.3.weight` as in torchvision).
 * @example this.layers = new ModuleList(blocks)
 */
export class ModuleList<M extends Module = Module> extends Module {
  protected _items: M[];
  constructor(items: Iterable<M> = []) {
    super();
    this._items = [...items];
  }
  override namedChildren(): [string, Module][] {
    return this._items.map((m, i) => [String(i), m]);
  }
  get length(): number {
    return this._items.length;
  }
  at(i: number): M {
    const m = this._items.at(i);
    if (!m) throw new ValueError(`ModuleList: index ${i} out of range for ${this._items.length} modules`);
    return m;
  }
  push(...m: M[]): this {
    this._items.push(...m);
    return this;
  }
  [Symbol.iterator](): Iterator<M> {
    return this._items[Symbol.iterator]();
  }
}

/**
 * `nn.Sequential`: applies its layers in order; children named by index like PyTorch.
 * @example const mlp = new Sequential(new Linear(4, 16), new ReLU(), new Linear(16, 2));
 */
export class Sequential extends ModuleList<Layer> {
  constructor(...layers: Layer[]) {
    super(layers);
  }
  /** Under noGrad in a step scope, each layer's output is freed once the next exists (`forwardChain`). */
  forward(x: Tensor): Tensor {
    return forwardChain(x, this._items);
  }
}
