/**
 * Building blocks shared by the encoder architectures (BERT, DistilBERT, RoBERTa) and ViT: small
 * Modules over `Parameter`s + op functions (Linear, LayerNorm, Embedding with `padding_idx`),
 * HF's weight init, the `ACT2FN` activation table, the extended attention mask and the HF
 * sequence-classification loss (regression / single-label / multi-label by `problem_type`).
 */
import { ConfigError, type ConfigSource, getLabels } from "../formats/hf-config.ts";
import { Module, Parameter } from "../nn/module.ts";
import {
  bceWithLogits,
  cast,
  crossEntropy,
  dropout,
  embedding,
  eq,
  gelu,
  layerNorm,
  linear,
  logSoftmax,
  mean,
  mseLoss,
  mul,
  neg,
  permute,
  relu,
  reshape,
  sigmoid,
  silu,
  squeeze,
  sub,
  sum,
  tanh,
  unsqueeze,
  where,
} from "../ops/index.ts";
import { fmtShape, ShapeError } from "../tensor/errors.ts";
import { ones, rand, randn, type Tensor, zeros } from "../tensor/tensor.ts";
import type { CreateOptions } from "./registry.ts";

// ---- init -------------------------------------------------------------------------------------

let skipRandomInit = false;

/**
 * Builds a model with `fn`; with `skipInit` the random initialisers return zeros (a checkpoint is
 * about to overwrite every weight: `CreateOptions.skipInit`), so loading a large model draws no
 * random numbers. Fixed values (LayerNorm/BatchNorm ones, sinusoids) are unaffected.
 */
export function buildModel<T>(opts: CreateOptions | undefined, fn: () => T): T {
  const prev = skipRandomInit;
  skipRandomInit = !!opts?.skipInit;
  try {
    return fn();
  } finally {
    skipRandomInit = prev;
  }
}

/** N(0, std^2) samples from the global generator (HF `normal_(0, initializer_range)`). */
export function normalInit(shape: readonly number[], std: number): Tensor {
  return skipRandomInit ? zeros(shape) : mul(randn(shape), std);
}

/** U(-bound, bound) samples from the global generator (PyTorch's default Linear/Conv init). */
export function uniformInit(shape: readonly number[], bound: number): Tensor {
  return skipRandomInit ? zeros(shape) : mul(sub(mul(rand(shape), 2), 1), bound);
}

/** Checkpoint keys transformers ignores on load: the old persistent `position_ids` buffer. */
export const IGNORE_POSITION_IDS: readonly RegExp[] = [/(^|\.)embeddings\.position_ids$/];

// ---- layers -----------------------------------------------------------------------------------

/** `nn.Linear(in, out, bias)`: weight (out, in). Initialised N(0, std) with zero bias (HF `_init_weights`). */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  constructor(inFeatures: number, outFeatures: number, opts: { bias?: boolean; std?: number } = {}) {
    super();
    this.weight = new Parameter(normalInit([outFeatures, inFeatures], opts.std ?? 0.02));
    this.bias = opts.bias === false ? null : new Parameter(zeros([outFeatures]));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** `nn.LayerNorm(dim, eps)` with weight 1 and bias 0. */
export class LayerNorm extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(
    readonly dim: number,
    readonly eps = 1e-12,
  ) {
    super();
    this.weight = new Parameter(ones([dim]));
    this.bias = new Parameter(zeros([dim]));
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, [this.dim], this.weight, this.bias, this.eps);
  }
}

/**
 * `nn.Embedding(num, dim, padding_idx)`: N(0, std) with the padding row zeroed. As in PyTorch, the
 * `paddingIdx` row receives no gradient (its lookups are detached).
 */
export class Embedding extends Module {
  weight: Parameter;
  constructor(
    num: number,
    dim: number,
    readonly paddingIdx: number | null = null,
    std = 0.02,
  ) {
    super();
    const w = normalInit([num, dim], std);
    if (paddingIdx !== null && paddingIdx >= 0 && paddingIdx < num)
      w.data.fill(0, paddingIdx * dim, (paddingIdx + 1) * dim);
    this.weight = new Parameter(w);
  }
  forward(ids: Tensor): Tensor {
    const e = embedding(this.weight, ids);
    if (this.paddingIdx === null || !this.weight.requiresGrad) return e;
    return where(unsqueeze(eq(ids, this.paddingIdx), -1), e.detach(), e);
  }
}

/** Dropout as a module (no parameters); identity unless training and p > 0. */
export class Dropout extends Module {
  constructor(readonly p: number) {
    super();
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}

// ---- activations ------------------------------------------------------------------------------

export type Activation = (x: Tensor) => Tensor;

/** HF `ACT2FN` names we support. */
export const ACT2FN: Readonly<Record<string, Activation>> = {
  gelu: (x) => gelu(x),
  gelu_new: (x) => gelu(x, "tanh"),
  gelu_pytorch_tanh: (x) => gelu(x, "tanh"),
  gelu_fast: (x) => gelu(x, "tanh"),
  quick_gelu: (x) => mul(x, sigmoid(mul(x, 1.702))),
  relu: (x) => relu(x),
  silu: (x) => silu(x),
  swish: (x) => silu(x),
  tanh: (x) => tanh(x),
};

/** Looks up `hidden_act`, failing with the config file and key on unknown names. */
export function activation(name: string, file: string, key = "hidden_act"): Activation {
  const fn = Object.hasOwn(ACT2FN, name) ? ACT2FN[name] : undefined;
  if (!fn)
    throw new ConfigError(
      file,
      key,
      "bad_value",
      `activation '${name}' is not supported; known: ${Object.keys(ACT2FN).join(", ")}`,
    );
  return fn;
}

// ---- masks ------------------------------------------------------------------------------------

/** float32 min, the value HF adds at masked key positions (`torch.finfo(float32).min`). */
export const FLOAT32_MIN = -3.4028234663852886e38;

/**
 * HF `get_extended_attention_mask` for an encoder: (B, S) 1/0 mask -> additive (B, 1, 1, S) with 0
 * where attended and float32-min where masked. Null in, null out (attend everywhere).
 */
export function extendedAttentionMask(mask: Tensor | null | undefined): Tensor | null {
  if (!mask) return null;
  const [B, S] = mask.shape;
  return reshape(where(eq(mask, 0), FLOAT32_MIN, 0), [B, 1, 1, S]);
}

// ---- heads and losses -------------------------------------------------------------------------

export type ProblemType = "regression" | "single_label_classification" | "multi_label_classification";

/** Label settings of a classification head (HF `num_labels`, `id2label`, `problem_type`). */
export interface HeadConfig {
  numLabels: number;
  id2label: string[];
  problemType: ProblemType | null;
}

/** Reads `id2label`/`num_labels`/`problem_type` with HF's defaults (2 labels). */
export function readHeadConfig(cfg: ConfigSource): HeadConfig {
  const { id2label, numLabels } = getLabels(cfg);
  const pt = cfg.raw.problem_type;
  const allowed = ["regression", "single_label_classification", "multi_label_classification"];
  if (pt !== undefined && pt !== null && !allowed.includes(pt as string))
    throw new ConfigError(
      cfg.file,
      "problem_type",
      "bad_value",
      `expected one of ${allowed.join(", ")}, got ${JSON.stringify(pt)}`,
    );
  return { numLabels, id2label, problemType: (pt as ProblemType | null | undefined) ?? null };
}

/** Writes `id2label`/`label2id` into a config object as HF's `save_pretrained` does (string ids). */
export function writeLabels(config: Record<string, unknown>, id2label: readonly string[]): void {
  config.id2label = Object.fromEntries(id2label.map((l, i) => [String(i), l]));
  config.label2id = Object.fromEntries(id2label.map((l, i) => [l, i]));
}

/**
 * The HF `*ForSequenceClassification` loss. `problem_type` null is inferred on first use and
 * written back into `config` (as HF does): 1 label -> regression (MSE), int32 labels ->
 * single-label (cross-entropy), float labels -> multi-label (BCE with logits).
 */
export function sequenceClassificationLoss(
  logits: Tensor,
  labels: Tensor,
  config: Record<string, unknown>,
  numLabels: number,
): Tensor {
  let pt = (config.problem_type as ProblemType | null | undefined) ?? null;
  if (!pt) {
    pt =
      numLabels === 1
        ? "regression"
        : labels.dtype === "int32"
          ? "single_label_classification"
          : "multi_label_classification";
    config.problem_type = pt;
  }
  if (pt === "regression") {
    const y = cast(labels, logits.dtype);
    return numLabels === 1 ? mseLoss(squeeze(logits), squeeze(y)) : mseLoss(logits, y);
  }
  if (pt === "single_label_classification") {
    // float (N, C) targets are probabilities (MixUp/CutMix, smoothing), as torch's cross_entropy takes them
    if (labels.dtype !== "int32")
      return softCrossEntropy(reshape(logits, [-1, numLabels]), reshape(labels, [-1, numLabels]));
    return crossEntropy(reshape(logits, [-1, numLabels]), reshape(labels, [-1]));
  }
  return bceWithLogits(logits, cast(labels, logits.dtype));
}

/** Cross-entropy against class probabilities (N, C): mean over rows of -sum(target * log_softmax). */
export function softCrossEntropy(logits: Tensor, target: Tensor): Tensor {
  if (target.ndim !== 2 || target.shape[0] !== logits.shape[0] || target.shape[1] !== logits.shape[1]) {
    throw new ShapeError(
      `soft labels must have the logits' shape ${fmtShape(logits.shape)}, got ${fmtShape(target.shape)}`,
    );
  }
  return mean(neg(sum(mul(cast(target, logits.dtype), logSoftmax(logits, 1)), 1)));
}

/** Token-classification loss: cross-entropy over every position, labels -100 ignored. */
export function tokenClassificationLoss(logits: Tensor, labels: Tensor, numLabels: number): Tensor {
  return crossEntropy(reshape(logits, [-1, numLabels]), reshape(labels, [-1]));
}

// ---- inputs and outputs -----------------------------------------------------------------------

/** Inputs of the text encoders: HF's argument names in camelCase (as the decoders' `DecoderInputs`). */
export interface TextInputs {
  /** (B, T) int32 token ids. */
  inputIds: Tensor;
  /** (B, T) 1 = attend, 0 = padding. */
  attentionMask?: Tensor | null;
  /** (B, T) segment ids (BERT, RoBERTa); zeros when absent. */
  tokenTypeIds?: Tensor | null;
  /** (B, T) explicit position ids. */
  positionIds?: Tensor | null;
  /** int32 class ids (single-label, token classification) or float targets (multi-label, regression). */
  labels?: Tensor | null;
  /** Also return the embedding output and each layer's output. */
  outputHiddenStates?: boolean;
}

/** What a model with a head returns (HF's `logits`, `loss`, `hidden_states`). */
export interface ModelOutput {
  logits: Tensor;
  loss?: Tensor;
  hiddenStates?: Tensor[];
}

/** What a bare encoder returns (HF `BaseModelOutputWithPooling`). */
export interface EncoderOutput {
  lastHiddenState: Tensor;
  poolerOutput?: Tensor;
  hiddenStates?: Tensor[];
}

/** Maps legacy TF-era names (`LayerNorm.gamma`/`beta`) to today's, as transformers does on load. */
export function renameLegacyNorm(key: string): string {
  return key.replace(/\.gamma$/, ".weight").replace(/\.beta$/, ".bias");
}

// ---- attention helpers ------------------------------------------------------------------------

/** (B, T, H*D) -> (B, H, T, D), a view. */
export function splitHeads(x: Tensor, heads: number): Tensor {
  const [B, T, C] = x.shape;
  return permute(reshape(x, [B, T, heads, C / heads]), [0, 2, 1, 3]);
}

/** (B, H, T, D) -> (B, T, H*D). */
export function mergeHeads(x: Tensor): Tensor {
  const [B, H, T, D] = x.shape;
  return reshape(permute(x, [0, 2, 1, 3]), [B, T, H * D]);
}
