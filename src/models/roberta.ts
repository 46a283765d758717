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
import {
  type BertConfig,
  BertEmbeddings,
  BertEncoder,
  BertPooler,
  modelConfig,
  readBertConfig,
  runEncoder,
} from "./bert.ts";
import { buildModel } from "./common.ts";
import {
  type EncoderOutput,
  IGNORE_POSITION_IDS,
  type ModelOutput,
  readHeadConfig,
  renameLegacyNorm,
  sequenceClassificationLoss,
  type TextInputs,
  tokenClassificationLoss,
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

/** HF `RobertaModel`. */
export class RobertaModel extends Module {
  embeddings: RobertaEmbeddings;
  encoder: BertEncoder;
  pooler: BertPooler | null;
  constructor(
    readonly cfg: BertConfig,
    file = "config.json",
    addPoolingLayer = true,
  ) {
    super();
    this.embeddings = new RobertaEmbeddings(cfg);
    this.encoder = new BertEncoder(cfg, file);
    this.pooler = addPoolingLayer ? new BertPooler(cfg) : null;
  }
  forward(inp: TextInputs): EncoderOutput {
    return runEncoder(
      this.embeddings.forward(inp.inputIds, inp.tokenTypeIds, inp.positionIds),
      this.encoder,
      this.pooler,
      inp,
    );
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
    this.config = modelConfig(raw, modelType);
  }
}

/** HF `RobertaForSequenceClassification` (no pooler; the head has its own dense layer). */
export class RobertaForSequenceClassification extends Module implements PretrainedModel {
  readonly task: Task = "sequence-classification";
  readonly baseModelPrefix = "roberta";
  readonly config: Record<string, unknown>;
  readonly numLabels: number;
  roberta: RobertaModel;
  classifier: RobertaClassificationHead;
  constructor(
    raw: Record<string, unknown>,
    file = "config.json",
    readonly modelType = "roberta",
  ) {
    super();
    const c = readRobertaConfig({ raw, file });
    const head = readHeadConfig({ raw, file });
    this.numLabels = head.numLabels;
    this.config = modelConfig(raw, modelType, head.id2label);
    this.roberta = new RobertaModel(c, file, false);
    this.classifier = new RobertaClassificationHead(c, head.numLabels);
  }
  forward(inp: TextInputs): ModelOutput {
    const o = this.roberta.forward(inp);
    const logits = this.classifier.forward(o.lastHiddenState);
    const loss = inp.labels ? sequenceClassificationLoss(logits, inp.labels, this.config, this.numLabels) : undefined;
    return { logits, loss, hiddenStates: o.hiddenStates };
  }
}

/** HF `RobertaForTokenClassification`: dropout -> classifier on every token. */
export class RobertaForTokenClassification extends Module implements PretrainedModel {
  readonly task: Task = "token-classification";
  readonly baseModelPrefix = "roberta";
  readonly config: Record<string, unknown>;
  readonly numLabels: number;
  roberta: RobertaModel;
  dropout: Dropout;
  classifier: Linear;
  constructor(
    raw: Record<string, unknown>,
    file = "config.json",
    readonly modelType = "roberta",
  ) {
    super();
    const c = readRobertaConfig({ raw, file });
    const head = readHeadConfig({ raw, file });
    this.numLabels = head.numLabels;
    this.config = modelConfig(raw, modelType, head.id2label);
    this.roberta = new RobertaModel(c, file, false);
    this.dropout = new Dropout(c.classifier_dropout ?? c.hidden_dropout_prob);
    this.classifier = new Linear(c.hidden_size, head.numLabels, { std: c.initializer_range });
  }
  forward(inp: TextInputs): ModelOutput {
    const o = this.roberta.forward(inp);
    const logits = this.classifier.forward(this.dropout.forward(o.lastHiddenState));
    const loss = inp.labels ? tokenClassificationLoss(logits, inp.labels, this.numLabels) : undefined;
    return { logits, loss, hiddenStates: o.hiddenStates };
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
