/**
 * The C-shaped interface of the `tunekit_native` addon (`native/*.cc`) and its loader. Every
 * kernel takes typed arrays with element offsets, a small Int32Array `meta` of sizes/strides and
 * scalars; nothing else crosses the boundary. Outputs are written in place (zero-copy).
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

type F32 = Float32Array;
type I32 = Int32Array;

export interface NativeInfo {
  isa: "avx512" | "avx2" | "generic";
  threads: number;
  /** ISA paths this CPU supports, best first. */
  available: string[];
  /** True when bf16-weight GEMMs use AVX512-BF16 dot products (TUNEKIT_BF16_DOT=1 on an avx512_bf16 CPU, avx512 path). */
  bf16Dot: boolean;
}

export interface NativeAddon {
  /** Picks the ISA path ("" = best available) and thread count (0 = available cores); throws if unsupported. */
  configure(isa: string, threads: number): NativeInfo;
  /** Runs a register-only FMA loop on every pool thread; returns the flops done. */
  fmaPeak(iters: number): number;
  /** meta = [nbd, M, N, K, ars, acs, brs, bcs, crs, (size, as, bs, cs) x nbd]. */
  matmul(a: F32, aOff: number, b: F32, bOff: number, c: F32, cOff: number, meta: I32, accumulate: boolean): void;
  /** matmul with bf16/f16 operands widened while packing: dt 0 float32 (Float32Array), 1 bfloat16 / 2 float16 (Uint16Array); same meta. */
  matmulMixed(a: F32 | Uint16Array, aDt: number, aOff: number, b: F32 | Uint16Array, bDt: number, bOff: number, c: F32, cOff: number, meta: I32, accumulate: boolean): void;
  /** out (M,N) = x (M,K) @ w^T + bias (N), bias added per GEMM tile; w (N,K) of storage wDt seen as (K,N) through meta's strides (matmul's meta, nbd 0). */
  linear(x: F32, xOff: number, w: F32 | Uint16Array, wDt: number, wOff: number, bias: F32, biasOff: number, out: F32, outOff: number, meta: I32): void;
  /** meta = [nd, shape, xStrides, outStrides]; op = index in UNARY_OPS. */
  unary(op: number, x: F32, xOff: number, out: F32, outOff: number, meta: I32): void;
  /** meta = [nd, shape, aStrides, bStrides, outStrides]; comparisons (op >= 7) write a Uint8Array. */
  binary(op: number, a: F32, aOff: number, b: F32, bOff: number, out: F32 | Uint8Array, outOff: number, meta: I32): void;
  where(c: Uint8Array, cOff: number, a: F32, aOff: number, b: F32, bOff: number, out: F32, outOff: number, meta: I32): void;
  copy(x: F32, xOff: number, out: F32, outOff: number, meta: I32): void;
  /** meta = [nd, shape, xStrides, outStrides (0 on reduced dims), reducedFlags]; op 0 sum, 1 max, 2 min. */
  reduce(op: number, x: F32, xOff: number, out: F32, outOff: number, meta: I32): void;
  /** meta = [nd, shape, xStrides]; out contiguous from index 0. */
  argmax(x: F32, xOff: number, out: I32, dim: number, meta: I32): void;
  cumsum(x: F32, xOff: number, out: F32, dim: number, meta: I32): void;
  /** meta = [N, C, H, W, O, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups]; all contiguous. */
  conv2d(x: F32, xOff: number, w: F32, wOff: number, out: F32, outOff: number, meta: I32): void;
  conv2dBackwardInput(dy: F32, dyOff: number, w: F32, wOff: number, dx: F32, dxOff: number, meta: I32): void;
  conv2dBackwardWeight(x: F32, xOff: number, dy: F32, dyOff: number, dw: F32, dwOff: number, meta: I32): void;
  /** meta = [planes, H, W, OH, OW, kh, kw, sh, sw, ph, pw, countIncludePad]; dst/idx from index 0. */
  maxPool2d(x: F32, xOff: number, out: F32, idx: I32, meta: I32): void;
  maxPool2dBackward(dy: F32, dyOff: number, dx: F32, idx: I32, meta: I32): void;
  avgPool2d(x: F32, xOff: number, out: F32, meta: I32): void;
  avgPool2dBackward(dy: F32, dyOff: number, dx: F32, meta: I32): void;
  adaptiveAvgPool2d(x: F32, xOff: number, out: F32, meta: I32): void;
  adaptiveAvgPool2dBackward(dy: F32, dyOff: number, dx: F32, meta: I32): void;
  softmax(x: F32, xOff: number, out: F32, R: number, C: number, log: boolean): void;
  softmaxBackward(y: F32, yOff: number, dy: F32, dyOff: number, dx: F32, R: number, C: number, log: boolean): void;
  norm(x: F32, xOff: number, w: F32 | null, wOff: number, b: F32 | null, bOff: number, out: F32, mean: F32, rstd: F32, R: number, C: number, eps: number, rms: boolean): void;
  normBackward(x: F32, xOff: number, w: F32 | null, wOff: number, mean: F32, meanOff: number, rstd: F32, rstdOff: number, dy: F32, dyOff: number, dx: F32, dw: F32 | null, db: F32 | null, R: number, C: number, rms: boolean): void;
  crossEntropy(logits: F32, lOff: number, target: I32, tOff: number, loss: F32, lse: F32, N: number, C: number, ignoreIndex: number, smoothing: number): void;
  crossEntropyBackward(logits: F32, lOff: number, target: I32, tOff: number, lse: F32, lseOff: number, dloss: F32, dlossOff: number, dlogits: F32, N: number, C: number, ignoreIndex: number, smoothing: number): void;
  /** kind 0 gelu, 1 gelu_tanh, 2 silu. */
  activation(kind: number, x: F32, xOff: number, out: F32, n: number): void;
  activationBackward(kind: number, x: F32, xOff: number, dy: F32, dyOff: number, dx: F32, n: number): void;
  /** meta = [B, H, Hkv, T, S, D, causal, mask strides over (b, h, t, s)]. */
  attention(q: F32, qOff: number, k: F32, kOff: number, v: F32, vOff: number, mask: F32 | null, maskOff: number, out: F32, lse: F32, meta: I32, scale: number): void;
  attentionBackward(q: F32, qOff: number, k: F32, kOff: number, v: F32, vOff: number, mask: F32 | null, maskOff: number, out: F32, outOff: number, lse: F32, lseOff: number, dout: F32, doutOff: number, dq: F32, dk: F32, dv: F32, meta: I32, scale: number): void;
  adamw(params: F32[], grads: F32[], m: F32[], v: F32[], lr: Float64Array, wd: Float64Array, beta1: number, beta2: number, eps: number, step: number): void;
  /** meta = [outer, S, inner, xStrides (3), n]; x strided, out contiguous; returns the first bad index position or -1. */
  indexSelect(x: F32, xOff: number, idx: I32, idxOff: number, idxStride: number, out: F32, outOff: number, meta: I32): number;
  /** meta = [outer, S, inner, srcStrides (3), n]; dst contiguous, src strided; returns the first bad index position or -1. */
  indexAdd(dst: F32, dstOff: number, idx: I32, idxOff: number, idxStride: number, src: F32, srcOff: number, meta: I32): number;
  /** x (N, C, S) contiguous; training writes mean/var/rstd (C), else reads mean/rstd. */
  batchNorm(x: F32, xOff: number, w: F32 | null, wOff: number, b: F32 | null, bOff: number, out: F32, outOff: number, mean: F32, meanOff: number, variance: F32 | null, varOff: number, rstd: F32, rstdOff: number, N: number, C: number, S: number, eps: number, training: boolean): void;
  batchNormBackward(x: F32, xOff: number, w: F32 | null, wOff: number, mean: F32, meanOff: number, rstd: F32, rstdOff: number, dy: F32, dyOff: number, dx: F32 | null, dxOff: number, dw: F32 | null, dwOff: number, db: F32 | null, dbOff: number, N: number, C: number, S: number, training: boolean): void;
  clamp(x: F32, xOff: number, out: F32, outOff: number, n: number, lo: number, hi: number): void;
  clampBackward(x: F32, xOff: number, dy: F32, dyOff: number, dx: F32, dxOff: number, n: number, lo: number, hi: number, inclusive: boolean): void;
}

/** Path of the built addon (package root / build / Release). */
export function addonPath(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  return join(root, "build", "Release", "tunekit_native.node");
}

let cached: { addon: NativeAddon; info: NativeInfo } | { error: string } | null = null;

/**
 * Loads and configures the addon once (env `TUNEKIT_ISA`, `TUNEKIT_THREADS`). Returns the error
 * text instead of throwing: a missing build, a load failure or an ISA this CPU lacks.
 * @example const r = loadAddon(); if ("addon" in r) console.log(r.info.isa);
 */
export function loadAddon(): { addon: NativeAddon; info: NativeInfo } | { error: string } {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    const log = join(dirname(path), "..", "native-build-error.txt");
    const why = existsSync(log) ? `: ${readFileSync(log, "utf8").trim().split("\n").pop()}` : " (run `npm run build:native`)";
    return (cached = { error: `the native addon is not built${why}` });
  }
  try {
    const addon = createRequire(import.meta.url)(path) as NativeAddon;
    const threads = process.env.TUNEKIT_THREADS ? Number(process.env.TUNEKIT_THREADS) : 0;
    if (!Number.isInteger(threads) || threads < 0) return (cached = { error: `TUNEKIT_THREADS=${process.env.TUNEKIT_THREADS} is not a non-negative integer` });
    const info = addon.configure(process.env.TUNEKIT_ISA ?? "", threads);
    return (cached = { addon, info });
  } catch (e) {
    return (cached = { error: (e as Error).message });
  }
}
