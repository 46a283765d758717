/**
 * GPT-2 (`model_type: "gpt2"`), after HF `modeling_gpt2.py`: learned positions, pre-LayerNorm
 * blocks, fused `c_attn` Conv1D (weights stored (in, out)), gelu_new MLP, tied LM head.
 *
 * @example
 * ```ts
 * const model = await loadPretrained("./gpt2");                 // GPT2LMHeadModel
 * const { logits, loss } = model.forward({ inputIds, labels: inputIds });
 * ```
 */
import { ConfigError, type ConfigSource, getBool, getNumber, getString } from "../formats/hf-config.ts";
import { Embedding } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import { LayerNorm } from "../nn/norm.ts";
import { add, contiguous, dropout, reshape, scaledDotProductAttention, split, transpose } from "../ops/index.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { activation, buildModel, Conv1D, inputMask, type KVCache, positionsOf } from "./common.ts";
import { buildDecoderHead, DecoderBackbone, type DecoderInputs } from "./heads.ts";
import { type Architecture, registerArchitecture, type Task } from "./registry.ts";

/** `GPT2Config` fields we use, HF names and defaults. */
export interface GPT2Config {
  vocab_size: number; // 50257
  n_positions: number; // 1024
  n_embd: number; // 768
  n_layer: number; // 12
  n_head: number; // 12
  n_inner: number | null; // null -> 4 * n_embd
  activation_function: string; // "gelu_new"
  layer_norm_epsilon: number; // 1e-5
  initializer_range: number; // 0.02
  scale_attn_weights: boolean; // true
  scale_attn_by_inverse_layer_idx: boolean; // false
  pad_token_id: number | undefined;
  tie_word_embeddings: boolean; // true
  attn_pdrop: number; // 0.1, attention probabilities
  resid_pdrop: number; // 0.1, after each residual branch
  embd_pdrop: number; // 0.1, after the embeddings
}

export function readGPT2Config(src: ConfigSource): GPT2Config {
  const int = { min: 1, max: 1 << 24, integer: true };
  const c: GPT2Config = {
    vocab_size: getNumber(src, "vocab_size", 50257, int),
    n_positions: getNumber(src, "n_positions", 1024, int),
    n_embd: getNumber(src, "n_embd", 768, int),
    n_layer: getNumber(src, "n_layer", 12, { min: 1, max: 4096, integer: true }),
    n_head: getNumber(src, "n_head", 12, int),
    n_inner: src.raw.n_inner == null ? null : getNumber(src, "n_inner", undefined, int),
    activation_function: getString(src, "activation_function", "gelu_new"),
    layer_norm_epsilon: getNumber(src, "layer_norm_epsilon", 1e-5, { min: 0 }),
    initializer_range: getNumber(src, "initializer_range", 0.02, { min: 0 }),
    scale_attn_weights: getBool(src, "scale_attn_weights", true),
    scale_attn_by_inverse_layer_idx: getBool(src, "scale_attn_by_inverse_layer_idx", false),
    pad_token_id:
      src.raw.pad_token_id == null ? undefined : getNumber(src, "pad_token_id", undefined, { min: 0, integer: true }),
    tie_word_embeddings: getBool(src, "tie_word_embeddings", true),
    attn_pdrop: getNumber(src, "attn_pdrop", 0.1, { min: 0, max: 1 }),
    resid_pdrop: getNumber(src, "resid_pdrop", 0.1, { min: 0, max: 1 }),
    embd_pdrop: getNumber(src, "embd_pdrop", 0.1, { min: 0, max: 1 }),
  };
  if (c.n_embd % c.n_head !== 0)
    throw new ConfigError(
      src.file,
      "n_head",
      "inconsistent",
      `n_embd ${c.n_embd} is not divisible by n_head ${c.n_head}`,
    );
  // reorder_and_upcast_attn only matters in half precision; we compute in float32.
  return c;
}

class GPT2Attention extends Module {
  c_attn: Conv1D;
  c_proj: Conv1D;
  constructor(
    readonly cfg: GPT2Config,
    readonly layerIdx: number,
    std: number,
    projStd: number,
  ) {
    super();
    this.c_attn = new Conv1D(cfg.n_embd, 3 * cfg.n_embd, std);
    this.c_proj = new Conv1D(cfg.n_embd, cfg.n_embd, projStd);
  }
  forward(x: Tensor, mask: Tensor | null, cache: KVCache | null | undefined): Tensor {
    const [B, T, C] = x.shape;
    const H = this.cfg.n_head;
    const D = C / H;
    const heads = (t: Tensor) => transpose(reshape(t, [B, T, H, D]), 1, 2);
    let [q, k, v] = split(this.c_attn.forward(x), C, 2).map(heads);
    if (cache) [k, v] = cache.update(this.layerIdx, k, v);
    let scale = this.cfg.scale_attn_weights ? 1 / Math.sqrt(D) : 1;
    if (this.cfg.scale_attn_by_inverse_layer_idx) scale /= this.layerIdx + 1;
    const y = scaledDotProductAttention(q, k, v, { causal: true, mask, scale, dropout: this.cfg.attn_pdrop, training: this.training });
    return dropout(this.c_proj.forward(reshape(contiguous(transpose(y, 1, 2)), [B, T, C])), this.cfg.resid_pdrop, this.training);
  }
}

class GPT2MLP extends Module {
  c_fc: Conv1D;
  c_proj: Conv1D;
  private readonly _act: (x: Tensor) => Tensor;
  private readonly _pdrop: number;
  constructor(cfg: GPT2Config, std: number, projStd: number) {
    super();
    this._pdrop = cfg.resid_pdrop;
    const inner = cfg.n_inner ?? 4 * cfg.n_embd;
    this.c_fc = new Conv1D(cfg.n_embd, inner, std);
    this.c_proj = new Conv1D(inner, cfg.n_embd, projStd);
    this._act = activation(cfg.activation_function, "config.json", "activation_function");
  }
  forward(x: Tensor): Tensor {
    return dropout(this.c_proj.forward(this._act(this.c_fc.forward(x))), this._pdrop, this.training);
  }
}

class GPT2Block extends Module {
  ln_1: LayerNorm;
  attn: GPT2Attention;
  ln_2: LayerNorm;
  mlp: GPT2MLP;
  constructor(cfg: GPT2Config, i: number, std: number, projStd: number) {
    super();
    this.ln_1 = new LayerNorm(cfg.n_embd, { eps: cfg.layer_norm_epsilon });
    this.attn = new GPT2Attention(cfg, i, std, projStd);
    this.ln_2 = new LayerNorm(cfg.n_embd, { eps: cfg.layer_norm_epsilon });
    this.mlp = new GPT2MLP(cfg, std, projStd);
  }
  forward(x: Tensor, mask: Tensor | null, cache: KVCache | null | undefined): Tensor {
    const h = add(x, this.attn.forward(this.ln_1.forward(x), mask, cache));
    return add(h, this.mlp.forward(this.ln_2.forward(h)));
  }
}

/** `GPT2Model`: token + position embeddings, blocks, final LayerNorm. */
export class GPT2Model extends DecoderBackbone {
  wte: Embedding;
  wpe: Embedding;
  h: GPT2Block[];
  ln_f: LayerNorm;
  readonly numLayers: number;
  constructor(readonly cfg: GPT2Config) {
    super();
    const std = cfg.initializer_range;
    // HF scales the residual projections' init by 1/sqrt(2 * n_layer).
    const projStd = std / Math.sqrt(2 * cfg.n_layer);
    this.wte = new Embedding(cfg.vocab_size, cfg.n_embd, { std });
    this.wpe = new Embedding(cfg.n_positions, cfg.n_embd, { std });
    this.h = Array.from({ length: cfg.n_layer }, (_, i) => new GPT2Block(cfg, i, std, projStd));
    this.ln_f = new LayerNorm(cfg.n_embd, { eps: cfg.layer_norm_epsilon });
    this.numLayers = cfg.n_layer;
  }
  inputEmbeddings(): Embedding {
    return this.wte;
  }
  run(inputs: DecoderInputs): { hidden: Tensor; hiddenStates?: Tensor[] } {
    const [B, T] = inputs.inputIds.shape;
    const cache = inputs.pastKeyValues;
    const past = cache?.length ?? 0;
    const pos = positionsOf(inputs.positionIds, B, T, past);
    if (Math.max(...pos.flat()) >= this.cfg.n_positions) {
      throw new ConfigError(
        "config.json",
        "n_positions",
        "bad_value",
        `sequence needs position ${Math.max(...pos.flat())} but the model has ${this.cfg.n_positions} positions`,
      );
    }
    const posIds = tensor(Int32Array.from(pos.flat()), { shape: [B, T] });
    let x = dropout(add(this.wte.forward(inputs.inputIds), this.wpe.forward(posIds)), this.cfg.embd_pdrop, this.training);
    const mask = inputMask(inputs, past);
    const states: Tensor[] = [];
    for (const block of this.h) {
      if (inputs.outputHiddenStates) states.push(x);
      x = block.forward(x, mask, cache);
    }
    x = this.ln_f.forward(x);
    if (inputs.outputHiddenStates) states.push(x);
    return { hidden: x, ...(inputs.outputHiddenStates ? { hiddenStates: states } : {}) };
  }
}

export const gpt2: Architecture = {
  modelTypes: ["gpt2"],
  tasks: ["causal-lm", "sequence-classification"],
  create(raw: Record<string, unknown>, task: Task, file = "config.json", opts: { skipInit?: boolean } = {}) {
    const src = { raw, file };
    const cfg = readGPT2Config(src);
    return buildModel(opts, () =>
      buildDecoderHead(
        task,
        {
          modelType: "gpt2",
          className: "GPT2LMHeadModel",
          prefix: "transformer",
          hiddenSize: cfg.n_embd,
          vocabSize: cfg.vocab_size,
          tie: cfg.tie_word_embeddings,
          padTokenId: cfg.pad_token_id,
          initializerRange: cfg.initializer_range,
          raw,
        },
        new GPT2Model(cfg),
        src,
      ),
    );
  },
  basePrefix: "transformer",
  // Old checkpoints carry the causal-mask buffers; HF ignores them too.
  ignoreKeys: [/\.attn\.(bias|masked_bias)$/],
};

registerArchitecture(gpt2);
