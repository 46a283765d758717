/**
 * What the decoder heads share: the forward input/output types, HF's causal-LM loss (labels
 * shifted inside the model, -100 ignored) and GPT-style sequence-classification pooling (the last
 * non-pad token). Labels and the `problem_type` loss are the encoders' (`./encoder-common.ts`).
 */
import type { ConfigSource } from "../formats/hf-config.ts";
import { Linear } from "../nn/layers.ts";
import { Module, type Parameter } from "../nn/module.ts";
import { contiguous, crossEntropy, indexSelect, reshape } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import type { KVCache } from "./common.ts";
import {
  classificationLoss,
  type HeadConfig,
  inferProblemType,
  readHeadConfig,
  writeLabels,
} from "./encoder-common.ts";
import type { PretrainedModel, Task } from "./registry.ts";

/** Inputs of a decoder forward pass (HF argument names in camelCase). */
export interface DecoderInputs {
  /** (B, T) int32 token ids. */
  inputIds: Tensor;
  /** (B, S) 0/1 padding mask over cached + new tokens; omitted = attend to everything. */
  attentionMask?: Tensor | null;
  /** (B, T) positions; default past..past+T-1. */
  positionIds?: Tensor | null;
  /**
   * (B, T) int32 document ids of packed sequences (0 = padding): token i attends to token j only
   * when both belong to the same document (block-diagonal causal mask). See src/data/batch.ts.
   */
  segmentIds?: Tensor | null;
  /** Causal LM: (B, T) int32 ids, -100 ignored, shifted inside. Classification: (B) int32 classes, or (B, num_labels) float32. */
  labels?: Tensor | null;
  /** KV cache to read and extend (generation). */
  pastKeyValues?: KVCache | null;
  /** Return the hidden states as HF's `output_hidden_states=True`. */
  outputHiddenStates?: boolean;
}

/** HF's `CausalLMOutputWithPast` / `SequenceClassifierOutputWithPast`. */
export interface ModelOutput {
  logits: Tensor;
  loss?: Tensor;
  hiddenStates?: Tensor[];
  pastKeyValues?: KVCache;
}

/** A model whose forward takes {@link DecoderInputs}. */
export interface DecoderLM {
  forward(inputs: DecoderInputs): ModelOutput;
  readonly numLayers: number;
}

/**
 * HF causal LM loss: logits[:, :-1] against labels[:, 1:], mean over targets that are not -100.
 * The labels are shifted instead of the logits (target of position t is labels[t + 1], -100 at
 * the last position of each row), so the cross-entropy reads the (B*T, V) logits in place: no
 * (B, T-1, V) copy forward and none for its gradient. Same loss and gradients as HF's form.
 */
export function causalLmLoss(logits: Tensor, labels: Tensor): Tensor {
  const [B, T, V] = logits.shape;
  if (labels.ndim !== 2 || labels.shape[0] !== B || labels.shape[1] !== T)
    throw new ValueError(`labels: expected shape [${B}, ${T}], got [${labels.shape}]`);
  const src = labels.toFloat64Array();
  const y = new Int32Array(B * T).fill(-100);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) y[b * T + t] = src[b * T + t + 1];
  return crossEntropy(reshape(logits, [B * T, V]), tensor(y, { shape: [B * T] }), { ignoreIndex: -100 });
}

/**
 * Index of the last non-pad token per row (current HF rule: rightmost token != pad_token_id, so
 * left and right padding both work); the last position when there is no pad token.
 */
export function lastTokenIndex(inputIds: Tensor, padTokenId: number | undefined): number[] {
  const [B, T] = inputIds.shape;
  if (padTokenId === undefined) {
    if (B !== 1)
      throw new ValueError(
        "Cannot handle batch sizes > 1 if no padding token is defined (set pad_token_id in config.json)",
      );
    return [T - 1];
  }
  const v = inputIds.toFloat64Array();
  return Array.from({ length: B }, (_, b) => {
    let last = 0;
    for (let t = 0; t < T; t++) if (v[b * T + t] !== padTokenId) last = t;
    return last;
  });
}

/** Picks logits (B, T, C) at one position per row -> (B, C). */
export function poolRows(logits: Tensor, idx: number[]): Tensor {
  const [B, T, C] = logits.shape;
  const flat = reshape(contiguous(logits), [B * T, C]);
  return indexSelect(
    flat,
    0,
    tensor(
      Int32Array.from(idx, (t, b) => b * T + t),
      { shape: [B] },
    ),
  );
}

// ---- the two decoder heads, shared by every decoder architecture --------------------------------

/** What a decoder backbone (GPT2Model, LlamaModel, ...) provides to its heads. */
export abstract class DecoderBackbone extends Module {
  abstract readonly numLayers: number;
  /** The input embedding (tied to `lm_head` when `tie_word_embeddings`). */
  abstract inputEmbeddings(): { weight: Parameter };
  /** Runs the stack; hidden (B, T, hidden) is after the final norm; hiddenStates as HF (last one normed). */
  abstract run(inputs: DecoderInputs): { hidden: Tensor; hiddenStates?: Tensor[] };
}

/** Everything a head needs to know about its architecture. */
export interface HeadSpec {
  modelType: string;
  /** HF class name written to `architectures`, e.g. "LlamaForCausalLM". */
  className: string;
  /** HF `base_model_prefix`: the field the backbone lives in ("transformer", "model"). */
  prefix: string;
  hiddenSize: number;
  vocabSize: number;
  tie: boolean;
  padTokenId: number | undefined;
  /** HF `initializer_range`: the heads' weights are drawn from N(0, this). */
  initializerRange: number;
  /** The raw config.json object (copied, then updated with what the head adds). */
  raw: Record<string, unknown>;
}

abstract class DecoderHead extends Module implements PretrainedModel, DecoderLM {
  abstract readonly task: Task;
  readonly modelType: string;
  readonly config: Record<string, unknown>;
  readonly numLayers: number;
  protected readonly _backbone: DecoderBackbone;
  constructor(spec: HeadSpec, backbone: DecoderBackbone) {
    super();
    this.modelType = spec.modelType;
    this.numLayers = backbone.numLayers;
    this._backbone = backbone;
    // The backbone goes in first so parameter order (and tied names) follow HF's.
    (this as unknown as Record<string, unknown>)[spec.prefix] = backbone;
    this.config = { ...spec.raw, architectures: [spec.className], model_type: spec.modelType };
  }
  abstract forward(inputs: DecoderInputs): ModelOutput;
}

/**
 * `*ForCausalLM` (GPT-2: `GPT2LMHeadModel`): backbone + `lm_head` (tied to the input embedding when
 * the config says so). Forward returns logits (B, T, V) and, with labels, HF's shifted loss.
 */
export class DecoderForCausalLM extends DecoderHead {
  readonly task = "causal-lm" as const;
  declare lm_head: Linear;
  readonly tiedKeys: readonly string[];
  constructor(spec: HeadSpec, backbone: DecoderBackbone) {
    super(spec, backbone);
    // A tied head takes the embedding's weight, so drawing its own would be wasted.
    this.lm_head = new Linear(spec.hiddenSize, spec.vocabSize, {
      bias: false,
      std: spec.initializerRange,
      skipInit: spec.tie,
    });
    this.tiedKeys = spec.tie ? ["lm_head.weight"] : [];
    this.config.tie_word_embeddings = spec.tie;
    this.tieWeights();
  }
  /** Re-ties `lm_head.weight` to the input embedding (after the embedding was replaced). */
  tieWeights(): void {
    if (this.tiedKeys.length) this.lm_head.weight = this._backbone.inputEmbeddings().weight;
  }
  forward(inputs: DecoderInputs): ModelOutput {
    const { hidden, hiddenStates } = this._backbone.run(inputs);
    const logits = this.lm_head.forward(hidden);
    const out: ModelOutput = { logits };
    if (inputs.labels) out.loss = causalLmLoss(logits, inputs.labels);
    if (hiddenStates) out.hiddenStates = hiddenStates;
    if (inputs.pastKeyValues) out.pastKeyValues = inputs.pastKeyValues;
    return out;
  }
}

/**
 * `*ForSequenceClassification`: backbone + `score` (no bias); logits of the last non-pad token
 * (by `pad_token_id`, as HF), loss by `problem_type` (inferred as HF when absent).
 */
export class DecoderForSequenceClassification extends DecoderHead {
  readonly task = "sequence-classification" as const;
  declare score: Linear;
  readonly tiedKeys: readonly string[] = [];
  readonly classifier: HeadConfig;
  readonly padTokenId: number | undefined;
  constructor(spec: HeadSpec, backbone: DecoderBackbone, classifier: HeadConfig) {
    super(spec, backbone);
    this.score = new Linear(spec.hiddenSize, classifier.numLabels, { bias: false, std: spec.initializerRange });
    this.classifier = classifier;
    this.padTokenId = spec.padTokenId;
    writeLabels(this.config, classifier.id2label);
  }
  forward(inputs: DecoderInputs): ModelOutput {
    const { hidden, hiddenStates } = this._backbone.run(inputs);
    const all = this.score.forward(hidden);
    const logits = poolRows(all, lastTokenIndex(inputs.inputIds, this.padTokenId));
    const out: ModelOutput = { logits };
    if (inputs.labels) {
      // Unlike the encoders, an inferred problem_type is not written back into the config.
      const { numLabels, problemType } = this.classifier;
      const pt = inferProblemType(problemType, numLabels, inputs.labels);
      out.loss = classificationLoss(logits, inputs.labels, pt, numLabels);
    }
    if (hiddenStates) out.hiddenStates = hiddenStates;
    return out;
  }
}

/** Builds the head for `task` on a freshly built backbone (what each architecture's `create` calls). */
export function buildDecoderHead(
  task: Task,
  spec: HeadSpec,
  backbone: DecoderBackbone,
  src: ConfigSource,
): PretrainedModel {
  if (task === "causal-lm") return new DecoderForCausalLM(spec, backbone);
  if (task === "sequence-classification") {
    const cls = readHeadConfig(src);
    return new DecoderForSequenceClassification(
      { ...spec, className: spec.className.replace(/(ForCausalLM|LMHeadModel)$/, "ForSequenceClassification") },
      backbone,
      cls,
    );
  }
  throw new ValueError(`${spec.modelType}: task '${task}' is not available (causal-lm, sequence-classification)`);
}
