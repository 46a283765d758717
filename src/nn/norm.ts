/**
 * Normalisation layers: LayerNorm, RMSNorm, GroupNorm, BatchNorm1d/2d (PyTorch/HF parameter and
 * buffer names: weight, bias, running_mean, running_var, num_batches_tracked).
 */
import { noGrad } from "../autograd/tape.ts";
import * as F from "../ops/index.ts";
import { fmtShape, ShapeError, ValueError } from "../tensor/errors.ts";
import { ones, scalar, type Tensor, zeros } from "../tensor/tensor.ts";
import { ones_, zeros_ } from "./init.ts";
import { type LayerOptions, param } from "./layers.ts";
import { Buffer, Module, type Parameter } from "./module.ts";

/**
 * `nn.LayerNorm` over the trailing `normalizedShape` (weight 1, bias 0).
 * @example new LayerNorm(768, { eps: 1e-12 })
 */
export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(
    normalizedShape: number | readonly number[],
    opts: LayerOptions & { eps?: number; elementwiseAffine?: boolean; bias?: boolean } = {},
  ) {
    super();
    this.normalizedShape = typeof normalizedShape === "number" ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? (ones_(param(this.normalizedShape, opts)) as Parameter) : null;
    this.bias = affine && opts.bias !== false ? (zeros_(param(this.normalizedShape, opts)) as Parameter) : null;
  }
  forward(x: Tensor): Tensor {
    return F.layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/**
 * RMS norm over the last dim (HF `LlamaRMSNorm`: x * rsqrt(mean(x^2) + eps) * weight), weight 1.
 * @example new RMSNorm(2048, { eps: 1e-5 })
 */
export class RMSNorm extends Module {
  weight: Parameter;
  readonly eps: number;
  constructor(
    readonly dim: number,
    opts: LayerOptions & { eps?: number } = {},
  ) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.weight = ones_(param([dim], opts)) as Parameter;
  }
  forward(x: Tensor): Tensor {
    return F.rmsNorm(x, this.weight, this.eps);
  }
}

/** `nn.GroupNorm(numGroups, numChannels)` over (N, C, ...). */
export class GroupNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly eps: number;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    opts: LayerOptions & { eps?: number; affine?: boolean } = {},
  ) {
    super();
    if (numChannels % numGroups)
      throw new ValueError(`GroupNorm: ${numChannels} channels are not divisible by ${numGroups} groups`);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.affine ?? true;
    this.weight = affine ? (ones_(param([numChannels], opts)) as Parameter) : null;
    this.bias = affine ? (zeros_(param([numChannels], opts)) as Parameter) : null;
  }
  forward(x: Tensor): Tensor {
    return F.groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export interface BatchNormOptions extends LayerOptions {
  eps?: number;
  /** Running-average factor (0.1); null = cumulative moving average, as PyTorch. */
  momentum?: number | null;
  affine?: boolean;
  trackRunningStats?: boolean;
}

/**
 * Batch normalisation over channel dim 1 (PyTorch `_BatchNorm`).
 *
 * **Frozen BatchNorm (Keras semantics).** A frozen BatchNorm always runs in inference mode (running
 * statistics) and never updates `running_mean`, `running_var` or `num_batches_tracked`, even in
 * `train()`. It is frozen when:
 * 1. `frozen` was set explicitly (`bn.frozen = true` / `false` overrides everything below); else
 * 2. it is affine and neither `weight` nor `bias` requires grad (e.g. after `model.freeze()`); else
 * 3. it has no affine parameters and `freeze()` matched its path (recorded in `frozen`).
 */
export class BatchNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  running_mean: Buffer | null;
  running_var: Buffer | null;
  num_batches_tracked: Buffer | null;
  readonly eps: number;
  readonly momentum: number | null;
  /** Explicit frozen state; null = derived from the parameters (see the class doc). */
  frozen: boolean | null = null;
  constructor(
    readonly numFeatures: number,
    opts: BatchNormOptions = {},
    private readonly _ndims: number[] = [2, 3, 4],
  ) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum === undefined ? 0.1 : opts.momentum;
    const affine = opts.affine ?? true;
    this.weight = affine ? (ones_(param([numFeatures], opts)) as Parameter) : null;
    this.bias = affine ? (zeros_(param([numFeatures], opts)) as Parameter) : null;
    const dtype = opts.dtype ?? "float32";
    const track = opts.trackRunningStats ?? true;
    this.running_mean = track ? new Buffer(zeros([numFeatures], { dtype })) : null;
    this.running_var = track ? new Buffer(ones([numFeatures], { dtype })) : null;
    this.num_batches_tracked = track ? new Buffer(scalar(0, "int32")) : null;
  }

  /** True when this layer runs in inference mode regardless of `training` (see the class doc). */
  get isFrozen(): boolean {
    if (this.frozen !== null) return this.frozen;
    const ps = [this.weight, this.bias].filter((p): p is Parameter => p !== null);
    return ps.length > 0 && ps.every((p) => !p.requiresGrad);
  }

  override onFreezeChange(frozen: boolean): void {
    // Affine layers follow their parameters; a layer without parameters records the call.
    if (!this.weight && !this.bias) this.frozen = frozen;
  }

  /**
   * `activation` fuses a following ReLU / ReLU6, after adding `residual` (x's shape) if given
   * (see `F.batchNorm`): fewer activations kept for backward.
   */
  forward(x: Tensor, activation?: "relu" | "relu6", residual?: Tensor | null): Tensor {
    if (!this._ndims.includes(x.ndim) || x.shape[1] !== this.numFeatures) {
      throw new ShapeError(
        `${this.constructor.name}: expected input with ${this.numFeatures} channels in dim 1 and ${this._ndims.join("/")} dims, got ${fmtShape(x.shape)}`,
      );
    }
    const rm = this.running_mean?.value ?? null;
    const rv = this.running_var?.value ?? null;
    // Batch statistics while training (or when no running statistics exist), unless frozen.
    const useBatch = (this.training && !this.isFrozen) || !rm || !rv;
    const update = this.training && !this.isFrozen && rm !== null;
    let momentum = this.momentum ?? 0;
    if (update && this.num_batches_tracked) {
      const nbt = this.num_batches_tracked.value;
      noGrad(() => {
        nbt.data[nbt.offset] += 1;
      });
      if (this.momentum === null) momentum = 1 / nbt.data[nbt.offset];
    }
    // Training-mode batchNorm updates the buffers it is given; eval mode only reads them.
    const [m, v] = useBatch && !update ? [null, null] : [rm, rv];
    return F.batchNorm(x, m, v, this.weight, this.bias, {
      training: useBatch,
      momentum,
      eps: this.eps,
      activation,
      residual,
    });
  }
}

/** `nn.BatchNorm2d` over (N, C, H, W). See `BatchNorm` for the frozen (inference-mode) rule. */
export class BatchNorm2d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts, [4]);
  }
}

/** `nn.BatchNorm1d` over (N, C) or (N, C, L). */
export class BatchNorm1d extends BatchNorm {
  constructor(numFeatures: number, opts: BatchNormOptions = {}) {
    super(numFeatures, opts, [2, 3]);
  }
}
