/**
 * Llama (`model_type: "llama"`), after HF `modeling_llama.py`: RMSNorm pre-norm blocks, rotary
 * positions (`rope_theta`, `rope_scaling`: linear, dynamic, llama3), grouped-query attention,
 * SwiGLU MLP, optional `attention_bias` / `mlp_bias`, tied or untied `lm_head`. SmolLM and
 * TinyLlama are Llamas. Qwen2 and Mistral reuse this file through {@link LlamaFamily}.
 *
 * @example
 * ```ts
 * const model = await loadPretrained("./SmolLM2-135M");      // LlamaForCausalLM
 * const ids = generate(model, promptIds, { maxNewTokens: 20 });
 * ```
 */
import { ConfigError, type ConfigSource, getBool, getNumber, getString } from "../formats/hf-config.ts";
import { Embedding, Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import { RMSNorm } from "../nn/norm.ts";
import {
  add,
  applyRotary,
  contiguous,
  mul,
  reshape,
  rotaryCosSin,
  scaledDotProductAttention,
  transpose,
} from "../ops/index.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import {
  activation,
  buildModel,
  type KVCache,
  MASK_MIN,
  paddingIdx,
  inputMask,
  positionsOf,
  type RopeConfig,
  readRope,
  ropeInvFreq,
} from "./common.ts";
import { buildDecoderHead, DecoderBackbone, type DecoderInputs } from "./heads.ts";
import { type Architecture, type CreateOptions, registerArchitecture, type Task } from "./registry.ts";

/** `LlamaConfig` fields (HF names; Qwen2/Mistral add their own defaults). */
export interface LlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  hidden_act: string;
  max_position_embeddings: number;
  initializer_range: number;
  rms_norm_eps: number;
  pad_token_id: number | undefined;
  tie_word_embeddings: boolean;
  rope: RopeConfig;
  attention_bias: boolean;
  mlp_bias: boolean;
  /** Dropout on the attention probabilities in train() mode (HF default 0). */
  attention_dropout: number;
  /** Qwen2 puts biases on q/k/v but not o_proj. */
  qkv_bias: boolean;
  /** Mistral: keys older than this many positions are masked; null = full causal. */
  sliding_window: number | null;
}

/** How an architecture of the Llama family differs: defaults and bias layout. */
export interface LlamaFamily {
  modelType: string;
  /** HF class prefix ("Llama", "Qwen2", "Mistral"). */
  classPrefix: string;
  defaults: {
    vocab_size: number;
    hidden_size: number;
    intermediate_size: number;
    num_hidden_layers: number;
    num_attention_heads: number;
    num_key_value_heads?: number;
    max_position_embeddings: number;
    rms_norm_eps: number;
  };
  /** Bias on q/k/v regardless of attention_bias (Qwen2). */
  qkvBias?: boolean;
  /** Reads the sliding window (Mistral, Qwen2); absent = none. */
  slidingWindow?: (src: ConfigSource) => number | null;
}

export function readLlamaConfig(src: ConfigSource, fam: LlamaFamily): LlamaConfig {
  const d = fam.defaults;
  const int = { min: 1, max: 1 << 24, integer: true };
  const hidden = getNumber(src, "hidden_size", d.hidden_size, int);
  const heads = getNumber(src, "num_attention_heads", d.num_attention_heads, int);
  const kv = getNumber(src, "num_key_value_heads", d.num_key_value_heads ?? heads, int);
  if (heads % kv !== 0)
    throw new ConfigError(
      src.file,
      "num_key_value_heads",
      "inconsistent",
      `num_attention_heads ${heads} is not a multiple of num_key_value_heads ${kv}`,
    );
  if (src.raw.head_dim == null && hidden % heads !== 0)
    throw new ConfigError(
      src.file,
      "num_attention_heads",
      "inconsistent",
      `hidden_size ${hidden} is not divisible by ${heads} heads`,
    );
  const headDim = getNumber(src, "head_dim", Math.floor(hidden / heads), int);
  if (headDim % 2 !== 0)
    throw new ConfigError(src.file, "head_dim", "bad_value", `rotary embeddings need an even head_dim, got ${headDim}`);
  const maxPos = getNumber(src, "max_position_embeddings", d.max_position_embeddings, int);
  const attnBias = getBool(src, "attention_bias", false);
  return {
    vocab_size: getNumber(src, "vocab_size", d.vocab_size, int),
    hidden_size: hidden,
    intermediate_size: getNumber(src, "intermediate_size", d.intermediate_size, int),
    num_hidden_layers: getNumber(src, "num_hidden_layers", d.num_hidden_layers, { min: 1, max: 4096, integer: true }),
    num_attention_heads: heads,
    num_key_value_heads: kv,
    head_dim: headDim,
    hidden_act: getString(src, "hidden_act", "silu"),
    max_position_embeddings: maxPos,
    initializer_range: getNumber(src, "initializer_range", 0.02, { min: 0 }),
    rms_norm_eps: getNumber(src, "rms_norm_eps", d.rms_norm_eps, { min: 0 }),
    pad_token_id:
      src.raw.pad_token_id == null ? undefined : getNumber(src, "pad_token_id", undefined, { min: 0, integer: true }),
    tie_word_embeddings: getBool(src, "tie_word_embeddings", false),
    rope: readRope(src, headDim, 10000, maxPos),
    attention_bias: attnBias,
    mlp_bias: getBool(src, "mlp_bias", false),
    attention_dropout: getNumber(src, "attention_dropout", 0, { min: 0, max: 1 }),
    qkv_bias: fam.qkvBias ?? attnBias,
    sliding_window: fam.slidingWindow?.(src) ?? null,
  };
}

class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  constructor(
    readonly cfg: LlamaConfig,
    readonly layerIdx: number,
    std: number,
  ) {
    super();
    const { hidden_size: C, num_attention_heads: H, num_key_value_heads: Hkv, head_dim: D } = cfg;
    const qkv = { bias: cfg.qkv_bias, std };
    this.q_proj = new Linear(C, H * D, qkv);
    this.k_proj = new Linear(C, Hkv * D, qkv);
    this.v_proj = new Linear(C, Hkv * D, qkv);
    this.o_proj = new Linear(H * D, C, { bias: cfg.attention_bias, std });
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | null, cache: KVCache | null | undefined): Tensor {
    const [B, T] = x.shape;
    const { num_attention_heads: H, num_key_value_heads: Hkv, head_dim: D } = this.cfg;
    const heads = (t: Tensor, n: number) => transpose(reshape(t, [B, T, n, D]), 1, 2);
    const q = applyRotary(heads(this.q_proj.forward(x), H), cos, sin);
    let k = applyRotary(heads(this.k_proj.forward(x), Hkv), cos, sin);
    let v = heads(this.v_proj.forward(x), Hkv);
    if (cache) [k, v] = cache.update(this.layerIdx, k, v);
    const y = scaledDotProductAttention(q, k, v, { causal: true, mask, dropout: this.cfg.attention_dropout, training: this.training });
    return this.o_proj.forward(reshape(contiguous(transpose(y, 1, 2)), [B, T, H * D]));
  }
}

class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;
  private readonly _act: (x: Tensor) => Tensor;
  constructor(cfg: LlamaConfig, std: number) {
    super();
    const o = { bias: cfg.mlp_bias, std };
    this.gate_proj = new Linear(cfg.hidden_size, cfg.intermediate_size, o);
    this.up_proj = new Linear(cfg.hidden_size, cfg.intermediate_size, o);
    this.down_proj = new Linear(cfg.intermediate_size, cfg.hidden_size, o);
    this._act = activation(cfg.hidden_act);
  }
  forward(x: Tensor): Tensor {
    return this.down_proj.forward(mul(this._act(this.gate_proj.forward(x)), this.up_proj.forward(x)));
  }
}

class LlamaDecoderLayer extends Module {
  self_attn: LlamaAttention;
  mlp: LlamaMLP;
  input_layernorm: RMSNorm;
  post_attention_layernorm: RMSNorm;
  constructor(cfg: LlamaConfig, i: number, std: number) {
    super();
    this.self_attn = new LlamaAttention(cfg, i, std);
    this.mlp = new LlamaMLP(cfg, std);
    this.input_layernorm = new RMSNorm(cfg.hidden_size, { eps: cfg.rms_norm_eps });
    this.post_attention_layernorm = new RMSNorm(cfg.hidden_size, { eps: cfg.rms_norm_eps });
  }
  forward(x: Tensor, cos: Tensor, sin: Tensor, mask: Tensor | null, cache: KVCache | null | undefined): Tensor {
    const h = add(x, this.self_attn.forward(this.input_layernorm.forward(x), cos, sin, mask, cache));
    return add(h, this.mlp.forward(this.post_attention_layernorm.forward(h)));
  }
}

/** `LlamaModel` (also `Qwen2Model`, `MistralModel`): embeddings, decoder layers, final RMSNorm. */
export class LlamaModel extends DecoderBackbone {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;
  readonly numLayers: number;
  constructor(readonly cfg: LlamaConfig) {
    super();
    const std = cfg.initializer_range;
    const pad = paddingIdx(cfg.pad_token_id, cfg.vocab_size);
    this.embed_tokens = new Embedding(cfg.vocab_size, cfg.hidden_size, { paddingIdx: pad, std });
    this.layers = Array.from({ length: cfg.num_hidden_layers }, (_, i) => new LlamaDecoderLayer(cfg, i, std));
    this.norm = new RMSNorm(cfg.hidden_size, { eps: cfg.rms_norm_eps });
    this.numLayers = cfg.num_hidden_layers;
  }
  inputEmbeddings(): Embedding {
    return this.embed_tokens;
  }
  run(inputs: DecoderInputs): { hidden: Tensor; hiddenStates?: Tensor[] } {
    const [B, T] = inputs.inputIds.shape;
    const cache = inputs.pastKeyValues;
    const past = cache?.length ?? 0;
    const pos = positionsOf(inputs.positionIds, B, T, past);
    const flat = pos.flat();
    const D = this.cfg.head_dim;
    const inv = ropeInvFreq(this.cfg.rope, Math.max(...flat) + 1);
    const cs = rotaryCosSin(flat, D, this.cfg.rope.theta, inv);
    const cos = reshape(cs.cos, [B, 1, T, D]);
    const sin = reshape(cs.sin, [B, 1, T, D]);
    const mask = this.attentionMask(inputs, T, past + T);
    let x = this.embed_tokens.forward(inputs.inputIds);
    const states: Tensor[] = [];
    for (const layer of this.layers) {
      if (inputs.outputHiddenStates) states.push(x);
      x = layer.forward(x, cos, sin, mask, cache);
    }
    x = this.norm.forward(x);
    if (inputs.outputHiddenStates) states.push(x);
    return { hidden: x, ...(inputs.outputHiddenStates ? { hiddenStates: states } : {}) };
  }

  /** Padding mask plus, with a sliding window, keys at distance >= window masked (HF Mistral rule). */
  private attentionMask(inputs: DecoderInputs, T: number, S: number): Tensor | null {
    const pad = inputMask(inputs, S - T);
    const W = this.cfg.sliding_window;
    if (W === null || S <= W) return pad;
    const m = new Float32Array(T * S);
    for (let i = 0; i < T; i++) for (let j = 0; j < S; j++) if (i + S - T - j >= W) m[i * S + j] = MASK_MIN;
    const win = tensor(m, { shape: [1, 1, T, S] });
    return pad ? add(pad, win) : win;
  }
}

/** Builds the `Architecture` entry of a Llama-family model type. */
export function llamaFamilyArchitecture(fam: LlamaFamily, aliases: string[] = []): Architecture {
  return {
    modelTypes: [fam.modelType, ...aliases],
    tasks: ["causal-lm", "sequence-classification"],
    create(raw: Record<string, unknown>, task: Task, file = "config.json", opts: CreateOptions = {}) {
      const src = { raw, file };
      const cfg = readLlamaConfig(src, fam);
      const spec = {
        modelType: fam.modelType,
        className: `${fam.classPrefix}ForCausalLM`,
        prefix: "model",
        hiddenSize: cfg.hidden_size,
        vocabSize: cfg.vocab_size,
        tie: cfg.tie_word_embeddings,
        padTokenId: cfg.pad_token_id,
        initializerRange: cfg.initializer_range,
        raw,
      };
      return buildModel(opts, () => buildDecoderHead(task, spec, new LlamaModel(cfg), src));
    },
    basePrefix: "model",
    ignoreKeys: [/\.rotary_emb\.inv_freq$/],
  };
}

export const LLAMA: LlamaFamily = {
  modelType: "llama",
  classPrefix: "Llama",
  defaults: {
    vocab_size: 32000,
    hidden_size: 4096,
    intermediate_size: 11008,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-6,
  },
};

registerArchitecture(llamaFamilyArchitecture(LLAMA));
