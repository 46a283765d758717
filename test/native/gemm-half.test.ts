// Native matmul with bf16/f16 operands (native/gemm_half.cc: the half operand is widened inside the
// GEMM's packing) against the reference matmul, which widens each element and multiplies in
// float64: the LoRA products x @ W^T and g @ W, every transpose combination with the half operand
// on either side or both, sliced views, accumulate, batched/broadcast, every f16 and bf16 bit
// pattern (subnormals, inf, NaN), each ISA path of this CPU, and a LoRA step on a bf16 Llama.
// The opt-in AVX512-BF16 path (TUNEKIT_BF16_DOT=1) is checked in a child process against a
// tolerance derived from rounding the float32 operand to bf16.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { backward } from "../../src/autograd/index.ts";
import type { Backend } from "../../src/backend/backend.ts";
import { setBackend } from "../../src/backend/index.ts";
import { loadAddon } from "../../src/backend/native-binding.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import { loadPretrained } from "../../src/models/pretrained.ts";
import { applyLora } from "../../src/peft/index.ts";
import { bf16ToF32, type DType, f16ToF32, f32ToBf16, f32ToF16 } from "../../src/tensor/dtype.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { Tensor, tensor } from "../../src/tensor/tensor.ts";
import { FIXTURES } from "../helpers.ts";
import { absT, assertClose, assertCloseScaled, expandTo, nat, randT, ref, rnd, skip, zerosT } from "./helpers.ts";

type Half = "bfloat16" | "float16";
const HALVES: Half[] = ["bfloat16", "float16"];
type Layout = "contiguous" | "transposed" | "sliced";
/** Set in the child runs: "isa" (per-ISA, the kernel checks only) or "bf16dot" (the opt-in path only). */
const MODE = process.env.TK_GEMM_HALF_CHILD;
const CHILD = MODE !== undefined;
const loadedAddon = loadAddon();
const DOT = "info" in loadedAddon && loadedAddon.info.bf16Dot;
const exactSkip =
  skip ||
  (MODE === "bf16dot"
    ? "bf16-dot child run"
    : DOT
      ? "TUNEKIT_BF16_DOT=1 rounds float32 operands of bf16 products (the bf16-dot tests check it)"
      : false);

const widen1 = (dt: DType, bits: number) => (dt === "bfloat16" ? bf16ToF32(bits) : f16ToF32(bits));

function randHalf(shape: readonly number[], dt: Half): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Uint16Array(n);
  for (let i = 0; i < n; i++) data[i] = dt === "bfloat16" ? f32ToBf16(2 * rnd() - 1) : f32ToF16(2 * rnd() - 1);
  return new Tensor(data, dt, shape);
}

/** A (rows, cols) operand: contiguous, transposed (stored (cols, rows)) or cut from a padded block. */
function operand(rows: number, cols: number, dt: DType, layout: Layout): Tensor {
  const stored = layout === "transposed" ? [cols, rows] : layout === "sliced" ? [rows + 3, cols + 2] : [rows, cols];
  const t = dt === "float32" ? randT(stored) : randHalf(stored, dt as Half);
  if (layout === "transposed") return t.view_([rows, cols], [1, rows], 0);
  if (layout === "sliced") return t.view_([rows, cols], t.strides, t.strides[0] + 1);
  return t;
}

/** The same view over a float32 copy of the storage (exact: every half value is a float32). */
function widened(t: Tensor): Tensor {
  if (t.dtype === "float32") return t;
  const d = Float32Array.from(t.data as Uint16Array, (h) => widen1(t.dtype, h));
  return new Tensor(d, "float32", t.shape, t.strides, t.offset);
}

/**
 * native vs reference (1e-5 relative; 1e-4 once K > 257, where float32 sums cancel and the tight
 * check is the one scaled by sum |a||b|), and, where both take the packed GEMM (M > 4), bit-equal to the float32 GEMM of
 * the widened operands: the packing only widens, the f32 micro-kernels do the arithmetic.
 */
function check(a: Tensor, b: Tensor, accumulate: boolean, what: string, sameAsF32 = true): void {
  const nd = a.ndim;
  const outShape = [...a.shape.slice(0, -1), b.shape[nd - 1]];
  const o1 = accumulate ? randT(outShape) : zerosT(outShape);
  const o2 = zerosT(outShape);
  const o3 = zerosT(outShape);
  o2.data.set(o1.data);
  o3.data.set(o1.data);
  nat().matmul(a, b, o1, accumulate);
  ref.matmul(a, b, o2, accumulate);
  const K = a.shape[nd - 1];
  assertClose(o1, o2, K > 257 ? 1e-4 : 1e-5, what);
  const scale = accumulate ? absT(o2) : zerosT(outShape);
  ref.matmul(absT(widened(a)), absT(widened(b)), scale, accumulate);
  assertCloseScaled(o1, o2, scale, 1e-6, what);
  if (sameAsF32 && a.shape[nd - 2] > 4) {
    nat().matmul(widened(a), widened(b), o3, accumulate);
    assertClose(o1, o3, 0, `${what} (vs the float32 GEMM of the widened operands)`);
  }
}

const SIZES: [number, number, number][] = [
  [1, 1, 1],
  [1, 7, 33],
  [7, 1, 257],
  [33, 33, 1],
  [257, 7, 33],
  [7, 257, 33],
  [33, 1023, 7],
  [1023, 7, 33],
  [65, 130, 257],
  [7, 33, 1023],
];
/** Several MC and KC blocks of the packed GEMM, split between threads. */
const BLOCKED: [number, number, number] = [150, 70, 400];

/** M <= 4 with a half weight: the streamed (GEMV) path, threaded over columns once large enough. */
const GEMV_SIZES: [number, number, number][] = [
  [1, 1023, 257],
  [2, 257, 1023],
  [3, 33, 7],
  [4, 1023, 33],
  [1, 3000, 700],
];

describe("native matmul, bf16/f16 operands", { skip: exactSkip }, () => {
  test("runs the ISA path TUNEKIT_ISA asks for", () => {
    const r = loadAddon();
    assert.ok("info" in r);
    if (process.env.TUNEKIT_ISA) assert.equal(r.info.isa, process.env.TUNEKIT_ISA);
    console.log(`# gemm-half isa=${r.info.isa} threads=${r.info.threads}`);
  });

  test("x @ W^T and g @ W with a half weight W (LoRA forward and input gradient)", () => {
    for (const dt of HALVES)
      for (const [M, N, K] of [...SIZES, ...GEMV_SIZES, BLOCKED])
        for (const layout of ["contiguous", "sliced"] as const) {
          const w = operand(N, K, dt, layout); // (out, in)
          const wt = w.view_([K, N], [w.strides[1], w.strides[0]], w.offset);
          check(operand(M, K, "float32", "contiguous"), wt, false, `${dt} x(${M},${K}) @ W^T (${layout} W ${N}x${K})`);
          check(operand(M, N, "float32", "contiguous"), w, false, `${dt} g(${M},${N}) @ W (${layout} W ${N}x${K})`);
        }
  });

  test("every transpose combination, the half operand on either side or both", () => {
    for (const dt of HALVES)
      for (const [M, N, K] of SIZES)
        for (const [adt, bdt] of [
          [dt, "float32"],
          ["float32", dt],
          [dt, dt],
        ] as [DType, DType][])
          for (const la of ["contiguous", "transposed"] as const)
            for (const lb of ["contiguous", "transposed"] as const) {
              check(
                operand(M, K, adt, la),
                operand(K, N, bdt, lb),
                false,
                `${M}x${N}x${K} ${adt}(${la}) @ ${bdt}(${lb})`,
              );
            }
    const [M, N, K] = BLOCKED;
    for (const dt of HALVES) {
      check(
        operand(M, K, dt, "transposed"),
        operand(K, N, dt, "transposed"),
        false,
        `${dt}@${dt} transposed ${M}x${N}x${K}`,
      );
      check(operand(M, K, dt, "contiguous"), operand(K, N, "float32", "transposed"), false, `${dt}@f32 ${M}x${N}x${K}`);
    }
  });

  test("sliced operands, general strides and accumulate", () => {
    for (const dt of HALVES)
      for (const [M, N, K] of SIZES.slice(0, 9)) {
        check(operand(M, K, "float32", "sliced"), operand(K, N, dt, "sliced"), true, `${dt} sliced ${M}x${N}x${K}`);
        check(operand(M, K, dt, "sliced"), operand(K, N, dt, "sliced"), true, `${dt}@${dt} sliced ${M}x${N}x${K}`);
        // neither dim of the half operand contiguous (every other element of a wider block)
        const big = randHalf([K, 2 * N + 1], dt);
        check(
          operand(M, K, "float32", "contiguous"),
          big.view_([K, N], [2 * N + 1, 2], 1),
          false,
          `${dt} strided ${M}x${N}x${K}`,
        );
        const bigA = randHalf([2 * M + 1, K + 1], dt);
        check(
          bigA.view_([M, K], [2 * (K + 1), 1], 0),
          operand(K, N, "float32", "contiguous"),
          true,
          `${dt} strided A ${M}x${N}x${K}`,
        );
      }
  });

  test("batched, with batch dims broadcast (stride 0) on either side", () => {
    for (const dt of HALVES) {
      check(
        expandTo(randT([3, 1, 33, 17]), [3, 4, 33, 17]),
        expandTo(randHalf([1, 4, 17, 7], dt), [3, 4, 17, 7]),
        false,
        `${dt} 4-d broadcast`,
      );
      // one (out, in) weight shared by 12 batches: the batch-parallel path
      const w = randHalf([20, 33], dt);
      check(
        randT([12, 9, 33]),
        expandTo(w.view_([33, 20], [1, 33], 0), [12, 33, 20]),
        true,
        `${dt} x @ W^T over 12 batches`,
      );
      // two large batches: each product threaded on its own
      check(
        randHalf([2, 300, 257], dt),
        expandTo(randHalf([1, 257, 300], dt), [2, 257, 300]),
        false,
        `${dt}@${dt} 2 large batches`,
      );
    }
  });

  test("widening is exact for every bf16 and f16 bit pattern (subnormals, inf, NaN)", () => {
    const n = 65536;
    const bits = new Uint16Array(n).map((_, i) => i);
    for (const dt of HALVES) {
      const want = new Tensor(
        Float32Array.from(bits, (h) => widen1(dt, h)),
        "float32",
        [1, n],
      );
      const one = new Tensor(new Float32Array([1]), "float32", [1, 1]);
      // K = 1: C = 1 * widened value, so inf and NaN come through unmixed
      const out = zerosT([1, n]);
      nat().matmul(one, new Tensor(bits, dt, [1, n]), out); // B rows contiguous
      assertClose(out, want, 0, `${dt} B rows`);
      const pairs = new Uint16Array(2 * n);
      for (let i = 0; i < n; i++) pairs[2 * i] = i;
      out.data.fill(0);
      nat().matmul(one, new Tensor(pairs, dt, [1, n], [1, 2], 0), out); // the transposed-weight branch
      assertClose(out, want, 0, `${dt} B strided`);
      const col = zerosT([n, 1]);
      nat().matmul(new Tensor(bits, dt, [n, 1], [1, n], 0), one, col); // A columns contiguous
      assertClose(col, want.view_([n, 1], [1, 1], 0), 0, `${dt} A column`);
      // the vector widening of the transposed-weight branch: I (16x16) @ W^T, W (4096, 16) finite
      const finite = bits.map((h) => (Number.isFinite(widen1(dt, h)) ? h : 0));
      const eye = zerosT([16, 16]);
      for (let i = 0; i < 16; i++) eye.data[i * 17] = 1;
      const y = zerosT([16, n / 16]);
      nat().matmul(eye, new Tensor(finite, dt, [16, n / 16], [1, 16], 0), y);
      const yWant = new Tensor(
        Float32Array.from(finite, (h) => widen1(dt, h)),
        "float32",
        [n / 16, 16],
      );
      assertClose(y, yWant.view_([16, n / 16], [1, 16], 0), 0, `${dt} I @ W^T`);
    }
  });

  // .ci/run already runs this file once per TUNEKIT_ISA; a plain run checks the other paths here.
  const isaSkip = CHILD
    ? "child run"
    : process.env.TUNEKIT_ISA
      ? "TUNEKIT_ISA is set (the caller runs each path)"
      : false;
  test("each ISA path this CPU supports (child processes with TUNEKIT_ISA set)", { skip: isaSkip }, () => {
    const r = loadAddon();
    assert.ok("info" in r);
    const others = r.info.available.filter((i) => i !== r.info.isa);
    for (const isa of others) {
      const file = fileURLToPath(import.meta.url);
      const p = spawnSync(process.execPath, ["--import", "tsx", "--test", file], {
        // without NODE_TEST_CONTEXT the child reports in TAP on its stdout, not to this runner
        env: { ...process.env, NODE_TEST_CONTEXT: undefined, TUNEKIT_ISA: isa, TK_GEMM_HALF_CHILD: "isa" },
        encoding: "utf8",
        timeout: 300_000,
      });
      assert.equal(p.status, 0, `TUNEKIT_ISA=${isa} run failed:\n${p.stdout.slice(-4000)}\n${p.stderr.slice(-2000)}`);
      assert.match(p.stdout, new RegExp(`gemm-half isa=${isa} `));
      assert.match(p.stdout, /# fail 0/);
    }
  });
});

describe("LoRA step on a bf16 Llama: native matches reference and never falls back for matmul", {
  skip: skip || (CHILD ? "child run" : false) || (DOT ? "TUNEKIT_BF16_DOT=1" : false),
}, () => {
  const LLAMA = join(FIXTURES, "models", "llama");

  async function step(be: Backend): Promise<{ loss: number; grads: Map<string, Tensor> }> {
    setBackend(be);
    const m = (await loadPretrained(LLAMA, { dtype: "bfloat16" })) as unknown as DecoderLM &
      Parameters<typeof applyLora>[0];
    applyLora(m, { targets: "all-linear", rank: 4, alpha: 8, init: false, generator: new Generator(7) });
    const T = 12;
    const ids = tensor(
      Int32Array.from({ length: 2 * T }, (_, i) => (i * 37 + 5) % 160),
      { shape: [2, T] },
    );
    const out = m.forward({ inputIds: ids, labels: ids });
    const loss = out.loss as Tensor;
    backward(loss);
    const grads = new Map<string, Tensor>();
    for (const [name, p] of m.namedParameters()) if (p.requiresGrad) grads.set(name, p.grad as Tensor);
    return { loss: loss.toFloat64Array()[0], grads };
  }

  test("same loss and LoRA gradients; every half-weight product ran in the addon", async () => {
    const refMatmul = ref.matmul;
    const natMatmul = nat().matmul;
    let fallbacks = 0;
    let halfProducts = 0;
    // Deterministic: count the reference matmul calls made while the native backend runs, and the
    // native matmul calls that had a bf16 operand.
    ref.matmul = (...args) => {
      fallbacks++;
      return refMatmul.apply(ref, args);
    };
    nat().matmul = (a, b, out, acc) => {
      if (a.dtype === "bfloat16" || b.dtype === "bfloat16") halfProducts++;
      return natMatmul.call(nat(), a, b, out, acc);
    };
    let n: Awaited<ReturnType<typeof step>>;
    try {
      n = await step(nat());
    } finally {
      ref.matmul = refMatmul;
      nat().matmul = natMatmul;
    }
    assert.equal(fallbacks, 0, "the native matmul fell back to the reference");
    // 7 linears per layer x 2 layers + lm_head: 15 forward products x @ W^T, and 12 input
    // gradients g @ W (not for layer 0's q/k/v, whose input depends on no trainable parameter)
    assert.equal(halfProducts, 15 + 12, "matmuls with a bf16 weight");
    const r = await step(ref);
    setBackend(ref);
    assert.ok(Math.abs(n.loss - r.loss) <= 1e-5 * Math.abs(r.loss), `loss ${n.loss} vs ${r.loss}`);
    assert.equal(n.grads.size, r.grads.size);
    assert.equal(n.grads.size, 2 * 14, "lora_A and lora_B of 14 linears are the trainable parameters");
    for (const [name, g] of r.grads) {
      const mx = Math.max(...g.toFloat64Array().map(Math.abs));
      assertClose(n.grads.get(name) as Tensor, g, 1e-5 * Math.max(1, mx), name);
    }
  });
});

/** The same view over float32 storage holding each value rounded to bf16 (what the dot path multiplies). */
function roundedBf16(t: Tensor): Tensor {
  const d = Float32Array.from(t.data as Float32Array, (v) => bf16ToF32(f32ToBf16(v)));
  return new Tensor(d, "float32", t.shape, t.strides, t.offset);
}

/** Max over outputs of |a - b| / max(1, scale). */
function scaledDiff(a: Tensor, b: Tensor, scale: Tensor): number {
  const [av, bv, sv] = [a.toFloat64Array(), b.toFloat64Array(), scale.toFloat64Array()];
  let worst = 0;
  for (let i = 0; i < av.length; i++) worst = Math.max(worst, Math.abs(av[i] - bv[i]) / Math.max(1, sv[i]));
  return worst;
}

const hasBf16Cpu = (() => {
  try {
    return /\bavx512_bf16\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return false;
  }
})();

describe("opt-in AVX512-BF16 dot products (TUNEKIT_BF16_DOT=1)", { skip }, () => {
  test("off unless asked for", { skip: process.env.TUNEKIT_BF16_DOT ? "TUNEKIT_BF16_DOT is set" : false }, () => {
    assert.equal(DOT, false);
  });

  const dotChildSkip = CHILD
    ? "child run"
    : !hasBf16Cpu
      ? "this CPU lacks avx512_bf16"
      : process.env.TUNEKIT_ISA && process.env.TUNEKIT_ISA !== "avx512"
        ? "runs once, in the avx512 pass"
        : false;
  test("a child with TUNEKIT_BF16_DOT=1 runs the bf16-dot checks", { skip: dotChildSkip }, () => {
    const p = spawnSync(process.execPath, ["--import", "tsx", "--test", fileURLToPath(import.meta.url)], {
      env: {
        ...process.env,
        NODE_TEST_CONTEXT: undefined,
        TUNEKIT_ISA: "avx512",
        TUNEKIT_BF16_DOT: "1",
        TK_GEMM_HALF_CHILD: "bf16dot",
      },
      encoding: "utf8",
      timeout: 300_000,
    });
    assert.equal(p.status, 0, `bf16-dot run failed:\n${p.stdout.slice(-4000)}\n${p.stderr.slice(-2000)}`);
    assert.match(p.stdout, /# bf16dot active/);
    assert.match(p.stdout, /# fail 0/);
  });

  test("bf16 weights: within the bf16 rounding of the float32 operand; other products exact", {
    skip: MODE === "bf16dot" ? false : "runs in the bf16-dot child",
  }, () => {
    assert.equal(DOT, true, "TUNEKIT_BF16_DOT=1 on an avx512_bf16 CPU must enable the path");
    console.log("# bf16dot active");
    let rounded = 0;
    const cases: [number, number, number][] = [
      [7, 33, 1],
      [33, 257, 7],
      [65, 130, 257],
      [150, 70, 400],
      [37, 257, 1023],
      [257, 1023, 33],
      [1023, 7, 33],
    ];
    for (const [M, N, K] of cases)
      for (const layout of ["contiguous", "sliced"] as const)
        for (const fwd of [true, false]) {
          // x @ W^T (W (N, K)) or g @ W (W (K, N)) with a bf16 W, float32 activations
          const w = fwd ? operand(N, K, "bfloat16", layout) : operand(K, N, "bfloat16", layout);
          const b = fwd ? w.view_([K, N], [w.strides[1], w.strides[0]], w.offset) : w;
          const a = operand(M, K, "float32", layout);
          const what = `${M}x${N}x${K} ${fwd ? "x @ W^T" : "g @ W"} ${layout}`;
          const out = zerosT([M, N]);
          nat().matmul(a, b, out);
          const scale = zerosT([M, N]);
          ref.matmul(absT(a), absT(widened(b)), scale);
          // exact for the bf16-rounded operand, up to float32 accumulation
          const onRounded = zerosT([M, N]);
          ref.matmul(roundedBf16(a), b, onRounded);
          assertCloseScaled(out, onRounded, scale, 1e-5, `${what} vs rounded x`);
          // and within bf16's unit roundoff 2^-8 (relative, per element of a) of the float32 product
          const exact = zerosT([M, N]);
          ref.matmul(a, b, exact);
          const d = scaledDiff(out, exact, scale);
          assert.ok(d <= 2 ** -8 + 1e-5, `${what}: ${d} exceeds the bf16 rounding bound`);
          if (d > 1e-4) rounded++;
        }
    assert.ok(rounded > 0, "no product showed the bf16 rounding: the dot path did not run");
    // bf16 @ bf16 needs no rounding; float16 operands and M <= 4 (GEMV) stay on the exact path
    for (const dt of ["bfloat16", "float16"] as const)
      check(
        operand(65, 257, dt, "transposed"),
        operand(257, 130, "bfloat16", "transposed"),
        true,
        `${dt} @ bf16 under TUNEKIT_BF16_DOT`,
        dt === "float16", // bf16 @ bf16 takes the dot path: exact products, its own summation order
      );
    check(
      operand(65, 257, "float32", "contiguous"),
      operand(257, 130, "float16", "transposed"),
      false,
      "f16 W under TUNEKIT_BF16_DOT",
    );
    check(
      operand(3, 1023, "float32", "contiguous"),
      operand(1023, 257, "bfloat16", "transposed"),
      false,
      "bf16 GEMV under TUNEKIT_BF16_DOT",
    );
  });
});
