/**
 * `causalLmLoss` (labels shifted, logits read in place) against HF's definition computed here in
 * float64: mean over t < T-1 with labels[t+1] != -100 of -log softmax(logits[t])[labels[t+1]], and
 * its closed-form gradient (softmax - onehot) / count at those positions, 0 elsewhere (incl. t = T-1).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { causalLmLoss } from "../../src/models/heads.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { tensor } from "../../src/tensor/tensor.ts";

function reference(x: Float32Array, labels: Int32Array, B: number, T: number, V: number) {
  const grad = new Float64Array(B * T * V);
  let loss = 0;
  let count = 0;
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) if (labels[b * T + t + 1] !== -100) count++;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const y = labels[b * T + t + 1];
      if (y === -100) continue;
      const row = (b * T + t) * V;
      let m = Number.NEGATIVE_INFINITY;
      for (let v = 0; v < V; v++) m = Math.max(m, x[row + v]);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(x[row + v] - m);
      const lse = m + Math.log(s);
      loss += lse - x[row + y];
      for (let v = 0; v < V; v++) grad[row + v] = (Math.exp(x[row + v] - lse) - (v === y ? 1 : 0)) / count;
    }
  }
  return { loss: loss / count, grad };
}

test("causalLmLoss matches HF's shifted loss and gradient (prompt mask, padding, odd V)", () => {
  const [B, T, V] = [3, 6, 37];
  const gen = new Generator(7);
  const rnd = () => gen.random() * 2 - 1;
  const x = Float32Array.from({ length: B * T * V }, () => 3 * rnd());
  // row 0: every token; row 1: prompt masked (first 3 -100); row 2: right padding (last 2 -100)
  const labels = Int32Array.from({ length: B * T }, (_, i) => Math.floor(((rnd() + 1) / 2) * V) % V);
  labels.set([-100, -100, -100], T);
  labels.set([-100, -100], 2 * T + T - 2);
  const logits = tensor(x, { shape: [B, T, V], requiresGrad: true });
  const loss = causalLmLoss(logits, tensor(labels, { shape: [B, T] }));
  const ref = reference(x, labels, B, T, V);
  assert.ok(Math.abs(loss.item() - ref.loss) <= 1e-5 * Math.abs(ref.loss), `loss ${loss.item()} vs ${ref.loss}`);
  loss.backward();
  const g = logits.grad!.toFloat64Array();
  let worst = 0;
  for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - ref.grad[i]));
  assert.ok(worst <= 1e-6, `grad max abs diff ${worst}`);
});

test("causalLmLoss rejects labels of the wrong shape", () => {
  const logits = tensor(new Float32Array(2 * 4 * 5), { shape: [2, 4, 5] });
  assert.throws(() => causalLmLoss(logits, tensor(new Int32Array(8), { shape: [2, 4, 1] })), /labels: expected shape/);
  assert.throws(() => causalLmLoss(logits, tensor(new Int32Array(6), { shape: [2, 3] })), /labels: expected shape/);
});
