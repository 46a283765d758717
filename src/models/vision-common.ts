/**
 * What the torchvision CNNs (ResNet, MobileNetV2) and ViT share: Conv2d and BatchNorm2d modules
 * with torchvision's names and init, the BatchNorm freeze contract, the `ImageClassifier` base
 * (forward, pooled features for the feature cache, head replacement with label names) and the
 * label fields of a torchvision-style config (`architecture`, `num_classes`, `id2label`).
 */
import { type ConfigSource, getLabels, getNumber } from "../formats/hf-config.ts";
import { Buffer, Module, Parameter } from "../nn/module.ts";
import { batchNorm, conv2d, crossEntropy, linear, relu, relu6 } from "../ops/index.ts";
import { ShapeError } from "../tensor/errors.ts";
import { ones, scalar, type Tensor, zeros } from "../tensor/tensor.ts";
import { normalInit, softCrossEntropy, uniformInit, writeLabels } from "./encoder-common.ts";
import type { PretrainedModel, Task } from "./registry.ts";

type Pair = number | [number, number];

/** `nn.Conv2d`; weight init kaiming_normal_(mode="fan_out", relu) as torchvision's CNNs do, or N(0, `std`). */
export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  constructor(
    inC: number,
    outC: number,
    readonly kernel: number,
    readonly opts: { stride?: Pair; padding?: Pair; groups?: number; bias?: boolean; std?: number } = {},
  ) {
    super();
    const g = opts.groups ?? 1;
    const std = opts.std ?? Math.sqrt(2 / (outC * kernel * kernel));
    this.weight = new Parameter(normalInit([outC, inC / g, kernel, kernel], std));
    this.bias = opts.bias ? new Parameter(zeros([outC])) : null;
  }
  forward(x: Tensor): Tensor {
    const { stride = 1, padding = 0, groups = 1 } = this.opts;
    return conv2d(x, this.weight, this.bias, { stride, padding, groups });
  }
}

/**
 * `nn.BatchNorm2d` (weight, bias; buffers running_mean, running_var, num_batches_tracked).
 *
 * **Freeze contract (Keras semantics):** a frozen BatchNorm (weight and bias both have
 * `requiresGrad` false, e.g. after `model.freeze()`) always runs in inference mode with its running
 * statistics and never updates them or `num_batches_tracked`, even in `train()`. Otherwise
 * `train()` uses batch statistics and updates the running ones (momentum 0.1, unbiased variance).
 */
export class BatchNorm2d extends Module {
  weight: Parameter;
  bias: Parameter;
  running_mean: Buffer;
  running_var: Buffer;
  num_batches_tracked: Buffer;
  constructor(
    readonly channels: number,
    readonly eps = 1e-5,
    readonly momentum = 0.1,
  ) {
    super();
    this.weight = new Parameter(ones([channels]));
    this.bias = new Parameter(zeros([channels]));
    this.running_mean = new Buffer(zeros([channels]));
    this.running_var = new Buffer(ones([channels]));
    this.num_batches_tracked = new Buffer(scalar(0, "int32"));
  }
  /** True when both affine parameters are frozen: then inference mode even in `train()`. */
  get frozen(): boolean {
    return !this.weight.requiresGrad && !this.bias.requiresGrad;
  }
  forward(x: Tensor): Tensor {
    const batchStats = this.training && !this.frozen;
    if (batchStats) {
      const n = this.num_batches_tracked.value;
      n.data[n.offset] += 1;
    }
    const rm = this.running_mean.value;
    const rv = this.running_var.value;
    return batchNorm(x, rm, rv, this.weight, this.bias, {
      training: batchStats,
      momentum: this.momentum,
      eps: this.eps,
    });
  }
}

/** `nn.Linear` with PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. */
export class TorchLinear extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(inF: number, outF: number, init: "default" | { std: number } = "default") {
    super();
    const bound = 1 / Math.sqrt(inF);
    this.weight = new Parameter(
      init === "default" ? uniformInit([outF, inF], bound) : normalInit([outF, inF], init.std),
    );
    this.bias = new Parameter(init === "default" ? uniformInit([outF], bound) : zeros([outF]));
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** torchvision `Conv2dNormActivation`: children "0" (conv, no bias) and "1" (BN), then ReLU/ReLU6. */
export class ConvBNAct extends Module {
  0: Conv2d;
  1: BatchNorm2d;
  constructor(
    inC: number,
    outC: number,
    kernel: number,
    opts: { stride?: number; groups?: number } = {},
    readonly act: "relu" | "relu6" | "none" = "relu6",
  ) {
    super();
    this[0] = new Conv2d(inC, outC, kernel, {
      stride: opts.stride ?? 1,
      padding: (kernel - 1) >> 1,
      groups: opts.groups ?? 1,
    });
    this[1] = new BatchNorm2d(outC);
  }
  forward(x: Tensor): Tensor {
    const y = this[1].forward(this[0].forward(x));
    return this.act === "relu6" ? relu6(y) : this.act === "relu" ? relu(y) : y;
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
