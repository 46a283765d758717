/**
 * RoBERTa (HF `modeling_roberta.py`): BERT's encoder with padding-offset position ids (positions
 * count real tokens from `pad_token_id + 1`; padding tokens sit at `pad_token_id`), a position
 * embedding whose padding row gets no gradient, and its own heads: `RobertaForSequenceClassification`
 * (`classifier.dense` -> tanh -> `classifier.out_proj` on the first token, no pooler) and
 * `RobertaForTokenClassification`. Also registered as `xlm-roberta` and `camembert`, which share
 * the code (and the `roberta.` prefix) in transformers.
 *
 * @example
 * const model = getArchitecture("roberta").create(config, "sequence-classification");
 * const { logits } = model.forward({ inputIds, attentionMask });
 */
import type { ConfigSource } from "../formats/hf-config.ts";
import { Dropout, Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import { select, tanh } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { type BertConfig, BertEmbeddings, BertModel, readBertConfig } from "./bert.ts";
import { buildModel } from "./common.ts";
import {
  EncoderForClassification,
  EncoderHead,
  type EncoderHeadSpec,
  type EncoderOutput,
  IGNORE_POSITION_IDS,
  modelConfig,
  renameLegacyNorm,
} from "./encoder-common.ts";
import { type PretrainedModel, registerArchitecture, type Task } from "./registry.ts";

/** `RobertaConfig` differs from BERT's only in defaults: vocab 50265, pad id 1. */
export function readRobertaConfig(src: ConfigSource): BertConfig {
  return readBertConfig(src, { vocab_size: 50265, pad_token_id: 1 });
}

/**
 * HF `create_position_ids_from_input_ids`: for each row, the running count of non-padding tokens
 * (plus `past`), offset by `paddingIdx`; padding tokens get `paddingIdx` itself.
 * @example createPositionIdsFromInputIds(ids([[0, 5, 6, 1, 1]]), 1) // [[2, 3, 4, 1, 1]]
 */
export function createPositionIdsFromInputIds(inputIds: Tensor, paddingIdx: number, past = 0): Tensor {
  const [B, T] = inputIds.shape;
  const v = inputIds.toFloat64Array();
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let n = 0;
    for (let t = 0; t < T; t++) {
      const real = v[b * T + t] !== paddingIdx;
      if (real) n++;
      out[b * T + t] = (real ? n + past : 0) + paddingIdx;
    }
  }
  return tensor(out, { shape: [B, T] });
}

/** `BertEmbeddings` with RoBERTa's position ids; the position padding row gets no gradient. */
export class RobertaEmbeddings extends BertEmbeddings {
  constructor(readonly c: BertConfig) {
    super(c, c.pad_token_id);
  }
  override forward(inputIds: Tensor, tokenTypeIds?: Tensor | null, positionIds?: Tensor | null): Tensor {
    const pos = positionIds ?? createPositionIdsFromInputIds(inputIds, this.c.pad_token_id);
    const maxPos = this.position_embeddings.weight.shape[0];
    const top = pos.toFloat64Array().reduce((a, b) => Math.max(a, b), 0);
    if (top >= maxPos)
      throw new ValueError(
        `position id ${top} (sequence too long) exceeds max_position_embeddings ${maxPos}; RoBERTa positions start at pad_token_id + 1`,
      );
    return super.forward(inputIds, tokenTypeIds, pos);
  }
}

/** HF `RobertaModel`: `BertModel` with RoBERTa's embeddings. */
export class RobertaModel extends BertModel {
  declare embeddings: RobertaEmbeddings;
  constructor(cfg: BertConfig, file = "config.json", addPoolingLayer = true) {
    super(cfg, file, addPoolingLayer, new RobertaEmbeddings(cfg));
  }
}

/** HF `RobertaClassificationHead`: first token -> dropout -> dense -> tanh -> dropout -> out_proj. */
export class RobertaClassificationHead extends Module {
  dense: Linear;
  dropout: Dropout;
  out_proj: Linear;
  constructor(c: BertConfig, numLabels: number) {
    super();
    this.dense = new Linear(c.hidden_size, c.hidden_size, { std: c.initializer_range });
    this.dropout = new Dropout(c.classifier_dropout ?? c.hidden_dropout_prob);
    this.out_proj = new Linear(c.hidden_size, numLabels, { std: c.initializer_range });
  }
  forward(features: Tensor): Tensor {
    const x = tanh(this.dense.forward(this.dropout.forward(select(features, 1, 0))));
    return this.out_proj.forward(this.dropout.forward(x));
  }
}

/** `RobertaModel` as a `PretrainedModel` (task "base"). */
export class RobertaBase extends RobertaModel implements PretrainedModel {
  readonly task: Task = "base";
  readonly baseModelPrefix = "roberta";
  readonly config: Record<string, unknown>;
  constructor(
    raw: Record<string, unknown>,
    file = "config.json",
    readonly modelType = "roberta",
  ) {
    super(readRobertaConfig({ raw, file }), file);
    this.config = modelConfig(raw, modelType, undefined, "base");
  }
}

/** The head spec shared by RoBERTa's two heads (the encoder has no pooler in either). */
function robertaHead(raw: Record<string, unknown>, file: string, modelType: string, task: EncoderHeadSpec["task"]) {
  const c = readRobertaConfig({ raw, file });
  const spec: EncoderHeadSpec = { modelType, prefix: "roberta", task, raw, file };
  return { c, spec, encoder: () => new RobertaModel(c, file, false) };
}

/** HF `RobertaForSequenceClassification` (no pooler; the head has its own dense layer). */
export class RobertaForSequenceClassification extends EncoderHead {
  declare roberta: RobertaModel;
  classifier: RobertaClassificationHead;
  constructor(raw: Record<string, unknown>, file = "config.json", modelType = "roberta") {
    const { c, spec, encoder } = robertaHead(raw, file, modelType, "sequence-classification");
    super(spec, encoder);
    this.classifier = new RobertaClassificationHead(c, this.numLabels);
  }
  protected head(o: EncoderOutput): Tensor {
    return this.classifier.forward(o.lastHiddenState);
  }
}

/** HF `RobertaForTokenClassification`: dropout -> classifier on every token. */
export class RobertaForTokenClassification extends EncoderForClassification {
  declare roberta: RobertaModel;
  constructor(raw: Record<string, unknown>, file = "config.json", modelType = "roberta") {
    const { c, spec, encoder } = robertaHead(raw, file, modelType, "token-classification");
    const dropout = c.classifier_dropout ?? c.hidden_dropout_prob;
    super(spec, encoder, { hiddenSize: c.hidden_size, dropout, initializerRange: c.initializer_range });
  }
}

for (const modelType of ["roberta", "xlm-roberta", "camembert"]) {
  registerArchitecture({
    modelTypes: [modelType],
    tasks: ["base", "sequence-classification", "token-classification"],
    basePrefix: "roberta",
    create(config, task, file = "config.json", opts) {
      return buildModel(opts, () => {
        if (task === "sequence-classification") return new RobertaForSequenceClassification(config, file, modelType);
        if (task === "token-classification") return new RobertaForTokenClassification(config, file, modelType);
        if (task === "base") return new RobertaBase(config, file, modelType);
        throw new ValueError(
          `${file}: ${modelType} has no '${task}' head (known: base, sequence-classification, token-classification)`,
        );
      });
    },
    ignoreKeys: IGNORE_POSITION_IDS,
    renameKey: renameLegacyNorm,
  });
}
