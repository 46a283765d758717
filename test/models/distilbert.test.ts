// DistilBERT parity against transformers 4.40 (fixtures/models/distilbert:
// DistilBertForSequenceClassification, dim 32, 2 layers, right padding): logits, loss, hidden
// states, every gradient norm and three full gradients; plus the token head and sinusoidal positions.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import {
  DistilBertForSequenceClassification,
  type DistilBertForTokenClassification,
  sinusoidalEmbeddings,
} from "../../src/models/distilbert.ts";
import { getArchitecture } from "../../src/models/registry.ts";
import { crossEntropy, reshape } from "../../src/ops/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { loadJson, loadTensors } from "../helpers.ts";

interface TextRef {
  inputs: { input_ids: number[][]; attention_mask: number[][]; token_type_ids?: number[][] };
  labels: number[];
  logits: number[][];
  loss: number;
  hidden_states: number[][][][];
  grad_norms: Record<string, number>;
  full_grads: Record<string, { shape: number[]; grad: unknown }>;
}

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
const ids = (x: number[][]) => tensor(Int32Array.from(x.flat()), { shape: [x.length, x[0].length] });

function maxAbs(a: Tensor | number[], b: number[]): number {
  const av = Array.isArray(a) ? a : a.toList();
  assert.equal(av.length, b.length);
  let m = 0;
  for (let i = 0; i < b.length; i++) m = Math.max(m, Number.isNaN(av[i]) ? Infinity : Math.abs(av[i] - b[i]));
  return m;
}

function l2(t: Tensor): number {
  return Math.sqrt(t.toList().reduce((a, v) => a + v * v, 0));
}

const ref = loadJson<TextRef>("models/distilbert/reference.json");
const config = loadJson<Record<string, unknown>>("models/distilbert/config.json");
const weights = loadTensors("models/distilbert/model.safetensors");

describe("distilbert parity (transformers 4.40)", () => {
  const model = getArchitecture("distilbert").create(
    config,
    "sequence-classification",
  ) as DistilBertForSequenceClassification;
  model.loadStateDict(weights);
  model.eval();
  const out = model.forward({
    inputIds: ids(ref.inputs.input_ids),
    attentionMask: ids(ref.inputs.attention_mask),
    labels: tensor(Int32Array.from(ref.labels)),
    outputHiddenStates: true,
  });
  backward(out.loss as Tensor);

  test("logits within 1e-4, loss within 1e-5 relative", () => {
    const d = maxAbs(out.logits, flat(ref.logits));
    console.log(`distilbert logits max abs diff ${d.toExponential(2)}`);
    assert.ok(d < 1e-4, `logits max abs diff ${d}`);
    const lr = Math.abs((out.loss as Tensor).item() - ref.loss) / ref.loss;
    assert.ok(lr < 1e-5, `loss rel diff ${lr}: ${(out.loss as Tensor).item()} vs ${ref.loss}`);
  });

  test("hidden states (embeddings, then each layer)", () => {
    assert.equal(out.hiddenStates?.length, ref.hidden_states.length);
    ref.hidden_states.forEach((h, i) => {
      const d = maxAbs(out.hiddenStates?.[i] as Tensor, flat(h));
      assert.ok(d < 1e-4, `hidden_states[${i}] max abs diff ${d}`);
    });
  });

  // attention key biases get zero gradient in exact arithmetic (softmax is shift-invariant per
  // query), so their recorded norms (~1e-8) are rounding noise: compared with an absolute 1e-6.
  test("every parameter's gradient norm within 1e-4 relative (1e-6 absolute for rounding-noise norms)", () => {
    const names = model.namedParameters().map(([n]) => n);
    assert.deepEqual([...names].sort(), Object.keys(ref.grad_norms).sort());
    let worst = 0;
    for (const [name, p] of model.namedParameters()) {
      const want = ref.grad_norms[name];
      const got = p.grad ? l2(p.grad) : 0;
      const rel = Math.abs(got - want) / Math.max(want, 1e-30);
      const noise = want < 1e-6;
      if (!noise) worst = Math.max(worst, rel);
      assert.ok(noise ? Math.abs(got - want) < 1e-6 : rel < 1e-4, `${name}: grad norm ${got} vs ${want} (rel ${rel})`);
    }
    console.log(`distilbert grad norms worst rel diff ${worst.toExponential(2)}`);
  });

  test("full gradients elementwise", () => {
    const params = new Map(model.namedParameters());
    for (const [name, g] of Object.entries(ref.full_grads)) {
      const p = params.get(name);
      assert.ok(p?.grad, `${name} has no gradient`);
      assert.deepEqual([...p.grad.shape], g.shape);
      const want = flat(g.grad);
      const scale = Math.max(...want.map(Math.abs));
      const d = maxAbs(p.grad, want);
      assert.ok(d <= 1e-4 * Math.max(scale, 1e-3), `${name}: max abs diff ${d} (scale ${scale})`);
    }
  });
});

describe("distilbert heads", () => {
  const small = { ...config, n_layers: 1 };
  test("token classification: HF names, shapes, CE over tokens ignoring -100", () => {
    manualSeed(3);
    const m = getArchitecture("distilbert").create(
      { ...small, num_labels: 3 },
      "token-classification",
    ) as DistilBertForTokenClassification;
    const names = m.namedParameters().map(([n]) => n);
    for (const n of [
      "distilbert.embeddings.word_embeddings.weight",
      "distilbert.transformer.layer.0.attention.q_lin.weight",
      "distilbert.transformer.layer.0.sa_layer_norm.bias",
      "distilbert.transformer.layer.0.ffn.lin2.weight",
      "distilbert.transformer.layer.0.output_layer_norm.weight",
      "classifier.weight",
    ]) {
      assert.ok(names.includes(n), n);
    }
    assert.ok(!names.some((n) => n.startsWith("pre_classifier")));
    const labels = ids([[2, -100, 0]]);
    const o = m.forward({ inputIds: ids([[2, 5, 6]]), labels });
    assert.deepEqual([...o.logits.shape], [1, 3, 3]);
    const want = crossEntropy(reshape(o.logits, [3, 3]), reshape(labels, [3])).item();
    assert.ok(Math.abs((o.loss as Tensor).item() - want) < 1e-7);
  });

  test("sinusoidal_pos_embds: HF create_sinusoidal_embeddings, frozen, in the state dict", () => {
    const s = sinusoidalEmbeddings(4, 6);
    // position 3, column 3 (odd -> cos) uses angle 3 / 10000^(2*1/6)
    assert.ok(Math.abs(s.toList()[3 * 6 + 3] - Math.cos(3 / 10000 ** (2 / 6))) < 1e-7);
    assert.ok(Math.abs(s.toList()[2 * 6 + 4] - Math.sin(2 / 10000 ** (4 / 6))) < 1e-7);
    const m = new DistilBertForSequenceClassification({ ...small, sinusoidal_pos_embds: true });
    const w = m.distilbert.embeddings.position_embeddings.weight;
    assert.equal(w.requiresGrad, false);
    assert.ok(m.stateDict().has("distilbert.embeddings.position_embeddings.weight"));
    assert.ok(Math.abs(w.toList()[1] - Math.cos(0)) < 1e-7);
  });
});
