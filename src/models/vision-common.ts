/**
 * What the torchvision CNNs (ResNet, MobileNetV2) and ViT share: `nn.Conv2d` with torchvision's
 * defaults, Conv-BN-ReLU6, the `ImageClassifier` base
 * (forward, pooled features for the feature cache, head replacement with label names) and the
 * label fields of a torchvision-style config (`architecture`, `num_classes`, `id2label`).
 */
import { forwardChain } from "../autograd/release.ts";
import { type ConfigSource, getLabels, getNumber } from "../formats/hf-config.ts";
import * as nn from "../nn/index.ts";
import { Module } from "../nn/module.ts";
import { crossEntropy } from "../ops/index.ts";
import { ShapeError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { softCrossEntropy, writeLabels } from "./encoder-common.ts";
import type { PretrainedModel, Task } from "./registry.ts";

/**
 * `nn.Conv2d` with torchvision's CNN defaults: no bias, and weight init
 * kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e. N(0, 2 / (out * k * k)), unless `std` is given.
 * @example new Conv2d(64, 128, 3, { stride: 2, padding: 1 })
 */
export class Conv2d extends nn.Conv2d {
  constructor(inC: number, outC: number, kernel: number, opts: ConstructorParameters<typeof nn.Conv2d>[3] = {}) {
    super(inC, outC, kernel, {
      ...opts,
      bias: opts.bias ?? false,
      std: opts.std ?? Math.sqrt(2 / (outC * kernel * kernel)),
    });
  }
}

/** `nn.BatchNorm2d` (frozen = inference mode even in `train()`; see `nn.BatchNorm`). */
export const BatchNorm2d = nn.BatchNorm2d;
export type BatchNorm2d = nn.BatchNorm2d;

/** @deprecated `nn.Linear` (PyTorch's default init, or `{ std }` for N(0, std) and zero bias). */
export const TorchLinear = nn.Linear;
export type TorchLinear = nn.Linear;

/** torchvision `Conv2dNormActivation`: "0" conv (no bias, "same" padding), "1" BatchNorm, "2" ReLU6. */
export class ConvBNAct extends nn.Sequential {
  constructor(inC: number, outC: number, kernel: number, opts: { stride?: number; groups?: number } = {}) {
    const conv = new Conv2d(inC, outC, kernel, {
      stride: opts.stride,
      padding: (kernel - 1) >> 1,
      groups: opts.groups,
    });
    super(conv, new nn.BatchNorm2d(outC), new nn.ReLU6());
  }
  /** Conv, then BN with the ReLU6 fused (one activation less kept for backward). */
  override forward(x: Tensor): Tensor {
    const [conv, bn] = this._items as [Conv2d, nn.BatchNorm2d];
    return forwardChain(x, [conv, (t) => bn.forward(t, "relu6")]);
  }
}

// ---- labels and loss --------------------------------------------------------------------------

/**
 * Number of classes and label names of a vision config: `id2label` (or `num_labels`, as the
 * loader writes when a new head is asked for) wins over torchvision's `num_classes` (default 1000).
 */
export function readVisionLabels(src: ConfigSource): string[] {
  if (src.raw.id2label != null || src.raw.num_labels != null) return getLabels(src).id2label;
  const n = getNumber(src, "num_classes", 1000, { integer: true, min: 1, max: 1_000_000 });
  return Array.from({ length: n }, (_, i) => `LABEL_${i}`);
}

/**
 * Image-classification loss of the torchvision models: int32 class ids -> mean cross-entropy;
 * float (N, C) targets (MixUp/CutMix soft labels) -> mean of -sum(target * log_softmax).
 */
export function imageClassificationLoss(logits: Tensor, labels: Tensor): Tensor {
  return labels.dtype === "int32" ? crossEntropy(logits, labels) : softCrossEntropy(logits, labels);
}

// ---- the classifier base ----------------------------------------------------------------------

export interface ImageInputs {
  /** (N, 3, H, W) float32, already normalised. */
  pixelValues: Tensor;
  /** (N) int32 class ids, or (N, C) float targets. */
  labels?: Tensor | null;
}

export interface ImageClassifierOutput {
  logits: Tensor;
  loss?: Tensor;
}

/**
 * An image classifier split into backbone (`pooledFeatures`: pixels -> (N, F)) and a
 * linear head (`classify`), so head-only training can cache features and run only the head.
 *
 * @example
 * model.replaceHead(3, ["cat", "dog", "bird"]);   // new head, labels in config.id2label
 * model.freeze(); model.unfreeze([model.headPrefix]);   // Keras: frozen backbone, BN in inference mode
 * const feats = noGrad(() => model.pooledFeatures(pixels));   // cacheable
 * const { logits, loss } = model.classify(feats, labels);
 */
export abstract class ImageClassifier extends Module implements PretrainedModel {
  abstract readonly modelType: string;
  readonly task: Task = "image-classification";
  abstract readonly config: Record<string, unknown>;
  /** Dotted path of the head module (`fc`, `classifier.1`, `classifier`): its parameters train in head-only mode. */
  abstract readonly headPrefix: string;
  /** Width F of the pooled features. */
  abstract readonly numFeatures: number;
  /** Backbone: (N, 3, H, W) -> (N, F) pooled features (what the head sees). */
  abstract pooledFeatures(pixelValues: Tensor): Tensor;
  /** The head's linear layer. */
  protected abstract headLayer(): { forward(x: Tensor): Tensor; weight: Tensor };
  /** Installs a freshly initialised head with `numClasses` outputs (architecture's init). */
  protected abstract newHead(numClasses: number): void;

  /** Head: pooled features -> logits (+ loss when labels are given). */
  classify(features: Tensor, labels?: Tensor | null): ImageClassifierOutput {
    const logits = this.headLayer().forward(features);
    return { logits, loss: labels ? this.loss(logits, labels) : undefined };
  }

  forward(inp: ImageInputs): ImageClassifierOutput {
    return this.classify(this.pooledFeatures(inp.pixelValues), inp.labels);
  }

  /** The loss for `labels` (see `imageClassificationLoss`; ViT follows HF's `problem_type`). */
  protected loss(logits: Tensor, labels: Tensor): Tensor {
    return imageClassificationLoss(logits, labels);
  }

  /** Number of classes the head predicts. */
  get numClasses(): number {
    return this.headLayer().weight.shape[0];
  }

  /**
   * Replaces the head with a new randomly initialised one for `numClasses` classes and records
   * the label names (`id2label`/`label2id`, default `LABEL_i`) in the config, for fine-tuning.
   */
  replaceHead(numClasses: number, labels?: readonly string[]): void {
    if (!Number.isInteger(numClasses) || numClasses < 1)
      throw new ShapeError(`replaceHead: numClasses must be a positive integer, got ${numClasses}`);
    if (labels && labels.length !== numClasses)
      throw new ShapeError(`replaceHead: ${labels.length} label names for ${numClasses} classes`);
    this.newHead(numClasses);
    this.setLabels(labels ? [...labels] : Array.from({ length: numClasses }, (_, i) => `LABEL_${i}`));
  }

  /** Writes the label fields into `config` (torchvision's `num_classes` too). */
  protected setLabels(id2label: string[]): void {
    writeLabels(this.config, id2label);
    delete this.config.num_labels;
    if ("architecture" in this.config) this.config.num_classes = id2label.length;
  }
}
