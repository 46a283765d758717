/**
 * What the encoder architectures (BERT, DistilBERT, RoBERTa) and ViT share: head splitting, the
 * classification heads, the label config and the HF sequence-classification loss (regression /
 * single-label / multi-label by `problem_type`; the decoder heads use it too). Layers come from
 * `src/nn`; `buildModel`, the `ACT2FN` table and the padding mask from `./common.ts`.
 */
import { ConfigError, type ConfigSource, getLabels } from "../formats/hf-config.ts";
import { Dropout, Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import {
  bceWithLogits,
  cast,
  crossEntropy,
  logSoftmax,
  mean,
  mseLoss,
  mul,
  neg,
  permute,
  reshape,
  squeeze,
  sum,
} from "../ops/index.ts";
import { fmtShape, ShapeError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { PretrainedModel, Task } from "./registry.ts";

// ---- checkpoints -----------------------------------------------------------------------------

/** Checkpoint keys transformers ignores on load: the old persistent `position_ids` buffer. */
export const IGNORE_POSITION_IDS: readonly RegExp[] = [/(^|\.)embeddings\.position_ids$/];

// ---- labels and the problem_type loss (encoders, ViT and the decoder heads) ---------------------

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
 * HF's `problem_type` rule: the configured one, else 1 label -> regression, int32 labels ->
 * single-label, float labels -> multi-label.
 */
export function inferProblemType(configured: unknown, numLabels: number, labels: Tensor): ProblemType {
  if (configured) return configured as ProblemType;
  if (numLabels === 1) return "regression";
  return labels.dtype === "int32" ? "single_label_classification" : "multi_label_classification";
}

/**
 * The HF `*ForSequenceClassification` loss for `problemType`: regression -> MSE, single-label ->
 * cross-entropy (float (N, C) targets are probabilities), multi-label -> BCE with logits.
 * @example classificationLoss(logits, labels, inferProblemType(null, 3, labels), 3)
 */
export function classificationLoss(
  logits: Tensor,
  labels: Tensor,
  problemType: ProblemType,
  numLabels: number,
): Tensor {
  if (problemType === "regression") {
    const y = cast(labels, logits.dtype);
    return numLabels === 1 ? mseLoss(squeeze(logits), squeeze(y)) : mseLoss(logits, y);
  }
  if (problemType === "single_label_classification") {
    // float (N, C) targets are probabilities (MixUp/CutMix, smoothing), as torch's cross_entropy takes them
    if (labels.dtype !== "int32")
      return softCrossEntropy(reshape(logits, [-1, numLabels]), reshape(labels, [-1, numLabels]));
    return crossEntropy(reshape(logits, [-1, numLabels]), reshape(labels, [-1]));
  }
  return bceWithLogits(logits, cast(labels, logits.dtype));
}

/**
 * {@link classificationLoss} with `config.problem_type`; when null it is inferred on first use and
 * written back into `config`, as HF's encoders do.
 */
export function sequenceClassificationLoss(
  logits: Tensor,
  labels: Tensor,
  config: Record<string, unknown>,
  numLabels: number,
): Tensor {
  const pt = inferProblemType(config.problem_type, numLabels, labels);
  config.problem_type = pt;
  return classificationLoss(logits, labels, pt, numLabels);
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

// ---- heads ------------------------------------------------------------------------------------

const CLASS_PREFIX: Record<string, string> = {
  bert: "Bert",
  distilbert: "DistilBert",
  roberta: "Roberta",
  "xlm-roberta": "XLMRoberta",
  camembert: "Camembert",
  vit: "ViT",
};
const CLASS_SUFFIX: Partial<Record<Task, string>> = {
  base: "Model",
  "sequence-classification": "ForSequenceClassification",
  "token-classification": "ForTokenClassification",
  "image-classification": "ForImageClassification",
};

/**
 * The `config` a model reports: the raw config.json object with labels normalised and, when the
 * task is known, HF's `architectures` class name (so a saved folder loads back with its head).
 */
export function modelConfig(
  raw: Record<string, unknown>,
  modelType: string,
  id2label?: readonly string[],
  task?: Task,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, model_type: modelType };
  const cls = task && CLASS_PREFIX[modelType] && CLASS_SUFFIX[task];
  if (cls) out.architectures = [`${CLASS_PREFIX[modelType]}${cls}`];
  if (id2label) {
    writeLabels(out, id2label);
    delete out.num_labels;
  }
  return out;
}

/** A bare text encoder as the heads see it (`BertModel`, `DistilBertModel`, `RobertaModel`). */
export interface TextEncoder extends Module {
  forward(inp: TextInputs): EncoderOutput;
}

/** Who a head belongs to: HF `model_type`, `base_model_prefix` and the raw config. */
export interface EncoderHeadSpec {
  modelType: string;
  /** The field the encoder lives in ("bert", "distilbert", "roberta"): HF's parameter prefix. */
  prefix: string;
  task: "sequence-classification" | "token-classification";
  raw: Record<string, unknown>;
  file: string;
}

/**
 * HF `*ForSequenceClassification` / `*ForTokenClassification` of an encoder: reads the labels,
 * keeps the encoder under `spec.prefix` (built after the labels are read, before the head, so
 * random draws follow HF's order), runs encoder -> {@link EncoderHead.head} -> the task's loss.
 *
 * @example
 * // A subclass declares the encoder's field (`declare`: the base class assigns it), builds its
 * // layers after `super` and maps the encoder output to logits.
 * class RobertaForSequenceClassification extends EncoderHead {
 *   declare roberta: RobertaModel;
 *   classifier: RobertaClassificationHead;
 *   protected head(o: EncoderOutput) { return this.classifier.forward(o.lastHiddenState); }
 * }
 */
export abstract class EncoderHead extends Module implements PretrainedModel {
  readonly modelType: string;
  readonly task: Task;
  readonly baseModelPrefix: string;
  readonly config: Record<string, unknown>;
  readonly numLabels: number;
  protected readonly _encoder: TextEncoder;
  constructor(spec: EncoderHeadSpec, encoder: () => TextEncoder) {
    super();
    const head = readHeadConfig({ raw: spec.raw, file: spec.file });
    this.modelType = spec.modelType;
    this.task = spec.task;
    this.baseModelPrefix = spec.prefix;
    this.numLabels = head.numLabels;
    this.config = modelConfig(spec.raw, spec.modelType, head.id2label, spec.task);
    this._encoder = encoder();
    (this as unknown as Record<string, unknown>)[spec.prefix] = this._encoder;
  }
  /** Encoder output -> logits. */
  protected abstract head(o: EncoderOutput): Tensor;
  forward(inp: TextInputs): ModelOutput {
    const o = this._encoder.forward(inp);
    const logits = this.head(o);
    let loss: Tensor | undefined;
    if (inp.labels)
      loss =
        this.task === "token-classification"
          ? tokenClassificationLoss(logits, inp.labels, this.numLabels)
          : sequenceClassificationLoss(logits, inp.labels, this.config, this.numLabels);
    return { logits, loss, hiddenStates: o.hiddenStates };
  }
}

/**
 * dropout -> `classifier` on the pooled output (sequence classification, BERT) or on every token
 * (token classification): HF's `BertFor*`, `DistilBertForTokenClassification`,
 * `RobertaForTokenClassification`.
 */
export class EncoderForClassification extends EncoderHead {
  dropout: Dropout;
  classifier: Linear;
  constructor(
    spec: EncoderHeadSpec,
    encoder: () => TextEncoder,
    c: { hiddenSize: number; dropout: number; initializerRange: number },
  ) {
    super(spec, encoder);
    this.dropout = new Dropout(c.dropout);
    this.classifier = new Linear(c.hiddenSize, this.numLabels, { std: c.initializerRange });
  }
  protected head(o: EncoderOutput): Tensor {
    const x = this.task === "token-classification" ? o.lastHiddenState : (o.poolerOutput as Tensor);
    return this.classifier.forward(this.dropout.forward(x));
  }
}

/** @deprecated import `buildModel` from `./common.ts` (kept for scripts that import it from here). */
export { buildModel } from "./common.ts";
