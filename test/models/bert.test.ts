// BERT parity against transformers 4.40 (fixtures/models/bert: BertForSequenceClassification,
// hidden 32, 2 layers, token_type_ids used, right padding): logits, loss, hidden states, every
// gradient norm and three full gradients; plus the token-classification head and the HF losses.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { BertForSequenceClassification, type BertForTokenClassification } from "../../src/models/bert.ts";
import { getArchitecture } from "../../src/models/registry.ts";
import { bceWithLogits, crossEntropy, mseLoss, reshape } from "../../src/ops/index.ts";
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

const ref = loadJson<TextRef>("models/bert/reference.json");
const config = loadJson<Record<string, unknown>>("models/bert/config.json");
const weights = loadTensors("models/bert/model.safetensors");

describe("bert parity (transformers 4.40)", () => {
  const model = getArchitecture("bert").create(config, "sequence-classification") as BertForSequenceClassification;
  model.loadStateDict(weights);
  model.eval();
  const out = model.forward({
    inputIds: ids(ref.inputs.input_ids),
    attentionMask: ids(ref.inputs.attention_mask),
    tokenTypeIds: ids(ref.inputs.token_type_ids as number[][]),
    labels: tensor(Int32Array.from(ref.labels)),
    outputHiddenStates: true,
  });
  backward(out.loss as Tensor);

  test("logits within 1e-4, loss within 1e-5 relative", () => {
    const d = maxAbs(out.logits, flat(ref.logits));
    console.log(`bert logits max abs diff ${d.toExponential(2)}`);
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
    console.log(`bert grad norms worst rel diff ${worst.toExponential(2)}`);
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

describe("bert heads", () => {
  const small = { ...config, num_hidden_layers: 1, id2label: undefined, label2id: undefined };
  const inp = { inputIds: ids([[2, 5, 6, 0]]), attentionMask: ids([[1, 1, 1, 0]]) };

  test("token classification: names, shapes, CE over tokens ignoring -100", () => {
    manualSeed(3);
    const m = getArchitecture("bert").create(
      { ...small, num_labels: 4 },
      "token-classification",
    ) as BertForTokenClassification;
    const names = m.namedParameters().map(([n]) => n);
    assert.ok(names.includes("bert.encoder.layer.0.attention.self.query.weight"));
    assert.ok(names.includes("classifier.weight") && !names.some((n) => n.includes("pooler")));
    const labels = ids([[1, 3, -100, -100]]);
    const o = m.forward({ ...inp, labels });
    assert.deepEqual([...o.logits.shape], [1, 4, 4]);
    const want = crossEntropy(reshape(o.logits, [4, 4]), reshape(labels, [4])).item();
    assert.ok(Math.abs((o.loss as Tensor).item() - want) < 1e-7);
    assert.deepEqual(m.config.id2label, { 0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2", 3: "LABEL_3" });
  });

  test("problem_type inferred as HF: 1 label regression, int labels single, float labels multi", () => {
    manualSeed(4);
    const reg = new BertForSequenceClassification({ ...small, num_labels: 1 });
    const y = tensor([0.5]);
    const o1 = reg.forward({ ...inp, labels: y });
    assert.ok(Math.abs((o1.loss as Tensor).item() - mseLoss(reshape(o1.logits, []), reshape(y, [])).item()) < 1e-7);
    assert.equal(reg.config.problem_type, "regression");
    const multi = new BertForSequenceClassification({ ...small, num_labels: 3 });
    const yy = tensor([[1, 0, 1]]);
    const o2 = multi.forward({ ...inp, labels: yy });
    assert.ok(Math.abs((o2.loss as Tensor).item() - bceWithLogits(o2.logits, yy).item()) < 1e-7);
    assert.equal(multi.config.problem_type, "multi_label_classification");
  });

  test("padding_idx row of word_embeddings gets no gradient (nn.Embedding(padding_idx))", () => {
    manualSeed(5);
    const m = new BertForSequenceClassification({ ...small, num_labels: 2 });
    const o = m.forward({ inputIds: ids([[2, 0, 6, 0]]), labels: tensor(Int32Array.from([1])) });
    backward(o.loss as Tensor);
    const g = m.bert.embeddings.word_embeddings.weight.grad as Tensor;
    const H = g.shape[1];
    assert.ok(
      g
        .toList()
        .slice(0, H)
        .every((v) => v === 0),
      "row 0 (pad) must have zero grad",
    );
    assert.ok(
      g
        .toList()
        .slice(2 * H, 3 * H)
        .some((v) => v !== 0),
    );
  });

  test("unknown task and bad hidden_act are rejected naming the file", () => {
    assert.throws(() => getArchitecture("bert").create(config, "causal-lm", "x/config.json"), /x\/config.json/);
    assert.throws(
      () => getArchitecture("bert").create({ ...config, hidden_act: "nope" }, "base", "y/config.json"),
      /y\/config.json.*hidden_act/,
    );
  });
});
