// The fused batch-norm and clamp/hardtanh ops against their composite definitions (float64, the
// reference backend), finite differences, and PyTorch's gradient conventions at the clamp bounds.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { backend, referenceBackend, setBackend } from "../../src/backend/index.ts";
import { fusedBatchNorm, fusedClamp } from "../../src/ops/fused.ts";
import * as F from "../../src/ops/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { gradcheck } from "../core/gradcheck.ts";
import { assertClose } from "../helpers.ts";

setBackend(referenceBackend);
const gen = new Generator(77);
const leaf = (shape: number[], shift = 0, dtype: "float64" | "float32" = "float64") => {
  const t = randn(shape, { dtype, generator: gen });
  for (let i = 0; i < t.data.length; i++) t.data[i] = (t.data[i] as number) + shift;
  return t.requiresGrad_(true);
};
const copy = (t: Tensor) =>
  tensor(t.toFloat64Array(), { shape: [...t.shape], dtype: t.dtype }).requiresGrad_(t.requiresGrad);

/** The composite definition, forced by running on float64 with the fused kernel hidden. */
function composite<T>(fn: () => T): T {
  const be = backend();
  const { batchNorm: _a, batchNormBackward: _b, clamp: _c, clampBackward: _d, ...rest } = be.fused;
  setBackend({ ...be, fused: rest });
  try {
    return fn();
  } finally {
    setBackend(be);
  }
}

const SHAPES = [
  [1, 1, 5],
  [1, 7, 3, 3],
  [4, 3],
  [2, 33, 1, 2],
  [3, 2, 4, 1, 2],
];

describe("fused batch norm (reference backend, float64)", () => {
  for (const training of [true, false]) {
    for (const affine of ["both", "weight", "bias", "none"] as const) {
      test(`matches the composite: training=${training}, affine=${affine}`, () => {
        for (const shape of SHAPES) {
          const C = shape[1];
          const x = leaf(shape, 2.5);
          const w = affine === "both" || affine === "weight" ? leaf([C]) : null;
          const b = affine === "both" || affine === "bias" ? leaf([C]) : null;
          const rm = randn([C], { dtype: "float64", generator: gen });
          const rv = randn([C], { dtype: "float64", generator: gen });
          for (let c = 0; c < C; c++) rv.data[c] = 0.5 + Math.abs(rv.data[c] as number);
          const [x2, w2, b2, rm2, rv2] = [x, w, b, rm, rv].map((t) => (t ? copy(t) : null));
          const y = fusedBatchNorm(x, rm, rv, w, b, training, 0.3, 1e-5);
          const want = composite(() => F.batchNorm(x2!, rm2, rv2, w2, b2, { training, momentum: 0.3, eps: 1e-5 }));
          assertClose(y, want, 1e-10, `forward ${shape}`);
          assertClose(rm, rm2!, 1e-12, `running mean ${shape}`);
          assertClose(rv, rv2!, 1e-12, `running var ${shape}`);
          const g = randn(y.shape, { dtype: "float64", generator: gen });
          backward(F.sum(F.mul(y, g)));
          backward(F.sum(F.mul(want, g)));
          for (const [a, e, n] of [
            [x, x2, "x"],
            [w, w2, "w"],
            [b, b2, "b"],
          ] as const) {
            if (!a) continue;
            assert.ok(a.grad && e?.grad, `${n} got a gradient`);
            assertClose(a.grad, e.grad, 1e-9, `grad ${n} ${shape}`);
          }
        }
      });
    }
  }

  test("fused activation and residual = relu/relu6(bn(x) + r) composite, values and gradients", () => {
    for (const training of [true, false])
      for (const activation of ["relu", "relu6", undefined] as const)
        for (const withRes of [true, false]) {
          if (!activation && !withRes) continue;
          const shape = [2, 3, 4, 5];
          const x = leaf(shape, 0.5);
          // Scale and shift so that outputs fall below 0, inside (0, 6) and above 6.
          const [w, b] = [
            F.mul(leaf([3]), 4)
              .detach()
              .requiresGrad_(true),
            leaf([3], 3),
          ];
          const r = withRes ? F.mul(leaf(shape), 4).detach().requiresGrad_(true) : null; // reaches past 6
          const rm = tensor([0.3, -1, 2], { dtype: "float64" });
          const rv = tensor([0.7, 1.5, 2], { dtype: "float64" });
          const [x2, w2, b2, r2] = [x, w, b, r].map((t) => (t ? copy(t) : null));
          const opts = { training, momentum: 0.1, eps: 1e-5, activation };
          const y = fusedBatchNorm(x, copy(rm), copy(rv), w, b, training, 0.1, 1e-5, activation, r);
          const want = composite(() => F.batchNorm(x2!, copy(rm), copy(rv), w2, b2, { ...opts, residual: r2 }));
          const name = `training=${training} ${activation} residual=${withRes}`;
          const v = want.toFloat64Array();
          if (activation) assert.ok(v.some((e) => e === 0) && v.some((e) => e > 0), `${name}: both sides of 0`);
          if (activation === "relu6")
            assert.ok(
              v.some((e) => e === 6),
              `${name}: some outputs clamped at 6`,
            );
          assertClose(y, want, 1e-10, `${name} forward`);
          const g = randn(y.shape, { dtype: "float64", generator: gen });
          backward(F.sum(F.mul(y, g)));
          composite(() => backward(F.sum(F.mul(want, g))));
          for (const [a, e, n] of [
            [x, x2, "x"],
            [w, w2, "w"],
            [b, b2, "b"],
            [r, r2, "residual"],
          ] as const) {
            if (!a) continue;
            assert.ok(a.grad && e?.grad, `${name}: ${n} got a gradient`);
            assertClose(a.grad, e.grad, 1e-9, `${name}: grad ${n}`);
          }
        }
    gradcheck(
      "bn + residual + relu (train)",
      (x, w, b, r) => fusedBatchNorm(x, null, null, w, b, true, 0.1, 1e-5, "relu", r),
      [leaf([3, 3, 2, 2], 0.3), leaf([3]), leaf([3]), leaf([3, 3, 2, 2])],
    );
    const x32 = leaf([2, 3, 4], 0, "float32");
    const y32 = F.batchNorm(x32, null, null, null, null, {
      training: true,
      activation: "relu",
      residual: F.mul(x32, 2),
    });
    const ops = [y32.node?.op, y32.node?.inputs[0]?.node?.op];
    assert.ok(ops.includes("fusedBatchNorm"), "float32 batchNorm with activation runs fused");
    assert.throws(
      () => F.batchNorm(leaf([2, 3, 2]), null, null, null, null, { training: true, residual: leaf([2, 3, 1]) }),
      /residual \[2,3,1\] must have the input's shape \[2,3,2\]/,
    );
  });

  test("finite differences (training and eval, through the fused op)", () => {
    const rm = tensor([0.3, -1, 2], { dtype: "float64" });
    const rv = tensor([0.7, 1.5, 2], { dtype: "float64" });
    for (const shape of [
      [3, 3, 2, 2],
      [1, 3, 5],
      [4, 3],
    ]) {
      gradcheck(`bn train ${shape}`, (x, w, b) => fusedBatchNorm(x, null, null, w, b, true, 0.1, 1e-5), [
        leaf(shape, 1),
        leaf([3]),
        leaf([3]),
      ]);
      gradcheck(`bn eval ${shape}`, (x, w, b) => fusedBatchNorm(x, rm, rv, w, b, false, 0.1, 1e-5), [
        leaf(shape, 1),
        leaf([3]),
        leaf([3]),
      ]);
      gradcheck(`bn train no affine ${shape}`, (x) => fusedBatchNorm(x, null, null, null, null, true, 0.1, 1e-5), [
        leaf(shape, -1),
      ]);
    }
  });

  test("gradients only for what needs them (frozen affine, detached input)", () => {
    const x = leaf([2, 3, 2, 2]);
    const w = leaf([3]).requiresGrad_(false);
    const b = leaf([3]).requiresGrad_(false);
    backward(F.sum(fusedBatchNorm(x, null, null, w, b, true, 0.1, 1e-5)));
    assert.ok(x.grad);
    assert.equal(w.grad, null);
    assert.equal(b.grad, null);
    const x2 = leaf([2, 3, 2, 2]).requiresGrad_(false);
    const w2 = leaf([3]);
    backward(F.sum(F.mul(fusedBatchNorm(x2, null, null, w2, null, true, 0.1, 1e-5), x2)));
    assert.ok(w2.grad);
    assert.equal(x2.grad, null);
  });

  test("float32 batchNorm runs the fused op on the reference backend and agrees with float64", () => {
    const x = leaf([2, 7, 3, 3], 3, "float32");
    const w = leaf([7], 0, "float32");
    const b = leaf([7], 0, "float32");
    const rm = tensor(new Float32Array(7));
    const rv = tensor(new Float32Array(7).fill(1));
    const y = F.batchNorm(x, rm, rv, w, b, { training: true, momentum: 0.1 });
    assert.ok([y.node?.op, y.node?.inputs[0]?.node?.op].includes("fusedBatchNorm"), "the fused op ran");
    const [x64, w64, b64] = [x, w, b].map((t) => F.cast(t, "float64").detach().requiresGrad_(true));
    const rm64 = tensor(new Float64Array(7));
    const rv64 = tensor(new Float64Array(7).fill(1));
    const want = F.batchNorm(x64, rm64, rv64, w64, b64, { training: true, momentum: 0.1 });
    assertClose(y, want, 1e-5, "forward");
    assertClose(rm, rm64, 1e-5, "running mean");
    assertClose(rv, rv64, 1e-5, "running var");
    backward(F.sum(F.mul(y, y)));
    backward(F.sum(F.mul(want, want)));
    assertClose(x.grad!, x64.grad!, 1e-4, "dx");
    assertClose(w.grad!, w64.grad!, 1e-5, "dw");
    assertClose(b.grad!, b64.grad!, 1e-5, "db");
  });
});

describe("clamp / hardtanh / relu6 (mask-free backward)", () => {
  const edges = [-2, -0.5, 0, 0.25, 0.7, 3, 6, 6.5, Number.NaN];
  // PyTorch 1.13: clamp's gradient passes on the closed range, hardtanh's (and relu6's) on the
  // open range; a NaN input passes the gradient (hardtanh as PyTorch; clamp as tunekit always has).
  const cases: [string, (x: Tensor) => Tensor, number[]][] = [
    ["clamp(0, 6)", (x) => F.clamp(x, 0, 6), [0, 0, 1, 1, 1, 1, 1, 0, 1]],
    ["clamp(-0.5, 0.7)", (x) => F.clamp(x, -0.5, 0.7), [0, 1, 1, 1, 1, 0, 0, 0, 1]],
    ["clamp(lo only)", (x) => F.clamp(x, 0.25), [0, 0, 0, 1, 1, 1, 1, 1, 1]],
    ["relu6", (x) => F.relu6(x), [0, 0, 0, 1, 1, 1, 0, 0, 1]],
    ["hardtanh(-0.5, 0.7)", (x) => F.hardtanh(x, -0.5, 0.7), [0, 0, 1, 1, 0, 0, 0, 0, 1]],
  ];
  for (const [name, fn, grads] of cases) {
    test(`${name}: values and gradients at the bounds, fused (float32) = composite (float64)`, () => {
      const x32 = tensor(Float32Array.from(edges)).requiresGrad_(true);
      const x64 = tensor(Float64Array.from(edges)).requiresGrad_(true);
      const y32 = fn(x32);
      assert.equal(y32.node?.op, "fusedClamp");
      const y64 = composite(() => fn(x64));
      assert.notEqual(y64.node?.op, "fusedClamp");
      const [v32, v64] = [y32.toFloat64Array(), y64.toFloat64Array()];
      assertClose(v32.slice(0, -1), v64.slice(0, -1), 1e-7, `${name} values`);
      assert.ok(Number.isNaN(v32[v32.length - 1]) && Number.isNaN(v64[v64.length - 1]), "NaN stays NaN");
      backward(F.sum(y32));
      composite(() => backward(F.sum(y64)));
      assert.deepEqual([...x32.grad!.toFloat64Array()], grads, `${name} fused grads`);
      assert.deepEqual([...x64.grad!.toFloat64Array()], grads, `${name} composite grads`);
    });
  }

  test("relu: the gradient through the clamp kernel equals PyTorch's (NaN passes, 0 does not)", () => {
    // torch 1.13: relu(x).sum().backward() on [-1, 0, 0.5, nan, 6, 7] gives [0, 0, 1, 1, 1, 1].
    const x32 = tensor(Float32Array.from([-1, 0, 0.5, Number.NaN, 6, 7])).requiresGrad_(true);
    backward(F.sum(F.relu(x32)));
    assert.deepEqual([...x32.grad!.toFloat64Array()], [0, 0, 1, 1, 1, 1]);
    const x = leaf([4, 5], 1);
    gradcheck("relu", (t) => F.relu(t), [x]);
  });

  test("finite differences away from the bounds (float64 through the fused op)", () => {
    const x = leaf([4, 5], 0);
    gradcheck("fused clamp", (t) => fusedClamp(t, -0.6, 0.9, true), [x]);
    gradcheck("fused hardtanh", (t) => fusedClamp(t, -0.6, 0.9, false), [x]);
  });
});
