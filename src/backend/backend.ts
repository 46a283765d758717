/**
 * The `Backend` interface: the small set of kernels every backend implements. The op table
 * (`src/ops/`) owns shape rules, dtype rules, broadcasting and gradients; a backend only fills
 * pre-allocated outputs.
 *
 * Conventions, for every kernel:
 * - Inputs are tensors of any layout (strides may be 0 for broadcast dims, negative never).
 * - `out` is freshly allocated and contiguous unless a kernel says otherwise.
 * - Float inputs are float32 or float64 (bf16/f16 are widened by the op layer, except where a
 *   kernel says it accepts them); indices are int32; masks are bool (Uint8Array).
 * - Elementwise inputs already have `out`'s shape (the op layer expands them with stride 0).
 */
import type { Tensor } from "../tensor/tensor.ts";

export type UnaryOp =
  | "neg" | "abs" | "exp" | "log" | "sqrt" | "rsqrt" | "reciprocal" | "sin" | "cos" | "tanh"
  | "sigmoid" | "relu" | "sign" | "erf" | "floor" | "logicalNot";

export type BinaryOp =
  | "add" | "sub" | "mul" | "div" | "pow" | "maximum" | "minimum"
  | "eq" | "ne" | "lt" | "le" | "gt" | "ge";

export type ReduceOp = "sum" | "max" | "min";

export interface Conv2dParams {
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
  groups: number;
}

export interface Pool2dParams {
  kernel: [number, number];
  stride: [number, number];
  padding: [number, number];
  /** avg pooling: count padded cells in the divisor (PyTorch default true). */
  countIncludePad?: boolean;
  ceilMode?: boolean;
}

/**
 * Optional fused kernels. Each has a composite fallback in `src/ops/`; a backend provides what
 * pays off. All work on contiguous float32 inputs (the op layer makes them so).
 */
export interface FusedKernels {
  /** x (R, C) -> out (R, C): softmax over the last dim. */
  softmax(x: Tensor, out: Tensor, log: boolean): void;
  /** y = softmax or log_softmax output (R, C), dy (R, C) -> dx (R, C). */
  softmaxBackward(y: Tensor, dy: Tensor, dx: Tensor, log: boolean): void;
  /** x (R, C), weight (C) | null, bias (C) | null -> out (R, C), mean (R), rstd (R). rms: no centring. */
  norm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps: number, rms: boolean, out: Tensor, mean: Tensor, rstd: Tensor): void;
  /** Gradients of `norm`; dweight/dbias may be null when not needed. */
  normBackward(x: Tensor, weight: Tensor | null, mean: Tensor, rstd: Tensor, dy: Tensor, rms: boolean, dx: Tensor, dweight: Tensor | null, dbias: Tensor | null): void;
  /**
   * logits (N, C), target (N) int32 -> loss (N) (0 where ignored), lse (N) saved for backward.
   * Never materialises the probability matrix.
   */
  crossEntropy(logits: Tensor, target: Tensor, ignoreIndex: number, labelSmoothing: number, loss: Tensor, lse: Tensor): void;
  /** dlogits (N, C) from dloss (N). */
  crossEntropyBackward(logits: Tensor, target: Tensor, lse: Tensor, dloss: Tensor, ignoreIndex: number, labelSmoothing: number, dlogits: Tensor): void;
  /** kind gelu | gelu_tanh | silu: out = f(x); backward: dx = dy * f'(x). */
  activation(kind: "gelu" | "gelu_tanh" | "silu", x: Tensor, out: Tensor): void;
  activationBackward(kind: "gelu" | "gelu_tanh" | "silu", x: Tensor, dy: Tensor, dx: Tensor): void;
  /**
   * Scaled-dot-product attention. q (B,H,T,D), k/v (B,Hkv,S,D) with H % Hkv == 0 (GQA),
   * mask (B,1|H,T,S) additive float or null, causal flag (offset S-T for KV caches) ->
   * out (B,H,T,D), lse (B,H,T) saved for backward. Memory O(T) beyond inputs/outputs.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, causal: boolean, scale: number, out: Tensor, lse: Tensor): void;
  attentionBackward(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | null, causal: boolean, scale: number, out: Tensor, lse: Tensor, dout: Tensor, dq: Tensor, dk: Tensor, dv: Tensor): void;
  /**
   * Batch norm of x (N, C, S) per channel c (statistics over N and S). training: writes mean (C),
   * var (C, biased) and rstd = 1/sqrt(var + eps) (C) from x; else mean and rstd are inputs (from
   * the running statistics) and var is not touched. out = (x - mean) * rstd * weight + bias.
   * The reference backend also accepts float64.
   */
  batchNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, training: boolean, eps: number, out: Tensor, mean: Tensor, variance: Tensor | null, rstd: Tensor): void;
  /**
   * Gradients of `batchNorm` from x, the saved mean/rstd and dy (N, C, S); any of dx, dweight,
   * dbias may be null (not computed). training: through the batch statistics; else dx = dy * weight * rstd.
   */
  batchNormBackward(x: Tensor, weight: Tensor | null, mean: Tensor, rstd: Tensor, dy: Tensor, training: boolean, dx: Tensor | null, dweight: Tensor | null, dbias: Tensor | null): void;
  /**
   * `F.linear`: x (M, K) @ weight^T + bias -> out (M, N) contiguous, the bias added in the GEMM's
   * epilogue. x and weight (N, K) any strides; weight float32 or (frozen) bf16/f16; bias (N).
   * The reference backend also accepts float64.
   */
  linear(x: Tensor, weight: Tensor, bias: Tensor, out: Tensor): void;
  /** out = min(max(x, lo), hi) (NaN stays NaN); lo/hi may be -/+Infinity. */
  clamp(x: Tensor, lo: number, hi: number, out: Tensor): void;
  /**
   * dx = dy where x is inside the range, else 0. inclusive (clamp): lo <= x <= hi;
   * exclusive (hardtanh / relu6, PyTorch's hardtanh_backward): lo < x < hi. NaN x passes dy.
   */
  clampBackward(x: Tensor, dy: Tensor, lo: number, hi: number, inclusive: boolean, dx: Tensor): void;
  /** AdamW over many parameters in one call (PyTorch semantics), in place. */
  adamw(params: Float32Array[], grads: Float32Array[], m: Float32Array[], v: Float32Array[], hp: { lr: number[]; beta1: number; beta2: number; eps: number; weightDecay: number[]; step: number }): void;
}

export interface Backend {
  readonly name: string;
  unary(op: UnaryOp, x: Tensor, out: Tensor): void;
  binary(op: BinaryOp, a: Tensor, b: Tensor, out: Tensor): void;
  /** out = cond ? a : b (cond bool). */
  where(cond: Tensor, a: Tensor, b: Tensor, out: Tensor): void;
  /** Copies `x` into `out` (which may be any strided view of the same shape), casting dtype. */
  copy(x: Tensor, out: Tensor): void;
  /** Reduces `dims` (sorted) of x; out has x's shape with those dims set to 1. */
  reduce(op: ReduceOp, x: Tensor, dims: readonly number[], out: Tensor): void;
  /** Index of the max along `dim` (first on ties); out int32 with `dim` set to 1. */
  argmax(x: Tensor, dim: number, out: Tensor): void;
  cumsum(x: Tensor, dim: number, out: Tensor): void;
  /**
   * a (...B, M, K) @ b (...B, K, N) -> out (...B, M, N). Batch dims are already broadcast to
   * out's; any strides (a transposed operand is a permuted view, not a copy).
   * `accumulate` adds into out instead of overwriting it.
   */
  matmul(a: Tensor, b: Tensor, out: Tensor, accumulate?: boolean): void;
  /** torch.gather(x, dim, index): out has index's shape. */
  gather(x: Tensor, dim: number, index: Tensor, out: Tensor): void;
  /** dst.scatter_add_(dim, index, src), in place; dst contiguous. */
  scatterAdd(dst: Tensor, dim: number, index: Tensor, src: Tensor): void;
  /** torch.index_select(x, dim, index (1-D)). */
  indexSelect(x: Tensor, dim: number, index: Tensor, out: Tensor): void;
  /** dst.index_add_(dim, index, src), in place; dst contiguous. */
  indexAdd(dst: Tensor, dim: number, index: Tensor, src: Tensor): void;
  /** x (N, C, H, W), w (O, C/groups, kh, kw) -> out (N, O, OH, OW). */
  conv2d(x: Tensor, w: Tensor, out: Tensor, p: Conv2dParams): void;
  /** dy (N, O, OH, OW), w -> dx (N, C, H, W). */
  conv2dBackwardInput(dy: Tensor, w: Tensor, dx: Tensor, p: Conv2dParams): void;
  /** x, dy -> dw (O, C/groups, kh, kw). */
  conv2dBackwardWeight(x: Tensor, dy: Tensor, dw: Tensor, p: Conv2dParams): void;
  /** out (N, C, OH, OW), indices int32 (flat h*W+w of the max within each plane; padding -inf). */
  maxPool2d(x: Tensor, out: Tensor, indices: Tensor, p: Pool2dParams): void;
  /** dx (N, C, H, W) zero-filled by the caller; adds dy at indices. */
  maxPool2dBackward(dy: Tensor, indices: Tensor, dx: Tensor): void;
  avgPool2d(x: Tensor, out: Tensor, p: Pool2dParams): void;
  avgPool2dBackward(dy: Tensor, dx: Tensor, p: Pool2dParams): void;
  /** PyTorch adaptive windows: start = floor(i*H/OH), end = ceil((i+1)*H/OH). */
  adaptiveAvgPool2d(x: Tensor, out: Tensor): void;
  adaptiveAvgPool2dBackward(dy: Tensor, dx: Tensor): void;
  /** Optional fused kernels (float32, contiguous). */
  readonly fused: Partial<FusedKernels>;
}
