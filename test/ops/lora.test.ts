// The fused LoRA op against its composite definition, linear(x, W, b) + linear(linear(h, A), B) * s:
// float64 on the reference backend (values and every gradient), finite differences, and float32 on
// the default backend (native when built) with float32 and bf16 base weights.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { backend, referenceBackend, setBackend } from "../../src/backend/index.ts";
import * as F from "../../src/ops/index.ts";
import { ShapeError } from "../../src/tensor/errors.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { gradcheck } from "../core/gradcheck.ts";
import { assertClose } from "../helpers.ts";

const gen = new Generator(11);
const leaf = (shape: number[], dtype: "float64" | "float32" = "float64") =>
  randn(shape, { dtype, generator: gen }).requiresGrad_(true);
const copy = (t: Tensor) =>
  tensor(t.toFloat64Array(), { shape: [...t.shape], dtype: t.dtype }).requiresGrad_(t.requiresGrad);

const composite = (x: Tensor, h: Tensor, wT: Tensor, b: Tensor | null, A: Tensor, B: Tensor, s: number) =>
  F.add(F.linear(x, F.transpose(wT), b), F.mul(F.linear(F.linear(h, A), B), s));

function withBackend<T>(be: ReturnType<typeof backend>, fn: () => T): T {
  const prev = backend();
  setBackend(be);
  try {
    return fn();
  } finally {
    setBackend(prev);
  }
}

describe("loraLinear", () => {
  // [x shape, in, out, r, bias, h distinct from x (dropout), W stored (in, out) like Conv1D]
  const cases: [number[], number, number, number, boolean, boolean, boolean][] = [
    [[5, 7], 7, 33, 4, true, false, false],
    [[2, 3, 7], 7, 1, 1, false, true, false],
    [[1, 33], 33, 7, 8, true, true, true],
    [[2, 1, 257], 257, 7, 2, false, false, true],
  ];
  test("fused = composite, values and all six gradients (float64, reference backend)", () =>
    withBackend(referenceBackend, () => {
      for (const [xs, K, N, r, hasBias, distinctH, conv1d] of cases) {
        const x = leaf(xs);
        const h = distinctH ? leaf(xs) : x;
        const w = conv1d ? leaf([K, N]) : leaf([N, K]);
        const b = hasBias ? leaf([N]) : null;
        const [A, B] = [leaf([r, K]), leaf([N, r])];
        const s = 2 / r;
        const wT = conv1d ? w : F.transpose(w);
        const [x2, w2, b2, A2, B2] = [x, w, b, A, B].map((t) => (t ? copy(t) : null)) as Tensor[];
        const h2 = distinctH ? copy(h) : x2;
        const y = F.loraLinear(x, h, wT, b, A, B, s);
        const want = composite(x2, h2, conv1d ? w2 : F.transpose(w2), b2, A2, B2, s);
        const name = `${xs} r=${r} bias=${hasBias} h=${distinctH ? "dropout" : "x"} conv1d=${conv1d}`;
        assert.deepEqual(y.shape, want.shape);
        assertClose(y, want, 1e-12, `${name} forward`);
        const g = randn(y.shape, { dtype: "float64", generator: gen });
        backward(F.sum(F.mul(y, g)));
        backward(F.sum(F.mul(want, g)));
        const pairs: [Tensor | null, Tensor | null, string][] = [
          [x, x2, "x"],
          [distinctH ? h : null, h2, "h"],
          [w, w2, "W"],
          [b, b2, "bias"],
          [A, A2, "A"],
          [B, B2, "B"],
        ];
        for (const [a, e, n] of pairs) {
          if (!a || !e) continue;
          assert.ok(a.grad && e.grad, `${name}: ${n} got a gradient`);
          assertClose(a.grad, e.grad, 1e-10, `${name}: grad ${n}`);
        }
      }
    }));

  test("finite differences; frozen inputs get no gradient", () =>
    withBackend(referenceBackend, () => {
      gradcheck("loraLinear", (x, h, w, b, A, B) => F.loraLinear(x, h, F.transpose(w), b, A, B, 0.5), [
        leaf([3, 5]),
        leaf([3, 5]),
        leaf([4, 5]),
        leaf([4]),
        leaf([2, 5]),
        leaf([4, 2]),
      ]);
      const x = leaf([3, 5]);
      const w = leaf([4, 5]).requiresGrad_(false);
      const [A, B] = [leaf([2, 5]), leaf([4, 2])];
      backward(F.sum(F.loraLinear(x, x, F.transpose(w), null, A, B, 1)));
      assert.equal(w.grad, null);
      assert.ok(x.grad && A.grad && B.grad);
    }));

  test("float32 on the default backend (and a bf16 base weight) agrees with float64", () => {
    for (const dtype of ["float32", "bfloat16"] as const) {
      const [M, K, N, r] = [33, 257, 65, 8];
      const x = leaf([M, K], "float32");
      const w32 = randn([N, K], { generator: gen });
      const w = dtype === "bfloat16" ? F.cast(w32, "bfloat16") : w32;
      const b = leaf([N], "float32");
      const [A, B] = [leaf([r, K], "float32"), leaf([N, r], "float32")];
      const y = F.loraLinear(x, x, F.transpose(w), b, A, B, 0.25);
      const [x64, b64, A64, B64] = [x, b, A, B].map((t) => F.cast(t, "float64").detach().requiresGrad_(true));
      const w64 = F.cast(w, "float64");
      const want = withBackend(referenceBackend, () => composite(x64, x64, F.transpose(w64), b64, A64, B64, 0.25));
      assertClose(y, want, 1e-5, `${dtype} forward`);
      backward(F.sum(F.mul(y, y)));
      withBackend(referenceBackend, () => backward(F.sum(F.mul(want, want))));
      for (const [a, e, n] of [
        [x, x64, "x"],
        [A, A64, "A"],
        [B, B64, "B"],
        [b, b64, "bias"],
      ] as const)
        assertClose(a.grad as Tensor, e.grad as Tensor, 1e-4, `${dtype} grad ${n}`);
    }
  });

  test("shape mismatches name every operand", () => {
    const x = leaf([3, 5]);
    assert.throws(
      () => F.loraLinear(x, x, leaf([5, 4]), null, leaf([2, 6]), leaf([4, 2]), 1),
      (e: unknown) => e instanceof ShapeError && /A \(r, in\).*\[2,6\]/.test(e.message),
    );
  });
});
