/**
 * `LoRALinear`: a frozen linear layer plus a trainable low-rank update (Hu et al. 2021, PEFT's
 * `lora.Linear`): y = base(x) + (dropout(x) A^T B^T) * scaling, A (r, in), B (out, r).
 * The base weight keeps its original name (`<path>.weight`), the factors are `<path>.lora_A.weight`
 * and `<path>.lora_B.weight`, so a state dict reads like PEFT's without the adapter name.
 */
import { noGrad } from "../autograd/tape.ts";
import { kaimingUniform_, normal_ } from "../nn/init.ts";
import { Module, Parameter } from "../nn/module.ts";
import * as F from "../ops/index.ts";
import { f32ToBf16, f32ToF16 } from "../tensor/dtype.ts";
import { ValueError } from "../tensor/errors.ts";
import { defaultGenerator, type Generator } from "../tensor/rng.ts";
import { forEachOffset, type Tensor, zeros } from "../tensor/tensor.ts";
import { type LinearKind, linearKind } from "./targets.ts";

/** How the factors start: PEFT's `init_lora_weights` (true: A kaiming-uniform, B zero; "gaussian": A ~ N(0, 1/r); false: both random). */
export type LoraInit = boolean | "gaussian";

/** Per-layer LoRA settings. */
export interface LoRALinearOptions {
  /** Rank r (default 8). */
  rank?: number;
  /** lora_alpha (default 8); scaling is alpha/r, or alpha/sqrt(r) with `useRslora`. */
  alpha?: number;
  /** Dropout on the LoRA path's input only (default 0). */
  dropout?: number;
  /** rsLoRA scaling alpha/sqrt(r) (Kalajdzievski 2023). */
  useRslora?: boolean;
  init?: LoraInit;
  /** Store the frozen base weight as bf16/f16 (widened to float32 when computing). */
  baseDtype?: "float32" | "bfloat16" | "float16";
  /** Source of the initial factors and of the dropout masks (the default generator when omitted). */
  generator?: Generator;
}

/** A named factor, so parameters read `lora_A.weight` like PEFT's `nn.Linear` factors. Not a `Linear`, so `all-linear` never wraps it. */
export class LoraFactor extends Module {
  constructor(public weight: Parameter) {
    super();
  }
}

/**
 * A linear layer with a LoRA update.
 * @example
 * const q = LoRALinear.fromBase(attn.q_proj, { rank: 8, alpha: 16 });
 * q.merge();   // W += B A * scaling; forward is now the base layer alone
 * q.unmerge(); // back, within float rounding
 */
export class LoRALinear extends Module {
  /** The frozen base weight: (out, in), or (in, out) for GPT-2's Conv1D (`fanInFanOut`). */
  weight: Parameter;
  bias: Parameter | null;
  lora_A: LoraFactor;
  lora_B: LoraFactor;
  readonly rank: number;
  readonly alpha: number;
  readonly scaling: number;
  readonly dropout: number;
  /** True for GPT-2's `Conv1D` (weight stored (in, out)), PEFT's `fan_in_fan_out`. */
  readonly fanInFanOut: boolean;
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** True while B A * scaling is folded into `weight`. */
  merged = false;
  /** The module this one replaced (restored by `unload`). */
  readonly _base: Module;
  private _generator: Generator;

  constructor(base: Module, kind: LinearKind, opts: LoRALinearOptions = {}) {
    super();
    const b = base as unknown as { weight: Parameter; bias?: Parameter | null };
    this._base = base;
    this.fanInFanOut = kind === "conv1d";
    [this.outFeatures, this.inFeatures] = this.fanInFanOut
      ? [b.weight.shape[1], b.weight.shape[0]]
      : [b.weight.shape[0], b.weight.shape[1]];
    this.rank = opts.rank ?? 8;
    this.alpha = opts.alpha ?? 8;
    this.dropout = opts.dropout ?? 0;
    if (!Number.isInteger(this.rank) || this.rank < 1)
      throw new ValueError(`LoRALinear: rank must be a positive integer, got ${this.rank}`);
    if (!Number.isFinite(this.alpha))
      throw new ValueError(`LoRALinear: alpha must be a finite number, got ${this.alpha}`);
    if (!(this.dropout >= 0 && this.dropout < 1))
      throw new ValueError(`LoRALinear: dropout must be in [0, 1), got ${this.dropout}`);
    this.scaling = opts.useRslora ? this.alpha / Math.sqrt(this.rank) : this.alpha / this.rank;
    this._generator = opts.generator ?? defaultGenerator;
    this.weight = frozenWeight(b.weight, opts.baseDtype);
    this.bias = b.bias ?? null;
    if (this.bias) this.bias.requiresGrad = false;
    this.lora_A = new LoraFactor(new Parameter(zeros([this.rank, this.inFeatures])));
    this.lora_B = new LoraFactor(new Parameter(zeros([this.outFeatures, this.rank])));
    this.resetLoraParameters(opts.init ?? true);
    // Keep the replaced layer's train/eval mode.
    this.train(base.training);
  }

  /**
   * Wraps a linear layer (`nn.Linear`, a model's own `Linear`, or GPT-2's `Conv1D`).
   * @example const layer = LoRALinear.fromBase(new Linear(64, 64), { rank: 4, alpha: 8 });
   */
  static fromBase(base: Module, opts: LoRALinearOptions = {}): LoRALinear {
    if (base instanceof LoRALinear) throw new ValueError("LoRALinear.fromBase: the layer already has a LoRA adapter");
    const kind = linearKind(base);
    if (!kind)
      throw new ValueError(
        `LoRALinear.fromBase: ${base.constructor.name} is not a linear layer (need a 2-d 'weight' Parameter)`,
      );
    return new LoRALinear(base, kind, opts);
  }

  /** PEFT's `reset_lora_parameters`. */
  resetLoraParameters(init: LoraInit): void {
    const [A, B] = [this.lora_A.weight, this.lora_B.weight];
    if (init === "gaussian") normal_(A, 0, 1 / this.rank, this._generator);
    else kaimingUniform_(A, Math.sqrt(5), this._generator);
    if (init === false) kaimingUniform_(B, Math.sqrt(5), this._generator);
    else B.data.fill(0);
  }

  forward(x: Tensor): Tensor {
    // A bf16/f16 base goes to matmul as is: both backends widen it inside the product (the native
    // GEMM while packing), so no float32 copy of the weight is made per step.
    const w = this.weight;
    if (this.merged) return F.linear(x, this.fanInFanOut ? F.transpose(w) : w, this.bias);
    const h = this.dropout > 0 ? F.dropout(x, this.dropout, this.training, this._generator) : x;
    // One op: only the output and the small (tokens, r) product are kept for backward.
    const wT = this.fanInFanOut ? w : F.transpose(w);
    return F.loraLinear(x, h, wT, this.bias, this.lora_A.weight, this.lora_B.weight, this.scaling);
  }

  /** B A * scaling as float64, laid out like `weight` ((out, in), or (in, out) for Conv1D). */
  deltaWeight(): Float64Array {
    const [r, nIn, nOut] = [this.rank, this.inFeatures, this.outFeatures];
    const A = this.lora_A.weight.toFloat64Array();
    const B = this.lora_B.weight.toFloat64Array();
    const d = new Float64Array(nOut * nIn);
    for (let o = 0; o < nOut; o++) {
      for (let i = 0; i < nIn; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += B[o * r + k] * A[k * nIn + i];
        d[this.fanInFanOut ? i * nOut + o : o * nIn + i] = s * this.scaling;
      }
    }
    return d;
  }

  /** Folds the update into the base weight (float64 sum, one rounding to the weight's dtype). */
  merge(): void {
    if (this.merged) return;
    addInto(this.weight, this.deltaWeight(), 1);
    this.merged = true;
  }

  /** Takes the update back out of the base weight. */
  unmerge(): void {
    if (!this.merged) return;
    addInto(this.weight, this.deltaWeight(), -1);
    this.merged = false;
  }

  /** The original module with this layer's (possibly merged) weight and bias: what merge-and-unload puts back. */
  unload(): Module {
    const b = this._base as unknown as { weight: Parameter; bias?: Parameter | null };
    b.weight = this.weight;
    if ("bias" in b) b.bias = this.bias;
    return this._base;
  }
}

/** The base weight as a frozen parameter, cast to `dtype` when asked. */
function frozenWeight(w: Parameter, dtype: LoRALinearOptions["baseDtype"]): Parameter {
  if (!dtype || dtype === w.dtype) {
    w.requiresGrad = false;
    w.grad = null;
    return w;
  }
  return new Parameter(
    noGrad(() => F.cast(w, dtype)),
    false,
  );
}

/** w += sign * d, computed in float64 and rounded once to w's dtype. */
function addInto(w: Tensor, d: Float64Array, sign: 1 | -1): void {
  const conv = w.dtype === "bfloat16" ? f32ToBf16 : w.dtype === "float16" ? f32ToF16 : null;
  const cur = w.toFloat64Array();
  forEachOffset(w.shape, w.strides, w.offset, (off, i) => {
    const v = cur[i] + sign * d[i];
    w.data[off] = conv ? conv(v) : v;
  });
}
