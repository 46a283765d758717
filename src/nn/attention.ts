/**
 * `nn.MultiheadAttention` with PyTorch parameter names: `in_proj_weight` (3E, E) / `in_proj_bias`
 * when query, key and value share the embedding size, else `q_proj_weight`, `k_proj_weight`,
 * `v_proj_weight`; `out_proj` is a Linear. Attention runs through `scaledDotProductAttention`.
 */
import * as F from "../ops/index.ts";
import { fmtShape, ShapeError, ValueError } from "../tensor/errors.ts";
import { defaultGenerator } from "../tensor/rng.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { xavierUniform_, zeros_ } from "./init.ts";
import { type LayerOptions, Linear, param } from "./layers.ts";
import { Module, type Parameter } from "./module.ts";

export interface MultiheadAttentionOptions extends LayerOptions {
  dropout?: number;
  bias?: boolean;
  kdim?: number;
  vdim?: number;
  /** Inputs (N, L, E) instead of PyTorch's default (L, N, E). */
  batchFirst?: boolean;
}

export interface MhaForwardOptions {
  /** (N, S): bool true = padding (ignored), or an additive float mask (PyTorch `key_padding_mask`). */
  keyPaddingMask?: Tensor | null;
  /** (L, S) or (N*H, L, S): bool true = not allowed, or additive float (PyTorch `attn_mask`). */
  attnMask?: Tensor | null;
  /** Causal self-attention (query i attends to keys j <= i). */
  isCausal?: boolean;
}

/**
 * Multi-head attention, PyTorch layout and initialisation (xavier-uniform input projections,
 * zero biases). Returns the attention output only (no averaged weights).
 * @example const mha = new MultiheadAttention(64, 4, { batchFirst: true }); const y = mha.forward(x);
 */
export class MultiheadAttention extends Module {
  in_proj_weight: Parameter | null = null;
  q_proj_weight: Parameter | null = null;
  k_proj_weight: Parameter | null = null;
  v_proj_weight: Parameter | null = null;
  in_proj_bias: Parameter | null = null;
  out_proj: Linear;
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;

  constructor(
    readonly embedDim: number,
    readonly numHeads: number,
    opts: MultiheadAttentionOptions = {},
  ) {
    super();
    if (embedDim % numHeads)
      throw new ValueError(`MultiheadAttention: embedDim ${embedDim} is not divisible by numHeads ${numHeads}`);
    this.headDim = embedDim / numHeads;
    this.dropout = opts.dropout ?? 0;
    this.batchFirst = opts.batchFirst ?? false;
    const kdim = opts.kdim ?? embedDim;
    const vdim = opts.vdim ?? embedDim;
    const g = opts.generator ?? defaultGenerator;
    const bias = opts.bias ?? true;
    // PyTorch order: out_proj is built (and initialised) before the input projections are reset.
    this.out_proj = new Linear(embedDim, embedDim, { ...opts, bias });
    if (kdim === embedDim && vdim === embedDim) {
      this.in_proj_weight = xavierUniform_(param([3 * embedDim, embedDim], opts), 1, g) as Parameter;
    } else {
      this.q_proj_weight = xavierUniform_(param([embedDim, embedDim], opts), 1, g) as Parameter;
      this.k_proj_weight = xavierUniform_(param([embedDim, kdim], opts), 1, g) as Parameter;
      this.v_proj_weight = xavierUniform_(param([embedDim, vdim], opts), 1, g) as Parameter;
    }
    if (bias) {
      this.in_proj_bias = zeros_(param([3 * embedDim], opts)) as Parameter;
      zeros_(this.out_proj.bias as Parameter);
    }
  }

  private project(x: Tensor, i: number): Tensor {
    const E = this.embedDim;
    const w = this.in_proj_weight
      ? F.slice(this.in_proj_weight, 0, i * E, (i + 1) * E)
      : ([this.q_proj_weight, this.k_proj_weight, this.v_proj_weight][i] as Parameter);
    const b = this.in_proj_bias ? F.slice(this.in_proj_bias, 0, i * E, (i + 1) * E) : null;
    return F.linear(x, w, b);
  }

  /** (N, L, E) -> (N, H, L, D). */
  private heads(x: Tensor): Tensor {
    const [N, L] = x.shape;
    return F.permute(F.reshape(x, [N, L, this.numHeads, this.headDim]), [0, 2, 1, 3]);
  }

  /** query (L, N, E) (or (N, L, E) with batchFirst); key/value default to query (self-attention). */
  forward(query: Tensor, key: Tensor = query, value: Tensor = key, opts: MhaForwardOptions = {}): Tensor {
    if (query.ndim !== 3 || key.ndim !== 3 || value.ndim !== 3) {
      throw new ShapeError(
        `MultiheadAttention: expected 3-d query/key/value, got ${fmtShape(query.shape)}, ${fmtShape(key.shape)}, ${fmtShape(value.shape)}`,
      );
    }
    const bf = (t: Tensor) => (this.batchFirst ? t : F.transpose(t, 0, 1));
    const [q, k, v] = [this.project(bf(query), 0), this.project(bf(key), 1), this.project(bf(value), 2)];
    const [N, L] = q.shape;
    const S = k.shape[1];
    const mask = this.buildMask(N, L, S, opts);
    const o = F.scaledDotProductAttention(this.heads(q), this.heads(k), this.heads(v), {
      mask,
      causal: opts.isCausal,
      dropout: this.dropout,
      training: this.training,
    });
    const y = this.out_proj.forward(F.reshape(F.permute(o, [0, 2, 1, 3]), [N, L, this.embedDim]));
    return bf(y);
  }

  /** One additive (N|1, H|1, L, S) mask from PyTorch's bool/float key-padding and attention masks. */
  private buildMask(N: number, L: number, S: number, opts: MhaForwardOptions): Tensor | null {
    const additive = (m: Tensor) => (m.dtype === "bool" ? F.where(m, Number.NEGATIVE_INFINITY, 0) : m);
    let mask: Tensor | null = null;
    if (opts.attnMask) {
      const a = opts.attnMask;
      if (a.ndim === 2 && a.shape[0] === L && a.shape[1] === S) mask = F.reshape(additive(a), [1, 1, L, S]);
      else if (a.ndim === 3 && a.shape[0] === N * this.numHeads && a.shape[1] === L && a.shape[2] === S)
        mask = F.reshape(additive(a), [N, this.numHeads, L, S]);
      else
        throw new ShapeError(
          `MultiheadAttention: attnMask ${fmtShape(a.shape)} must be (${L}, ${S}) or (${N * this.numHeads}, ${L}, ${S})`,
        );
    }
    if (opts.keyPaddingMask) {
      const p = opts.keyPaddingMask;
      if (p.ndim !== 2 || p.shape[0] !== N || p.shape[1] !== S)
        throw new ShapeError(`MultiheadAttention: keyPaddingMask ${fmtShape(p.shape)} must be (${N}, ${S})`);
      const pm = F.reshape(additive(p), [N, 1, 1, S]);
      mask = mask ? F.add(mask, pm) : pm;
    }
    return mask;
  }
}
