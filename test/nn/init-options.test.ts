// What the model files need from the nn layers: HF's N(0, std) init (`std`), no random draws for
// weights a checkpoint will overwrite (`skipInit`, `noInit`), `resetParameters()` for a new head,
// forward with bf16 weights as `loadPretrained(..., { dtype: "auto" })` leaves them, and the
// torchvision BatchNorm counters under the freeze rule.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import {
  BatchNorm2d,
  Conv2d,
  Embedding,
  LayerNorm,
  Linear,
  noInit,
  normal_,
  ones_,
  Parameter,
  param,
  RMSNorm,
} from "../../src/nn/index.ts";
import * as F from "../../src/ops/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";

setBackend(referenceBackend);

const std = (v: number[]) => Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);
const allZero = (t: Tensor | null) => t !== null && t.toList().every((v) => v === 0);
const bf16 = (t: Tensor) => new Parameter(F.cast(t, "bfloat16").detach());

describe("std: HF-style N(0, std) init", () => {
  test("Linear and Conv2d: weight N(0, std), bias zero", () => {
    const fc = new Linear(200, 100, { std: 0.02, generator: new Generator(1) });
    const s = std(fc.weight.toList());
    assert.ok(Math.abs(s - 0.02) < 0.001, `Linear weight std ${s}`);
    assert.ok(allZero(fc.bias));
    const conv = new Conv2d(16, 32, 3, { std: 0.5, generator: new Generator(2) });
    assert.ok(Math.abs(std(conv.weight.toList()) - 0.5) < 0.03);
    assert.ok(allZero(conv.bias));
  });
  test("Embedding: N(0, std) with the padding row zero, and the padding row gets no gradient", () => {
    const e = new Embedding(300, 40, { std: 0.1, paddingIdx: 2, generator: new Generator(3) });
    const w = e.weight.toList();
    assert.ok(Math.abs(std(w) - 0.1) < 0.005);
    assert.deepEqual(w.slice(80, 120), new Array(40).fill(0));
    backward(F.sum(e.forward(tensor(new Int32Array([2, 5, 2])))));
    const g = e.weight.grad!.toList();
    assert.ok(g.slice(80, 120).every((v) => v === 0) && g.slice(200, 240).every((v) => v === 1));
  });
  test("without std the PyTorch default init and its generator order are unchanged", () => {
    const a = new Linear(8, 4, { generator: new Generator(5) });
    const g = new Generator(5);
    const bound = 1 / Math.sqrt(8);
    const want = Array.from({ length: 32 + 4 }, () => -bound + 2 * bound * g.random());
    assert.deepEqual([...a.weight.toList(), ...a.bias!.toList()], want.map(Math.fround));
  });
});

describe("skipInit, noInit and resetParameters", () => {
  test("skipInit: zeros and no draws from the generator; fixed values still set", () => {
    const g = new Generator(9);
    const fc = new Linear(6, 5, { skipInit: true, generator: g });
    const conv = new Conv2d(2, 3, 3, { skipInit: true, generator: g });
    const e = new Embedding(4, 3, { skipInit: true, paddingIdx: 1, generator: g });
    assert.ok(allZero(fc.weight) && allZero(fc.bias) && allZero(conv.weight) && allZero(e.weight));
    assert.equal(g.random(), new Generator(9).random(), "the generator was not advanced");
  });
  test("noInit: random initialisers are no-ops inside, fixed fills still run, state restored after", () => {
    const built = noInit(() => ({ fc: new Linear(3, 3, { std: 1 }), ln: new LayerNorm(3), rms: new RMSNorm(3) }));
    assert.ok(allZero(built.fc.weight));
    assert.deepEqual(built.ln.weight!.toList(), [1, 1, 1]);
    assert.deepEqual(built.rms.weight.toList(), [1, 1, 1]);
    assert.throws(
      () =>
        noInit(() => {
          throw new Error("inside");
        }),
      /inside/,
    );
    assert.ok(!allZero(normal_(param([4]), 0, 1)), "random init is back on after noInit, even after a throw");
    assert.deepEqual(noInit(() => ones_(param([2]))).toList(), [1, 1]);
  });
  test("resetParameters draws in place (same Parameter objects) with the construction-time init", () => {
    const fc = new Linear(50, 40, { std: 0.3, skipInit: true });
    const w = fc.weight;
    fc.resetParameters();
    assert.equal(fc.weight, w);
    assert.ok(Math.abs(std(w.toList()) - 0.3) < 0.02);
    assert.ok(allZero(fc.bias));
    const e = new Embedding(10, 4, { paddingIdx: 0, skipInit: true });
    e.resetParameters();
    assert.deepEqual(e.weight.toList().slice(0, 4), [0, 0, 0, 0]);
    assert.ok(!allZero(e.weight));
  });
});

describe("bf16 weights (as loaded with dtype 'auto')", () => {
  test("Linear, Embedding with paddingIdx, LayerNorm and RMSNorm run with frozen bf16 parameters", () => {
    const x = randn([2, 8]);
    const fc = new Linear(8, 4);
    const ref = fc.forward(x).toList();
    fc.weight = bf16(fc.weight);
    fc.bias = bf16(fc.bias!);
    assert.equal(fc.weight.requiresGrad, false);
    const y = fc.forward(x).toList();
    assert.ok(
      y.every((v, i) => Math.abs(v - ref[i]) < 0.05),
      "bf16 Linear close to float32",
    );
    const e = new Embedding(5, 8, { paddingIdx: 0 });
    e.weight = bf16(e.weight);
    assert.deepEqual(e.forward(tensor(new Int32Array([0]))).toList(), new Array(8).fill(0));
    const ln = new LayerNorm(8, { eps: 1e-12 });
    ln.weight = bf16(ln.weight!);
    ln.bias = bf16(ln.bias!);
    const rms = new RMSNorm(8, { eps: 1e-6 });
    rms.weight = bf16(rms.weight);
    for (const t of [ln.forward(x), rms.forward(x)]) assert.ok(t.toList().every(Number.isFinite));
  });
});

describe("BatchNorm2d counters under the freeze rule (torchvision CNNs)", () => {
  test("num_batches_tracked counts train-mode batches unless the affine parameters are frozen", () => {
    const bn = new BatchNorm2d(3);
    const x = randn([2, 3, 4, 4]);
    bn.train();
    bn.forward(x);
    assert.equal(bn.num_batches_tracked!.value.item(), 1);
    bn.freeze();
    const mean = bn.running_mean!.value.toList();
    bn.forward(x);
    assert.equal(bn.num_batches_tracked!.value.item(), 1);
    assert.deepEqual(bn.running_mean!.value.toList(), mean);
  });
});
