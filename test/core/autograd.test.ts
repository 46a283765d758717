// Autograd semantics: accumulation, zeroGrad, detach, noGrad, valueAndGrad, explicit upstream
// gradients, checkpointing (same gradients, recomputation, dropout replay).
import assert from "node:assert/strict";
import { test } from "node:test";
import { backward, checkpoint, grad, noGrad, valueAndGrad } from "../../src/autograd/index.ts";
import * as F from "../../src/ops/index.ts";
import { AutogradError } from "../../src/tensor/errors.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, tensor } from "../../src/tensor/tensor.ts";

test("gradients accumulate across backward calls until zeroGrad", () => {
  const w = tensor([1, 2, 3], { requiresGrad: true });
  backward(F.sum(F.mul(w, w)));
  assert.deepEqual(w.grad?.toList(), [2, 4, 6]);
  backward(F.sum(F.mul(w, 3)));
  assert.deepEqual(w.grad?.toList(), [5, 7, 9]);
  w.zeroGrad();
  assert.equal(w.grad, null);
});

test("a tensor used twice gets the sum of both paths; detach and noGrad cut the graph", () => {
  const x = tensor([2], { requiresGrad: true });
  backward(F.sum(F.add(F.mul(x, x), F.mul(x.detach(), x))));
  assert.deepEqual(x.grad?.toList(), [6]); // 2x + x.detach()
  const y = noGrad(() => F.mul(x, x));
  assert.equal(y.requiresGrad, false);
  assert.throws(() => backward(y), AutogradError);
});

test("backward on a non-scalar needs an upstream gradient of the same shape", () => {
  const x = tensor([1, 2], { requiresGrad: true });
  const y = F.mul(x, 3);
  assert.throws(() => backward(y), /non-scalar tensor of shape \[2\] needs an explicit gradient/);
  assert.throws(() => backward(y, tensor([1, 2, 3])), /gradient shape \[3\] does not match tensor shape \[2\]/);
  backward(y, tensor([1, 10]));
  assert.deepEqual(x.grad?.toList(), [3, 30]);
});

test("valueAndGrad and grad leave .grad untouched", () => {
  const w = tensor([1, -2], { requiresGrad: true });
  const [v, [g]] = valueAndGrad((a) => F.sum(F.mul(a, a)))(w);
  assert.equal(v.item(), 5);
  assert.deepEqual(g.toList(), [2, -4]);
  assert.equal(w.grad, null);
  const [gx] = grad(F.sum(F.exp(w)), [w]);
  assert.deepEqual(gx.toList().map((x) => +x.toFixed(6)), [Math.E, Math.exp(-2)].map((x) => +x.toFixed(6)));
  assert.equal(w.grad, null);
});

test("checkpoint: same output and gradients, the forward graph is not kept", () => {
  manualSeed(0);
  const w1 = randn([4, 4], { requiresGrad: true });
  const w2 = randn([4, 4], { requiresGrad: true });
  const x = randn([3, 4], { requiresGrad: true });
  let calls = 0;
  const block = (h: typeof x) => {
    calls++;
    return F.tanh(F.matmul(F.gelu(F.matmul(h, w1)), w2));
  };
  const plain = block(x);
  backward(F.sum(plain));
  const ref = [x.grad!.toList(), w1.grad!.toList(), w2.grad!.toList()];
  for (const t of [x, w1, w2]) t.zeroGrad();
  calls = 0;
  const ck = checkpoint(block, x);
  assert.equal(ck.node?.op, "checkpoint");
  assert.equal(ck.node?.inputs.length, 1); // the inner graph is gone
  assert.deepEqual(ck.toList(), plain.toList());
  backward(F.sum(ck));
  assert.equal(calls, 2, "forward once, recomputed once in backward");
  assert.deepEqual([x.grad!.toList(), w1.grad!.toList(), w2.grad!.toList()], ref);
});

test("checkpoint replays the random generator so dropout masks match", () => {
  manualSeed(5);
  const x = randn([64], { requiresGrad: true });
  const f = (h: typeof x) => F.mul(F.dropout(h, 0.5, true), h);
  manualSeed(11);
  const y = checkpoint(f, x);
  backward(F.sum(y));
  // d/dx (mask*x/0.5 * x) = 2 * mask * x / 0.5 -> zero exactly where y is zero
  const yv = y.toList();
  const gv = x.grad!.toList();
  const xv = x.toList();
  yv.forEach((v, i) => assert.ok(v === 0 ? gv[i] === 0 : Math.abs(gv[i] - 4 * xv[i]) < 1e-5, `element ${i}`));
});
