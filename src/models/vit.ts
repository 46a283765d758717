/**
 * ViT (HF `modeling_vit.py`): `ViTModel` and `ViTForImageClassification`. Patches of
 * `patch_size` are embedded by a strided conv (`patch_embeddings.projection`), a learned `cls_token`
 * is prepended and `position_embeddings` added; pre-LN encoder blocks (`layernorm_before`,
 * `attention.attention.query`, `attention.output.dense`, `layernorm_after`, `intermediate.dense`,
 * `output.dense`); a final `layernorm`; the classifier reads the CLS token. HF names throughout
 * (`vit.encoder.layer.0.attention.attention.query.weight`); the loss follows HF's `problem_type`.
 *
 * @example
 * const model = getArchitecture("vit").create(config, "image-classification");
 * const { logits } = model.forward({ pixelValues });   // (N, 3, image_size, image_size)
 */
import { type ConfigSource, getBool, getNumber, getString } from "../formats/hf-config.ts";
import { normal_ } from "../nn/init.ts";
import { Conv2d, Dropout, Linear, param } from "../nn/layers.ts";
import { Module, type Parameter } from "../nn/module.ts";
import { LayerNorm } from "../nn/norm.ts";
import { add, cat, expand, flatten, scaledDotProductAttention, select, transpose } from "../ops/index.ts";
import { fmtShape, ShapeError, ValueError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { BertPooler } from "./bert.ts";
import { type Activation, activation, buildModel } from "./common.ts";
import {
  type EncoderOutput,
  mergeHeads,
  modelConfig,
  readHeadConfig,
  sequenceClassificationLoss,
  splitHeads,
} from "./encoder-common.ts";
import { type PretrainedModel, registerArchitecture, type Task } from "./registry.ts";
import { ImageClassifier } from "./vision-common.ts";

/** `ViTConfig` fields, with HF's defaults. */
export interface ViTConfig {
  hidden_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  intermediate_size: number;
  hidden_act: string;
  hidden_dropout_prob: number;
  attention_probs_dropout_prob: number;
  initializer_range: number;
  layer_norm_eps: number;
  image_size: number;
  patch_size: number;
  num_channels: number;
  qkv_bias: boolean;
}

const INT = { integer: true, min: 1, max: 1 << 24 };
const PROB = { min: 0, max: 1 };

export function readViTConfig(src: ConfigSource): ViTConfig {
  const c: ViTConfig = {
    hidden_size: getNumber(src, "hidden_size", 768, INT),
    num_hidden_layers: getNumber(src, "num_hidden_layers", 12, INT),
    num_attention_heads: getNumber(src, "num_attention_heads", 12, INT),
    intermediate_size: getNumber(src, "intermediate_size", 3072, INT),
    hidden_act: getString(src, "hidden_act", "gelu"),
    hidden_dropout_prob: getNumber(src, "hidden_dropout_prob", 0, PROB),
    attention_probs_dropout_prob: getNumber(src, "attention_probs_dropout_prob", 0, PROB),
    initializer_range: getNumber(src, "initializer_range", 0.02, { min: 0 }),
    layer_norm_eps: getNumber(src, "layer_norm_eps", 1e-12, { min: 0 }),
    image_size: getNumber(src, "image_size", 224, INT),
    patch_size: getNumber(src, "patch_size", 16, INT),
    num_channels: getNumber(src, "num_channels", 3, INT),
    qkv_bias: getBool(src, "qkv_bias", true),
  };
  if (c.hidden_size % c.num_attention_heads !== 0) {
    throw new ValueError(
      `${src.file}: hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`,
    );
  }
  if (c.image_size % c.patch_size !== 0)
    throw new ValueError(`${src.file}: image_size ${c.image_size} is not a multiple of patch_size ${c.patch_size}`);
  activation(c.hidden_act, src.file);
  return c;
}

/** HF `ViTPatchEmbeddings`: conv with kernel = stride = patch_size, then (B, num_patches, hidden). */
export class ViTPatchEmbeddings extends Module {
  projection: Conv2d;
  constructor(readonly c: ViTConfig) {
    super();
    const P = c.patch_size;
    this.projection = new Conv2d(c.num_channels, c.hidden_size, P, { stride: P, std: c.initializer_range });
  }
  forward(pixelValues: Tensor): Tensor {
    const { num_channels: C, image_size: S } = this.c;
    const [, ch, h, w] = pixelValues.shape;
    if (pixelValues.ndim !== 4 || ch !== C)
      throw new ShapeError(`ViT: expected pixel values (N, ${C}, H, W), got ${fmtShape(pixelValues.shape)}`);
    if (h !== S || w !== S) throw new ShapeError(`ViT: input image size (${h}*${w}) doesn't match model (${S}*${S})`);
    return transpose(flatten(this.projection.forward(pixelValues), 2), 1, 2);
  }
}

/** HF `ViTEmbeddings`: [CLS; patches] + position embeddings, dropout. */
export class ViTEmbeddings extends Module {
  cls_token: Parameter;
  position_embeddings: Parameter;
  patch_embeddings: ViTPatchEmbeddings;
  dropout: Dropout;
  constructor(c: ViTConfig) {
    super();
    const n = (c.image_size / c.patch_size) ** 2;
    this.cls_token = normal_(param([1, 1, c.hidden_size]), 0, c.initializer_range) as Parameter;
    this.position_embeddings = normal_(param([1, n + 1, c.hidden_size]), 0, c.initializer_range) as Parameter;
    this.patch_embeddings = new ViTPatchEmbeddings(c);
    this.dropout = new Dropout(c.hidden_dropout_prob);
  }
  forward(pixelValues: Tensor): Tensor {
    const patches = this.patch_embeddings.forward(pixelValues);
    const cls = expand(this.cls_token, [patches.shape[0], 1, patches.shape[2]]);
    return this.dropout.forward(add(cat([cls, patches], 1), this.position_embeddings));
  }
}

/** HF `ViTSelfAttention` (query/key/value with `qkv_bias`). */
export class ViTSelfAttention extends Module {
  query: Linear;
  key: Linear;
  value: Linear;
  constructor(readonly c: ViTConfig) {
    super();
    const o = { std: c.initializer_range, bias: c.qkv_bias };
    this.query = new Linear(c.hidden_size, c.hidden_size, o);
    this.key = new Linear(c.hidden_size, c.hidden_size, o);
    this.value = new Linear(c.hidden_size, c.hidden_size, o);
  }
  forward(x: Tensor): Tensor {
    const H = this.c.num_attention_heads;
    const [q, k, v] = [this.query, this.key, this.value].map((l) => splitHeads(l.forward(x), H));
    return mergeHeads(
      scaledDotProductAttention(q, k, v, { dropout: this.c.attention_probs_dropout_prob, training: this.training }),
    );
  }
}

/** dense -> dropout (HF `ViTSelfOutput`; `ViTOutput` adds the residual in `ViTLayer`). */
export class ViTDenseDropout extends Module {
  dense: Linear;
  dropout: Dropout;
  constructor(inDim: number, outDim: number, c: ViTConfig) {
    super();
    this.dense = new Linear(inDim, outDim, { std: c.initializer_range });
    this.dropout = new Dropout(c.hidden_dropout_prob);
  }
  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.dense.forward(x));
  }
}

export class ViTAttention extends Module {
  attention: ViTSelfAttention;
  output: ViTDenseDropout;
  constructor(c: ViTConfig) {
    super();
    this.attention = new ViTSelfAttention(c);
    this.output = new ViTDenseDropout(c.hidden_size, c.hidden_size, c);
  }
  forward(x: Tensor): Tensor {
    return this.output.forward(this.attention.forward(x));
  }
}

export class ViTIntermediate extends Module {
  dense: Linear;
  private readonly _act: Activation;
  constructor(c: ViTConfig, file: string) {
    super();
    this.dense = new Linear(c.hidden_size, c.intermediate_size, { std: c.initializer_range });
    this._act = activation(c.hidden_act, file);
  }
  forward(x: Tensor): Tensor {
    return this._act(this.dense.forward(x));
  }
}

/** `nn.LayerNorm` built with its default affine parameters, typed so (weight and bias not null). */
type AffineLayerNorm = LayerNorm & { weight: Parameter; bias: Parameter };

/** Pre-LN block: x + attn(LN(x)), then h + mlp(LN(h)). */
export class ViTLayer extends Module {
  attention: ViTAttention;
  intermediate: ViTIntermediate;
  output: ViTDenseDropout;
  layernorm_before: AffineLayerNorm;
  layernorm_after: AffineLayerNorm;
  constructor(c: ViTConfig, file: string) {
    super();
    this.attention = new ViTAttention(c);
    this.intermediate = new ViTIntermediate(c, file);
    this.output = new ViTDenseDropout(c.intermediate_size, c.hidden_size, c);
    this.layernorm_before = new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }) as AffineLayerNorm;
    this.layernorm_after = new LayerNorm(c.hidden_size, { eps: c.layer_norm_eps }) as AffineLayerNorm;
  }
  forward(x: Tensor): Tensor {
    const h = add(this.attention.forward(this.layernorm_before.forward(x)), x);
    return add(this.output.forward(this.intermediate.forward(this.layernorm_after.forward(h))), h);
  }
}

export class ViTEncoder extends Module {
  layer: ViTLayer[];
  constructor(c: ViTConfig, file: string) {
    super();
    this.layer = Array.from({ length: c.num_hidden_layers }, () => new ViTLayer(c, file));
  }
}

/** tanh(dense(CLS)): HF `ViTPooler`, the same layer as `BertPooler`. */
export const ViTPooler = BertPooler;

/** HF `ViTModel`: embeddings -> encoder -> final layernorm (-> pooler). */
export class ViTModel extends Module {
  embeddings: ViTEmbeddings;
  encoder: ViTEncoder;
  layernorm: LayerNorm;
  pooler: BertPooler | null;
  constructor(
    readonly cfg: ViTConfig,
    file = "config.json",
    addPoolingLayer = true,
  ) {
    super();
    this.embeddings = new ViTEmbeddings(cfg);
    this.encoder = new ViTEncoder(cfg, file);
    this.layernorm = new LayerNorm(cfg.hidden_size, { eps: cfg.layer_norm_eps });
    this.pooler = addPoolingLayer ? new ViTPooler(cfg) : null;
  }
  /** `hiddenStates` as HF: the embeddings, then each layer's output (before the final layernorm). */
  forward(pixelValues: Tensor, outputHiddenStates = false): EncoderOutput {
    let x = this.embeddings.forward(pixelValues);
    const states = outputHiddenStates ? [x] : undefined;
    for (const l of this.encoder.layer) {
      x = l.forward(x);
      states?.push(x);
    }
    const h = this.layernorm.forward(x);
    return { lastHiddenState: h, poolerOutput: this.pooler?.forward(h), hiddenStates: states };
  }
}

/** `ViTModel` as a `PretrainedModel` (task "base"). */
export class ViTBase extends ViTModel implements PretrainedModel {
  readonly modelType = "vit";
  readonly task: Task = "base";
  readonly config: Record<string, unknown>;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    super(readViTConfig({ raw, file }), file);
    this.config = modelConfig(raw, "vit", undefined, "base");
  }
}

/** HF `ViTForImageClassification`: classifier on the CLS token of the final layernorm (no pooler). */
export class ViTForImageClassification extends ImageClassifier {
  readonly modelType = "vit";
  readonly headPrefix = "classifier";
  readonly numFeatures: number;
  readonly config: Record<string, unknown>;
  vit: ViTModel;
  classifier: Linear;
  constructor(raw: Record<string, unknown>, file = "config.json") {
    super();
    const c = readViTConfig({ raw, file });
    const head = readHeadConfig({ raw, file });
    this.config = modelConfig(raw, "vit", head.id2label, "image-classification");
    this.vit = new ViTModel(c, file, false);
    this.numFeatures = c.hidden_size;
    this.classifier = new Linear(c.hidden_size, head.numLabels, { std: c.initializer_range });
  }
  /** The CLS token after the final layernorm: all the classifier sees. */
  pooledFeatures(pixelValues: Tensor): Tensor {
    return select(this.vit.forward(pixelValues).lastHiddenState, 1, 0);
  }
  protected headLayer(): Linear {
    return this.classifier;
  }
  protected newHead(numClasses: number): void {
    this.classifier = new Linear(this.numFeatures, numClasses, { std: this.vit.cfg.initializer_range });
  }
  /** HF's `problem_type` losses (regression / single-label / multi-label). */
  protected override loss(logits: Tensor, labels: Tensor): Tensor {
    return sequenceClassificationLoss(logits, labels, this.config, this.numClasses);
  }
}

registerArchitecture({
  modelTypes: ["vit"],
  tasks: ["image-classification", "base"],
  basePrefix: "vit",
  create(config, task, file = "config.json", opts) {
    return buildModel(opts, () => {
      if (task === "image-classification") return new ViTForImageClassification(config, file);
      if (task === "base") return new ViTBase(config, file);
      throw new ValueError(`${file}: vit has no '${task}' head (known: image-classification, base)`);
    });
  },
});
