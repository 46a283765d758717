// ViT, checked by reasoning (no fixture): the patch embedding equals an explicit patch-flatten +
// matmul, embeddings = [CLS; patches] + positions, each block is pre-LN
// (x + attn(LN(x)), h + mlp(LN(h))) and the classifier reads only the CLS token after the final
// layernorm. Plus HF names, the problem_type losses, head replacement, state-dict round trip.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward, noGrad } from "../../src/autograd/index.ts";
import { getArchitecture } from "../../src/models/registry.ts";
import { ViTBase, type ViTForImageClassification } from "../../src/models/vit.ts";
import {
  add,
  bceWithLogits,
  cat,
  gelu,
  layerNorm,
  linear,
  matmul,
  mul,
  reshape,
  select,
  softmax,
  transpose,
} from "../../src/ops/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";

const maxAbs = (a: Tensor, b: Tensor) => {
  const x = a.toList();
  const y = b.toList();
  assert.equal(x.length, y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};

// 8x8 images, 4x4 patches -> 4 patches + CLS; hidden 12, 3 heads.
const cfg = {
  model_type: "vit",
  image_size: 8,
  patch_size: 4,
  num_channels: 3,
  hidden_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 3,
  intermediate_size: 24,
  initializer_range: 0.2,
  id2label: { 0: "a", 1: "b", 2: "c" },
  label2id: { a: 0, b: 1, c: 2 },
};

function build(seed: number): ViTForImageClassification {
  manualSeed(seed);
  const m = getArchitecture("vit").create(cfg, "image-classification") as ViTForImageClassification;
  // LayerNorm weights/biases away from 1/0 so that they matter in the checks
  for (const [n, p] of m.namedParameters())
    if (/layernorm/.test(n))
      p.data.set(
        randn(p.shape)
          .toFloat32Array()
          .map((v) => 1 + 0.3 * v),
      );
  return m.eval();
}

describe("vit by hand", () => {
  const x = randn([2, 3, 8, 8]);

  test("patch embedding = flatten each 4x4x3 patch (c, u, v order) @ W^T + b, patches row-major", () => {
    const m = build(1);
    const got = m.vit.embeddings.patch_embeddings.forward(x);
    assert.deepEqual([...got.shape], [2, 4, 12]);
    const w = m.vit.embeddings.patch_embeddings.projection.weight;
    const b = m.vit.embeddings.patch_embeddings.projection.bias as Tensor;
    const xv = x.toList();
    const rows: number[] = [];
    for (let n = 0; n < 2; n++)
      for (let pi = 0; pi < 2; pi++)
        for (let pj = 0; pj < 2; pj++)
          for (let c = 0; c < 3; c++)
            for (let u = 0; u < 4; u++)
              for (let v = 0; v < 4; v++) rows.push(xv[((n * 3 + c) * 8 + pi * 4 + u) * 8 + pj * 4 + v]);
    const want = linear(tensor(rows, { shape: [8, 48] }), reshape(w, [12, 48]), b);
    assert.ok(maxAbs(got, want) < 1e-5);
  });

  test("embeddings = [CLS; patches] + position_embeddings", () => {
    const m = build(2);
    const e = m.vit.embeddings;
    const want = add(
      cat([cat([e.cls_token, e.cls_token], 0), e.patch_embeddings.forward(x)], 1),
      e.position_embeddings,
    );
    const got = m.vit.forward(x, true).hiddenStates?.[0] as Tensor;
    assert.ok(maxAbs(got, want) < 1e-6);
  });

  test("a block is pre-LN: h = x + attn(LN1(x)); out = h + W2 gelu(W1 LN2(h))", () => {
    const m = build(3);
    const states = m.vit.forward(x, true).hiddenStates as Tensor[];
    const L = m.vit.encoder.layer[0];
    const a = L.attention;
    const ln = (t: Tensor, l: { weight: Tensor; bias: Tensor }) => layerNorm(t, [12], l.weight, l.bias, 1e-12);
    const heads = (t: Tensor) => transpose(reshape(t, [2, 5, 3, 4]), 1, 2);
    const y = ln(states[0], L.layernorm_before);
    const q = heads(linear(y, a.attention.query.weight, a.attention.query.bias));
    const k = heads(linear(y, a.attention.key.weight, a.attention.key.bias));
    const v = heads(linear(y, a.attention.value.weight, a.attention.value.bias));
    // softmax(q k^T / sqrt(head_dim)) v, spelled out
    const att = softmax(mul(matmul(q, transpose(k, 2, 3)), 1 / Math.sqrt(4)), -1);
    const ctx = reshape(transpose(matmul(att, v), 1, 2), [2, 5, 12]);
    const h = add(states[0], linear(ctx, a.output.dense.weight, a.output.dense.bias));
    const mlp = linear(
      gelu(linear(ln(h, L.layernorm_after), L.intermediate.dense.weight, L.intermediate.dense.bias)),
      L.output.dense.weight,
      L.output.dense.bias,
    );
    assert.ok(maxAbs(states[1], add(h, mlp)) < 1e-5);
  });

  test("classifier reads the CLS token after the final layernorm; patch tokens reach it only via attention", () => {
    const m = build(4);
    const o = m.forward({ pixelValues: x });
    const last = (m.vit.forward(x, true).hiddenStates as Tensor[])[2];
    const ln = m.vit.layernorm;
    const want = linear(
      select(layerNorm(last, [12], ln.weight, ln.bias, 1e-12), 1, 0),
      m.classifier.weight,
      m.classifier.bias,
    );
    assert.ok(maxAbs(o.logits, want) < 1e-6);
    assert.equal(maxAbs(m.pooledFeatures(x), select(m.vit.forward(x).lastHiddenState, 1, 0)), 0);
  });
});

describe("vit model", () => {
  test("HF parameter names; no pooler under ViTForImageClassification; ViTModel has one", () => {
    const m = build(5);
    const names = m.namedParameters().map(([n]) => n);
    for (const n of [
      "vit.embeddings.cls_token",
      "vit.embeddings.position_embeddings",
      "vit.embeddings.patch_embeddings.projection.weight",
      "vit.encoder.layer.1.attention.attention.query.bias",
      "vit.encoder.layer.1.attention.output.dense.weight",
      "vit.encoder.layer.1.intermediate.dense.weight",
      "vit.encoder.layer.1.output.dense.bias",
      "vit.encoder.layer.1.layernorm_before.weight",
      "vit.encoder.layer.1.layernorm_after.bias",
      "vit.layernorm.weight",
      "classifier.weight",
    ])
      assert.ok(names.includes(n), n);
    assert.ok(!names.some((n) => n.includes("pooler")));
    const base = new ViTBase(cfg);
    assert.ok(base.stateDict().has("pooler.dense.weight") && base.stateDict().has("embeddings.cls_token"));
    assert.deepEqual([...(base.forward(randn([1, 3, 8, 8])).poolerOutput as Tensor).shape], [1, 12]);
  });

  test("losses by problem_type: int -> CE, float -> multi-label BCE; soft targets with single_label", () => {
    const m = build(6);
    const x = randn([2, 3, 8, 8]);
    const l1 = m.forward({ pixelValues: x, labels: tensor(Int32Array.from([0, 2])) });
    const lp = noGrad(() => softmax(l1.logits, -1)).toList();
    const ce = -(Math.log(lp[0]) + Math.log(lp[5])) / 2;
    assert.ok(Math.abs((l1.loss as Tensor).item() - ce) < 1e-5);
    const m2 = build(6);
    const y = tensor([
      [1, 0, 1],
      [0, 0, 1],
    ]);
    const l2 = m2.forward({ pixelValues: x, labels: y });
    assert.equal(m2.config.problem_type, "multi_label_classification");
    assert.ok(Math.abs((l2.loss as Tensor).item() - bceWithLogits(l2.logits, y).item()) < 1e-7);
    const m3 = getArchitecture("vit").create(
      { ...cfg, problem_type: "single_label_classification" },
      "image-classification",
    ) as ViTForImageClassification;
    const soft = tensor([
      [0.5, 0.5, 0],
      [0, 0, 1],
    ]);
    const o3 = m3.forward({ pixelValues: x, labels: soft });
    const p3 = noGrad(() => softmax(o3.logits, -1)).toList();
    const want = -(0.5 * Math.log(p3[0]) + 0.5 * Math.log(p3[1]) + Math.log(p3[5])) / 2;
    assert.ok(Math.abs((o3.loss as Tensor).item() - want) < 1e-5);
  });

  test("replaceHead, gradients reach every parameter, wrong image size is an error", () => {
    const m = build(7);
    m.replaceHead(5, ["v", "w", "x", "y", "z"]);
    assert.deepEqual([...m.classifier.weight.shape], [5, 12]);
    assert.deepEqual(m.config.id2label, { 0: "v", 1: "w", 2: "x", 3: "y", 4: "z" });
    assert.equal(m.config.num_classes, undefined);
    m.train();
    const o = m.forward({ pixelValues: randn([2, 3, 8, 8]), labels: tensor(Int32Array.from([4, 1])) });
    backward(o.loss as Tensor);
    for (const [n, p] of m.namedParameters()) assert.ok(p.grad, `${n} got no gradient`);
    assert.throws(() => m.forward({ pixelValues: randn([1, 3, 16, 16]) }), /doesn't match model \(8\*8\)/);
  });

  test("state dict round trip", () => {
    const a = build(8);
    const b = build(9);
    const x = randn([1, 3, 8, 8]);
    assert.ok(maxAbs(a.forward({ pixelValues: x }).logits, b.forward({ pixelValues: x }).logits) > 1e-3);
    b.loadStateDict(a.stateDict());
    assert.equal(maxAbs(a.forward({ pixelValues: x }).logits, b.forward({ pixelValues: x }).logits), 0);
  });
});
