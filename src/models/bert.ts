/**
 * BERT (HF `modeling_bert.py`): `BertModel`, `BertForSequenceClassification` (pooler + classifier;
 * regression / single- / multi-label by `problem_type`) and `BertForTokenClassification`. Parameter
 * names are HF's (`bert.encoder.layer.0.attention.self.query.weight`), so `model.safetensors` loads
 * as is. The encoder blocks are exported for RoBERTa, which shares them.
 *
 * @example
 * const model = getArchitecture("bert").create(config, "sequence-classification");
 * const { logits, loss } = model.forward({ inputIds, attentionMask, tokenTypeIds, labels });
 */
import { type ConfigSource, getNumber, getString } from "../formats/hf-config.ts";
import { Dropout, Embedding, Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import { LayerNorm } from "../nn/norm.ts";
import { add, scaledDotProductAttention, select, tanh } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { arange, type Tensor, zeros } from "../tensor/tensor.ts";
import { type Activation, activation, buildModel, paddingIdx, paddingMask } from "./common.ts";
import {
  EncoderForClassification,
  type EncoderHeadSpec,
  type EncoderOutput,
  IGNORE_POSITION_IDS,
  mergeHeads,
  modelConfig,
  renameLegacyNorm,
  splitHeads,
  type TextInputs,
} from "./encoder-common.ts";
import { type PretrainedModel, registerArchitecture, type Task } from "./registry.ts";

/** `BertConfig` fields we use, with HF's defaults. */
export interface BertConfig {
  vocab_size: number;
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  max_position_embeddings: number;
  type_vocab_size: number;
  initializer_range: number;
  layer_norm_eps: number;
  pad_token_id: number;
  classifier_dropout: number | null;
}

const INT = { integer: true, min: 1, max: 1 << 24 };
const PROB = { min: 0, max: 1 };

/** Reads a BERT-family config; `defaults` overrides HF's BERT defaults (RoBERTa's pad id, vocab). */
export function readBertConfig(src: ConfigSource, defaults: Partial<BertConfig> = {}): BertConfig {
  const d = { vocab_size: 30522, pad_token_id: 0, ...defaults };
  const pet = getString(src, "position_embedding_type", "absolute");
  if (pet !== "absolute")
    throw new ValueError(`${src.file}: position_embedding_type '${pet}' is not supported (only 'absolute')`);
  const c: BertConfig = {
    vocab_size: getNumber(src, "vocab_size", d.vocab_size, INT),
    hidden_size: getNumber(src, "hidden_size", 768, INT),
    num_hidden_layers: getNumber(src, "num_hidden_layers", 12, INT),
    num_attention_heads: getNumber(src, "num_attention_heads", 12, INT),
    intermediate_size: getNumber(src, "intermediate_size", 3072, INT),
    hidden_act: getString(src, "hidden_act", "gelu"),
    hidden_dropout_prob: getNumber(src, "hidden_dropout_prob", 0.1, PROB),
    attention_probs_dropout_prob: getNumber(src, "attention_probs_dropout_prob", 0.1, PROB),
    max_position_embeddings: getNumber(src, "max_position_embeddings", 512, INT),
    type_vocab_size: getNumber(src, "type_vocab_size", 2, INT),
    initializer_range: getNumber(src, "initializer_range", 0.02, { min: 0 }),
    layer_norm_eps: getNumber(src, "layer_norm_eps", 1e-12, { min: 0 }),
    pad_token_id: getNumber(src, "pad_token_id", d.pad_token_id, { integer: true, min: 0 }),
    classifier_dropout:
      src.raw.classifier_dropout == null ? null : getNumber(src, "classifier_dropout", undefined, PROB),
  };
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new ValueError(
      `${src.file}: hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`,
    );
  }
  activation(c.hidden_act, src.file);
  return c;
}

/** word + position + token-type embeddings, LayerNorm, dropout (HF `BertEmbeddings`). */
export class BertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  token_type_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(c: BertConfig, positionPaddingIdx: number | null = null) {
    super();
    const std = c.initializer_range;
    const pad = paddingIdx(c.pad_token_id, c.vocab_size);
    this.word_embeddings = new Embedding(c.vocab_size, c.hidden_size, { paddingIdx: pad, std });
    const posPad = paddingIdx(positionPaddingIdx, c.max_position_embeddings);
    this.position_embeddings = new Embedding(c.max_position_embeddings, c.hidden_size, { paddingIdx: posPad, std });
    this.token_type_embeddings = new Embedding(c.type_vocab_size, c.hidden_size, { std });
    this.LayerNorm = new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps });
    this.dropout = new Dropout(c.hidden_dropout_prob);
  }
  /** `positionIds` (B, T) or (T); defaults to 0..T-1 (BERT). */
  forward(inputIds: Tensor, tokenTypeIds?: Tensor | null, positionIds?: Tensor | null): Tensor {
    const T = inputIds.shape[1];
    const maxPos = this.position_embeddings.weight.shape[0];
    const pos = positionIds ?? arange(T);
    if (!positionIds && T > maxPos)
      throw new ValueError(`sequence length ${T} exceeds max_position_embeddings ${maxPos}`);
    const tt = tokenTypeIds ?? zeros(inputIds.shape, { dtype: "int32" });
    let e = add(this.word_embeddings.forward(inputIds), this.token_type_embeddings.forward(tt));
    e = add(e, this.position_embeddings.forward(pos));
    return this.dropout.forward(this.LayerNorm.forward(e));
  }
}

/** HF `BertSelfAttention` (query/key/value projections, scaled dot product over heads). */
export class BertSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  constructor(readonly c: BertConfig) {
    super();
    const o = { std: c.initializer_range };
    this.query = new Linear(c.hidden_size, c.hidden_size, o);
    this.key = new Linear(c.hidden_size, c.hidden_size, o);
    this.value = new Linear(c.hidden_size, c.hidden_size, o);
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const H = this.c.num_attention_heads;
    const q = splitHeads(this.query.forward(x), H);
    const k = splitHeads(this.key.forward(x), H);
    const v = splitHeads(this.value.forward(x), H);
    const ctx = scaledDotProductAttention(q, k, v, {
      mask,
      dropout: this.c.attention_probs_dropout_prob,
      training: this.training,
    });
    return mergeHeads(ctx);
  }
}

/** dense -> dropout -> LayerNorm(x + residual): HF `BertSelfOutput` and `BertOutput`. */
export class BertResidualOutput extends Module {
  dense: Linear;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(inDim: number, c: BertConfig) {
    super();
    this.dense = new Linear(inDim, c.hidden_size, { std: c.initializer_range });
    this.LayerNorm = new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps });
    this.dropout = new Dropout(c.hidden_dropout_prob);
  }
  forward(h: Tensor, residual: Tensor): Tensor {
    return this.LayerNorm.forward(add(this.dropout.forward(this.dense.forward(h)), residual));
  }
}

export class BertAttention extends Module {
  self: BertSelfAttention;
  output: BertResidualOutput;
  constructor(c: BertConfig) {
    super();
    this.self = new BertSelfAttention(c);
    this.output = new BertResidualOutput(c.hidden_size, c);
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    return this.output.forward(this.self.forward(x, mask), x);
  }
}

export class BertIntermediate extends Module {
  dense: Linear;
  private readonly _act: Activation;
  constructor(c: BertConfig, file: string) {
    super();
    this.dense = new Linear(c.hidden_size, c.intermediate_size, { std: c.initializer_range });
    this._act = activation(c.hidden_act, file);
  }
  forward(x: Tensor): Tensor {
    return this._act(this.dense.forward(x));
  }
}

/** One encoder block (post-LN): attention, then the feed-forward, each with a residual. */
export class BertLayer extends Module {
  attention: BertAttention;
  intermediate: BertIntermediate;
  output: BertResidualOutput;
  constructor(c: BertConfig, file: string) {
    super();
    this.attention = new BertAttention(c);
    this.intermediate = new BertIntermediate(c, file);
    this.output = new BertResidualOutput(c.intermediate_size, c);
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const a = this.attention.forward(x, mask);
    return this.output.forward(this.intermediate.forward(a), a);
  }
}

export class BertEncoder extends Module {
  layer: BertLayer[];
  constructor(c: BertConfig, file: string) {
    super();
    this.layer = Array.from({ length: c.num_hidden_layers }, () => new BertLayer(c, file));
  }
  /** Runs every layer; `states` (when given) collects each layer's output. */
  forward(x: Tensor, mask: Tensor | null, states?: Tensor[]): Tensor {
    for (const l of this.layer) {
      x = l.forward(x, mask);
      states?.push(x);
    }
    return x;
  }
}

/** tanh(dense(first token)): HF `BertPooler` (and `ViTPooler`, the same layer). */
export class BertPooler extends Module {
  dense: Linear;
  constructor(c: Pick<BertConfig, "hidden_size" | "initializer_range">) {
    super();
    this.dense = new Linear(c.hidden_size, c.hidden_size, { std: c.initializer_range });
  }
  forward(h: Tensor): Tensor {
    return tanh(this.dense.forward(select(h, 1, 0)));
  }
}

/**
 * The bare encoder (HF `BertModel`), with the pooler unless `addPoolingLayer` is false;
 * `embeddings` is where RoBERTa puts its own.
 */
export class BertModel extends Module {
  embeddings: BertEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  constructor(
    readonly cfg: BertConfig,
    file = "config.json",
    addPoolingLayer = true,
    embeddings: BertEmbeddings = new BertEmbeddings(cfg),
  ) {
    super();
    this.embeddings = embeddings;
    this.encoder = new BertEncoder(cfg, file);
    this.pooler = addPoolingLayer ? new BertPooler(cfg) : null;
  }
  forward(inp: TextInputs): EncoderOutput {
    const emb = this.embeddings.forward(inp.inputIds, inp.tokenTypeIds, inp.positionIds);
    const states = inp.outputHiddenStates ? [emb] : undefined;
    const h = this.encoder.forward(emb, paddingMask(inp.attentionMask), states);
    return { lastHiddenState: h, poolerOutput: this.pooler?.forward(h), hiddenStates: states };
  }
}

/** HF `BertModel` as a `PretrainedModel` (task "base"). */
export class BertBase extends BertModel implements PretrainedModel {
  readonly modelType = "bert";
  readonly task: Task = "base";
  readonly baseModelPrefix = "bert";
  readonly config: Record<string, unknown>;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    super(readBertConfig({ raw, file }), file);
    this.config = modelConfig(raw, "bert", undefined, "base");
  }
}

/** What BERT's two heads are built from (the encoder has a pooler for sequence classification). */
function bertHead(raw: Record<string, unknown>, file: string, task: EncoderHeadSpec["task"]) {
  const c = readBertConfig({ raw, file });
  const spec: EncoderHeadSpec = { modelType: "bert", prefix: "bert", task, raw, file };
  const encoder = () => new BertModel(c, file, task === "sequence-classification");
  const dropout = c.classifier_dropout ?? c.hidden_dropout_prob;
  return { spec, encoder, sizes: { hiddenSize: c.hidden_size, dropout, initializerRange: c.initializer_range } };
}

/** HF `BertForSequenceClassification`: pooled output -> dropout -> classifier. */
export class BertForSequenceClassification extends EncoderForClassification {
  declare bert: BertModel;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    const { spec, encoder, sizes } = bertHead(raw, file, "sequence-classification");
    super(spec, encoder, sizes);
  }
}

/** HF `BertForTokenClassification`: per-token dropout -> classifier (no pooler). */
export class BertForTokenClassification extends EncoderForClassification {
  declare bert: BertModel;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    const { spec, encoder, sizes } = bertHead(raw, file, "token-classification");
    super(spec, encoder, sizes);
  }
}

registerArchitecture({
  modelTypes: ["bert"],
  tasks: ["base", "sequence-classification", "token-classification"],
  basePrefix: "bert",
  create(config, task, file = "config.json", opts) {
    return buildModel(opts, () => {
      if (task === "sequence-classification") return new BertForSequenceClassification(config, file);
      if (task === "token-classification") return new BertForTokenClassification(config, file);
      if (task === "base") return new BertBase(config, file);
      throw new ValueError(
        `${file}: bert has no '${task}' head (known: base, sequence-classification, token-classification)`,
      );
    });
  },
  ignoreKeys: IGNORE_POSITION_IDS,
  renameKey: renameLegacyNorm,
});
