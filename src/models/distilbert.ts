/**
 * DistilBERT (HF `modeling_distilbert.py`): `DistilBertModel`, `DistilBertForSequenceClassification`
 * (first token -> `pre_classifier` -> ReLU -> dropout -> `classifier`) and
 * `DistilBertForTokenClassification`. HF names: `distilbert.embeddings.word_embeddings`,
 * `distilbert.transformer.layer.N.attention.q_lin`, `sa_layer_norm`, `ffn.lin1`, `output_layer_norm`.
 * No token types; positions are 0..T-1 (learned, or fixed sinusoids with `sinusoidal_pos_embds`).
 *
 * @example
 * const model = getArchitecture("distilbert").create(config, "sequence-classification");
 * const { logits, loss } = model.forward({ inputIds, attentionMask, labels });
 */
import { type ConfigSource, getBool, getNumber, getString } from "../formats/hf-config.ts";
import { Dropout, Embedding, Linear } from "../nn/layers.ts";
import { Module, Parameter } from "../nn/module.ts";
import { LayerNorm } from "../nn/norm.ts";
import { add, relu, scaledDotProductAttention, select } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { arange, type Tensor, tensor } from "../tensor/tensor.ts";
import { type Activation, activation, buildModel, paddingIdx, paddingMask } from "./common.ts";
import {
  EncoderForClassification,
  EncoderHead,
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

/** `DistilBertConfig` fields, with HF's defaults. */
export interface DistilBertConfig {
  vocab_size: number;
  max_position_embeddings: number;
  sinusoidal_pos_embds: boolean;
  n_layers: number;
  n_heads: number;
  dim: number;
  hidden_dim: number;
  dropout: number;
  attention_dropout: number;
  activation: string;
  initializer_range: number;
  seq_classif_dropout: number;
  pad_token_id: number;
}

const INT = { integer: true, min: 1, max: 1 << 24 };
const PROB = { min: 0, max: 1 };

export function readDistilBertConfig(src: ConfigSource): DistilBertConfig {
  const c: DistilBertConfig = {
    vocab_size: getNumber(src, "vocab_size", 30522, INT),
    max_position_embeddings: getNumber(src, "max_position_embeddings", 512, INT),
    sinusoidal_pos_embds: getBool(src, "sinusoidal_pos_embds", false),
    n_layers: getNumber(src, "n_layers", 6, INT),
    n_heads: getNumber(src, "n_heads", 12, INT),
    dim: getNumber(src, "dim", 768, INT),
    hidden_dim: getNumber(src, "hidden_dim", 3072, INT),
    dropout: getNumber(src, "dropout", 0.1, PROB),
    attention_dropout: getNumber(src, "attention_dropout", 0.1, PROB),
    activation: getString(src, "activation", "gelu"),
    initializer_range: getNumber(src, "initializer_range", 0.02, { min: 0 }),
    seq_classif_dropout: getNumber(src, "seq_classif_dropout", 0.2, PROB),
    pad_token_id: getNumber(src, "pad_token_id", 0, { integer: true, min: 0 }),
  };
  if (c.dim % c.n_heads !== 0)
    throw new ValueError(`${src.file}: dim ${c.dim} is not a multiple of n_heads ${c.n_heads}`);
  activation(c.activation, src.file, "activation");
  return c;
}

/** HF `create_sinusoidal_embeddings`: sin on even columns, cos on odd, angle pos / 10000^(2(j//2)/dim). */
export function sinusoidalEmbeddings(nPos: number, dim: number): Tensor {
  const out = new Float32Array(nPos * dim);
  for (let p = 0; p < nPos; p++)
    for (let j = 0; j < dim; j++) {
      const a = p / 10000 ** ((2 * Math.floor(j / 2)) / dim);
      out[p * dim + j] = j % 2 === 0 ? Math.sin(a) : Math.cos(a);
    }
  return tensor(out, { shape: [nPos, dim] });
}

export class DistilBertEmbeddings extends Module {
  word_embeddings: Embedding;
  position_embeddings: Embedding;
  LayerNorm: LayerNorm;
  dropout: Dropout;
  constructor(c: DistilBertConfig) {
    super();
    const std = c.initializer_range;
    this.word_embeddings = new Embedding(c.vocab_size, c.dim, {
      paddingIdx: paddingIdx(c.pad_token_id, c.vocab_size),
      std,
    });
    this.position_embeddings = new Embedding(c.max_position_embeddings, c.dim, { std });
    // Fixed sinusoids are not trained (HF sets requires_grad False) but are saved in the state dict.
    if (c.sinusoidal_pos_embds)
      this.position_embeddings.weight = new Parameter(sinusoidalEmbeddings(c.max_position_embeddings, c.dim), false);
    this.LayerNorm = new LayerNorm(c.dim, { eps: 1e-12 });
    this.dropout = new Dropout(c.dropout);
  }
  forward(inputIds: Tensor, positionIds?: Tensor | null): Tensor {
    const T = inputIds.shape[1];
    const maxPos = this.position_embeddings.weight.shape[0];
    if (!positionIds && T > maxPos)
      throw new ValueError(`sequence length ${T} exceeds max_position_embeddings ${maxPos}`);
    const e = add(this.word_embeddings.forward(inputIds), this.position_embeddings.forward(positionIds ?? arange(T)));
    return this.dropout.forward(this.LayerNorm.forward(e));
  }
}

/** HF `MultiHeadSelfAttention` (q_lin, k_lin, v_lin, out_lin). */
export class MultiHeadSelfAttention extends Module {
  q_lin: Linear;
  k_lin: Linear;
  v_lin: Linear;
  out_lin: Linear;
  constructor(readonly c: DistilBertConfig) {
    super();
    const o = { std: c.initializer_range };
    this.q_lin = new Linear(c.dim, c.dim, o);
    this.k_lin = new Linear(c.dim, c.dim, o);
    this.v_lin = new Linear(c.dim, c.dim, o);
    this.out_lin = new Linear(c.dim, c.dim, o);
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const H = this.c.n_heads;
    const q = splitHeads(this.q_lin.forward(x), H);
    const k = splitHeads(this.k_lin.forward(x), H);
    const v = splitHeads(this.v_lin.forward(x), H);
    const ctx = scaledDotProductAttention(q, k, v, {
      mask,
      dropout: this.c.attention_dropout,
      training: this.training,
    });
    return this.out_lin.forward(mergeHeads(ctx));
  }
}

/** HF `FFN`: lin1 -> activation -> lin2 -> dropout. */
export class FFN extends Module {
  lin1: Linear;
  lin2: Linear;
  dropout: Dropout;
  private readonly _act: Activation;
  constructor(c: DistilBertConfig, file: string) {
    super();
    this.lin1 = new Linear(c.dim, c.hidden_dim, { std: c.initializer_range });
    this.lin2 = new Linear(c.hidden_dim, c.dim, { std: c.initializer_range });
    this.dropout = new Dropout(c.dropout);
    this._act = activation(c.activation, file, "activation");
  }
  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.lin2.forward(this._act(this.lin1.forward(x))));
  }
}

/** HF `TransformerBlock` (post-LN). */
export class TransformerBlock extends Module {
  attention: MultiHeadSelfAttention;
  sa_layer_norm: LayerNorm;
  ffn: FFN;
  output_layer_norm: LayerNorm;
  constructor(c: DistilBertConfig, file: string) {
    super();
    this.attention = new MultiHeadSelfAttention(c);
    this.sa_layer_norm = new LayerNorm(c.dim, { eps: 1e-12 });
    this.ffn = new FFN(c, file);
    this.output_layer_norm = new LayerNorm(c.dim, { eps: 1e-12 });
  }
  forward(x: Tensor, mask: Tensor | null): Tensor {
    const sa = this.sa_layer_norm.forward(add(this.attention.forward(x, mask), x));
    return this.output_layer_norm.forward(add(this.ffn.forward(sa), sa));
  }
}

export class Transformer extends Module {
  layer: TransformerBlock[];
  constructor(c: DistilBertConfig, file: string) {
    super();
    this.layer = Array.from({ length: c.n_layers }, () => new TransformerBlock(c, file));
  }
  forward(x: Tensor, mask: Tensor | null, states?: Tensor[]): Tensor {
    for (const l of this.layer) {
      x = l.forward(x, mask);
      states?.push(x);
    }
    return x;
  }
}

/** HF `DistilBertModel`. */
export class DistilBertModel extends Module {
  embeddings: DistilBertEmbeddings;
  transformer: Transformer;
  constructor(
    readonly cfg: DistilBertConfig,
    file = "config.json",
  ) {
    super();
    this.embeddings = new DistilBertEmbeddings(cfg);
    this.transformer = new Transformer(cfg, file);
  }
  forward(inp: TextInputs): EncoderOutput {
    const emb = this.embeddings.forward(inp.inputIds, inp.positionIds);
    const states = inp.outputHiddenStates ? [emb] : undefined;
    const h = this.transformer.forward(emb, paddingMask(inp.attentionMask), states);
    return { lastHiddenState: h, hiddenStates: states };
  }
}

/** `DistilBertModel` as a `PretrainedModel` (task "base"). */
export class DistilBertBase extends DistilBertModel implements PretrainedModel {
  readonly modelType = "distilbert";
  readonly task: Task = "base";
  readonly baseModelPrefix = "distilbert";
  readonly config: Record<string, unknown>;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    super(readDistilBertConfig({ raw, file }), file);
    this.config = modelConfig(raw, "distilbert", undefined, "base");
  }
}

/** What DistilBERT's two heads are built from. */
function distilBertHead(raw: Record<string, unknown>, file: string, task: EncoderHeadSpec["task"]) {
  const c = readDistilBertConfig({ raw, file });
  const spec: EncoderHeadSpec = { modelType: "distilbert", prefix: "distilbert", task, raw, file };
  return { c, spec, encoder: () => new DistilBertModel(c, file) };
}

/** HF `DistilBertForSequenceClassification`: first token -> pre_classifier -> ReLU -> dropout -> classifier. */
export class DistilBertForSequenceClassification extends EncoderHead {
  declare distilbert: DistilBertModel;
  pre_classifier: Linear;
  classifier: Linear;
  dropout: Dropout;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    const { c, spec, encoder } = distilBertHead(raw, file, "sequence-classification");
    super(spec, encoder);
    this.pre_classifier = new Linear(c.dim, c.dim, { std: c.initializer_range });
    this.classifier = new Linear(c.dim, this.numLabels, { std: c.initializer_range });
    this.dropout = new Dropout(c.seq_classif_dropout);
  }
  protected head(o: EncoderOutput): Tensor {
    const pooled = relu(this.pre_classifier.forward(select(o.lastHiddenState, 1, 0)));
    return this.classifier.forward(this.dropout.forward(pooled));
  }
}

/** HF `DistilBertForTokenClassification`: dropout -> classifier on every token. */
export class DistilBertForTokenClassification extends EncoderForClassification {
  declare distilbert: DistilBertModel;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    const { c, spec, encoder } = distilBertHead(raw, file, "token-classification");
    super(spec, encoder, { hiddenSize: c.dim, dropout: c.dropout, initializerRange: c.initializer_range });
  }
}

registerArchitecture({
  modelTypes: ["distilbert"],
  tasks: ["base", "sequence-classification", "token-classification"],
  basePrefix: "distilbert",
  create(config, task, file = "config.json", opts) {
    return buildModel(opts, () => {
      if (task === "sequence-classification") return new DistilBertForSequenceClassification(config, file);
      if (task === "token-classification") return new DistilBertForTokenClassification(config, file);
      if (task === "base") return new DistilBertBase(config, file);
      throw new ValueError(
        `${file}: distilbert has no '${task}' head (known: base, sequence-classification, token-classification)`,
      );
    });
  },
  ignoreKeys: IGNORE_POSITION_IDS,
  renameKey: renameLegacyNorm,
});
