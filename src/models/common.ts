/**
 * What every architecture shares: the `skipInit` build wrapper, the HF `ACT2FN` table, GPT-2's
 * `Conv1D`, rotary tables with HF's `rope_scaling` variants, the attention-mask builder, the KV
 * cache and parameter helpers used by the loader. Layers with `torch.nn` names (Linear, Embedding,
 * LayerNorm, RMSNorm, ...) come from `src/nn`.
 */

import { ConfigError, type ConfigSource, getNumber, getString } from "../formats/hf-config.ts";
import { noInit, normal_ } from "../nn/init.ts";
import { param } from "../nn/layers.ts";
import { Module, Parameter } from "../nn/module.ts";
import { add, cat, gelu, linear, mul, relu, sigmoid, silu, tanh, transpose } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import type { CreateOptions } from "./registry.ts";

/** Float32 `finfo.min`: what HF adds to masked attention scores. */
export const MASK_MIN = -3.4028234663852886e38;

/**
 * Builds a model with `fn`; with `skipInit` (`CreateOptions.skipInit`: a checkpoint is about to
 * overwrite every weight) the random initialisers draw nothing and leave zeros (`nn.noInit`).
 * Fixed values (norm weights of one, sinusoids) are unaffected.
 */
export function buildModel<T>(opts: CreateOptions | undefined, fn: () => T): T {
  return opts?.skipInit ? noInit(fn) : fn();
}

/**
 * GPT-2's `Conv1D`: a linear layer whose weight is stored transposed, (in, out); weight N(0, std),
 * bias zero (HF `_init_weights`). LoRA wraps it with PEFT's `fan_in_fan_out`.
 */
export class Conv1D extends Module {
  weight: Parameter;
  bias: Parameter;
  constructor(inF: number, outF: number, std: number) {
    super();
    this.weight = normal_(param([inF, outF]), 0, std) as Parameter;
    this.bias = param([outF]);
  }
  forward(x: Tensor): Tensor {
    return linear(x, transpose(this.weight), this.bias);
  }
}

/**
 * The `padding_idx` an embedding of `num` rows gets for `pad_token_id`: none when the config's id
 * is not a row (some checkpoints set it past the vocabulary; they are loaded without one).
 */
export function paddingIdx(padTokenId: number | null | undefined, num: number): number | undefined {
  return padTokenId != null && padTokenId >= 0 && padTokenId < num ? padTokenId : undefined;
}

export type Activation = (x: Tensor) => Tensor;

/** HF `ACT2FN` names we support. */
export const ACT2FN: Readonly<Record<string, Activation>> = {
  gelu: (x) => gelu(x),
  gelu_new: (x) => gelu(x, "tanh"),
  gelu_pytorch_tanh: (x) => gelu(x, "tanh"),
  gelu_fast: (x) => gelu(x, "tanh"),
  quick_gelu: (x) => mul(x, sigmoid(mul(x, 1.702))),
  relu: (x) => relu(x),
  silu: (x) => silu(x),
  swish: (x) => silu(x),
  tanh: (x) => tanh(x),
};

/** Looks up `hidden_act` (or another `key`), failing with the config file and key on unknown names. */
export function activation(name: string, file = "config.json", key = "hidden_act"): Activation {
  const fn = Object.hasOwn(ACT2FN, name) ? ACT2FN[name] : undefined;
  if (!fn)
    throw new ConfigError(
      file,
      key,
      "bad_value",
      `activation '${name}' is not supported; known: ${Object.keys(ACT2FN).join(", ")}`,
    );
  return fn;
}

// ---- rotary embeddings with rope_scaling ------------------------------------------------------

export interface RopeConfig {
  dim: number;
  theta: number;
  maxPositions: number;
  type: "default" | "linear" | "dynamic" | "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

/** Reads `rope_theta` / `rope_scaling` as HF's `ROPE_INIT_FUNCTIONS` understand them. */
export function readRope(src: ConfigSource, dim: number, thetaDefault: number, maxPositions: number): RopeConfig {
  const theta = getNumber(src, "rope_theta", thetaDefault, { min: 0 });
  const rs = src.raw.rope_scaling;
  const base: RopeConfig = {
    dim,
    theta,
    maxPositions,
    type: "default",
    factor: 1,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositions: maxPositions,
  };
  if (rs === undefined || rs === null) return base;
  if (typeof rs !== "object" || Array.isArray(rs))
    throw new ConfigError(src.file, "rope_scaling", "not_object", "expected an object or null");
  const r: ConfigSource = { raw: rs as Record<string, unknown>, file: src.file };
  const type = getString(r, "rope_type", getString(r, "type", "default"));
  if (type === "default") return base;
  if (type !== "linear" && type !== "dynamic" && type !== "llama3") {
    throw new ConfigError(
      src.file,
      "rope_scaling.rope_type",
      "bad_value",
      `'${type}' is not supported (default, linear, dynamic, llama3)`,
    );
  }
  return {
    ...base,
    type,
    factor: getNumber(r, "factor", undefined, { min: 0 }),
    lowFreqFactor: getNumber(r, "low_freq_factor", 1, { min: 0 }),
    highFreqFactor: getNumber(r, "high_freq_factor", 4, { min: 0 }),
    originalMaxPositions: getNumber(r, "original_max_position_embeddings", maxPositions, { min: 1, integer: true }),
  };
}

/** inv_freq as HF computes it (float32 arithmetic), including the scaling rules. `seqLen` drives "dynamic". */
export function ropeInvFreq(c: RopeConfig, seqLen: number): Float64Array {
  const f = Math.fround;
  let theta = c.theta;
  if (c.type === "dynamic" && seqLen > c.maxPositions) {
    theta = theta * ((c.factor * seqLen) / c.maxPositions - (c.factor - 1)) ** (c.dim / (c.dim - 2));
  }
  const half = c.dim / 2;
  const inv = Float64Array.from({ length: half }, (_, i) => f(1 / f(f(theta) ** f((2 * i) / c.dim))));
  if (c.type === "linear") for (let i = 0; i < half; i++) inv[i] = f(inv[i] / c.factor);
  if (c.type === "llama3") {
    const lowWavelen = c.originalMaxPositions / c.lowFreqFactor;
    const highWavelen = c.originalMaxPositions / c.highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = inv[i] / c.factor;
      else if (wavelen >= highWavelen) {
        const smooth = (c.originalMaxPositions / wavelen - c.lowFreqFactor) / (c.highFreqFactor - c.lowFreqFactor);
        inv[i] = (1 - smooth) * (inv[i] / c.factor) + smooth * inv[i];
      }
      inv[i] = f(inv[i]);
    }
  }
  return inv;
}

// ---- masks, positions, cache ------------------------------------------------------------------

/** Additive key-padding mask (B, 1, 1, S) from a 0/1 attention mask (B, S); null when nothing is masked. */
export function paddingMask(attentionMask: Tensor | null | undefined): Tensor | null {
  if (!attentionMask) return null;
  const v = attentionMask.toFloat64Array();
  if (v.every((x) => x !== 0)) return null;
  const [B, S] = attentionMask.shape;
  return tensor(
    Float32Array.from(v, (x) => (x !== 0 ? 0 : MASK_MIN)),
    { shape: [B, 1, 1, S] },
  );
}

/**
 * Additive mask (B, 1, T, T) keeping attention inside each packed document: 0 where
 * segment[i] == segment[j] != 0, MASK_MIN elsewhere (finite, so a padding row never becomes NaN).
 * The causal part is applied by the attention itself.
 */
export function documentMask(segmentIds: Tensor): Tensor {
  const [B, T] = segmentIds.shape;
  const v = segmentIds.toFloat64Array();
  const m = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++) {
      const si = v[b * T + i];
      for (let j = 0; j < T; j++) m[(b * T + i) * T + j] = si !== 0 && v[b * T + j] === si ? 0 : MASK_MIN;
    }
  return tensor(m, { shape: [B, 1, T, T] });
}

/** Padding mask plus, for packed batches, the document mask (segment ids need no KV cache). */
export function inputMask(inputs: { attentionMask?: Tensor | null; segmentIds?: Tensor | null }, past: number): Tensor | null {
  const pad = paddingMask(inputs.attentionMask);
  if (!inputs.segmentIds) return pad;
  if (past > 0) throw new ValueError("segmentIds (packed documents) cannot be combined with a KV cache");
  const doc = documentMask(inputs.segmentIds);
  return pad ? add(pad, doc) : doc;
}

/** Default position ids (B, T): past..past+T-1 for every row, as HF does when none are given. */
export function defaultPositions(B: number, T: number, past: number): number[][] {
  return Array.from({ length: B }, () => Array.from({ length: T }, (_, i) => past + i));
}

export function positionsOf(positionIds: Tensor | null | undefined, B: number, T: number, past: number): number[][] {
  if (!positionIds) return defaultPositions(B, T, past);
  const v = positionIds.toList();
  if (positionIds.size !== B * T)
    throw new ValueError(`positionIds: expected ${B}x${T} values, got shape [${positionIds.shape}]`);
  return Array.from({ length: B }, (_, b) => v.slice(b * T, (b + 1) * T));
}

/** Per-layer key/value tensors (B, Hkv, S, D) grown along S; what `generate` carries between steps. */
export class KVCache {
  keys: (Tensor | null)[];
  values: (Tensor | null)[];
  constructor(readonly numLayers: number) {
    this.keys = new Array(numLayers).fill(null);
    this.values = new Array(numLayers).fill(null);
  }
  /** Cached sequence length. */
  get length(): number {
    return this.keys[0]?.shape[2] ?? 0;
  }
  /** Appends this step's k/v for layer `i` and returns the full k/v. */
  update(i: number, k: Tensor, v: Tensor): [Tensor, Tensor] {
    const pk = this.keys[i];
    const pv = this.values[i];
    this.keys[i] = pk ? cat([pk, k], 2) : k;
    this.values[i] = pv ? cat([pv, v], 2) : v;
    return [this.keys[i]!, this.values[i]!];
  }
}

// ---- parameter helpers ------------------------------------------------------------------------

/** Replaces the parameter at dotted `name` with `t` (same shape), keeping the object tree; returns false when absent. */
export function assignParameter(root: Module, name: string, t: Tensor): boolean {
  const dot = name.lastIndexOf(".");
  const path = dot < 0 ? "" : name.slice(0, dot);
  const field = name.slice(dot + 1);
  const mod = root.namedModules().find(([p]) => p === path)?.[1];
  const rec = mod as unknown as Record<string, unknown> | undefined;
  if (!rec || !(rec[field] instanceof Parameter)) return false;
  const old = rec[field] as Parameter;
  const p = new Parameter(t, old.requiresGrad || t.dtype === "float32");
  rec[field] = p;
  return true;
}

/** Parameters reachable under every name (tied parameters under each of their names). */
export function allParameterNames(root: Module): Map<string, Parameter> {
  const out = new Map<string, Parameter>();
  for (const [path, m] of root.namedModules())
    for (const [k, p] of m.ownParameters()) out.set(path ? `${path}.${k}` : k, p);
  return out;
}
