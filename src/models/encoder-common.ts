/**
 * What the encoder architectures (BERT, DistilBERT, RoBERTa) and ViT share: the extended attention
 * mask, head splitting, the label config and the HF sequence-classification loss (regression /
 * single-label / multi-label by `problem_type`). Layers come from `src/nn`, `buildModel` and the
 * `ACT2FN` table from `./common.ts`.
 */
import { ConfigError, type ConfigSource, getLabels } from "../formats/hf-config.ts";
import {
  bceWithLogits,
  cast,
  crossEntropy,
  eq,
  logSoftmax,
  mean,
  mseLoss,
  mul,
  neg,
  permute,
  reshape,
  squeeze,
  sum,
  where,
} from "../ops/index.ts";
import { fmtShape, ShapeError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { MASK_MIN } from "./common.ts";

// ---- checkpoints -----------------------------------------------------------------------------

/** Checkpoint keys transformers ignores on load: the old persistent `position_ids` buffer. */
export const IGNORE_POSITION_IDS: readonly RegExp[] = [/(^|\.)embeddings\.position_ids$/];

// ---- masks ------------------------------------------------------------------------------------

/**
 * HF `get_extended_attention_mask` for an encoder: (B, S) 1/0 mask -> additive (B, 1, 1, S) with 0
 * where attended and float32-min where masked. Null in, null out (attend everywhere).
 */
export function extendedAttentionMask(mask: Tensor | null | undefined): Tensor | null {
  if (!mask) return null;
  const [B, S] = mask.shape;
  return reshape(where(eq(mask, 0), MASK_MIN, 0), [B, 1, 1, S]);
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

/** @deprecated import `buildModel` from `./common.ts` (kept for scripts that import it from here). */
export { buildModel } from "./common.ts";
