// RoBERTa, checked by reasoning (no fixture): it is BERT with padding-offset position ids
// (HF create_position_ids_from_input_ids), a padding row in the position table, and its own
// classification head. We show the ids HF computes for a padded batch, that the model uses them
// (a BertModel given those ids and the same weights gives the same outputs), the head by hand,
// and a state-dict round trip.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { BertModel, readBertConfig } from "../../src/models/bert.ts";
import { getArchitecture } from "../../src/models/registry.ts";
import {
  createPositionIdsFromInputIds,
  RobertaBase,
  RobertaForSequenceClassification,
  type RobertaForTokenClassification,
} from "../../src/models/roberta.ts";
import { add, embedding, layerNorm, linear, mul, reshape, select, tanh } from "../../src/ops/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";

const ids = (x: number[][]) => tensor(Int32Array.from(x.flat()), { shape: [x.length, x[0].length] });
const maxAbs = (a: Tensor, b: Tensor) => {
  const x = a.toList();
  const y = b.toList();
  assert.equal(x.length, y.length);
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i])), 0);
};

// A tiny RoBERTa: pad id 1 (RoBERTa's), bos 0, eos 2, 20 positions (as roberta-base's 514: max + 2).
const cfg = {
  model_type: "roberta",
  vocab_size: 40,
  hidden_size: 16,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 32,
  max_position_embeddings: 20,
  type_vocab_size: 1,
  pad_token_id: 1,
  hidden_dropout_prob: 0,
  attention_probs_dropout_prob: 0,
  initializer_range: 0.3,
};
// Right padding in row 1; row 2 is left padded.
const batch = [
  [0, 31, 32, 33, 2],
  [0, 7, 2, 1, 1],
  [1, 1, 0, 9, 2],
];
const mask = batch.map((r) => r.map((t) => (t === 1 ? 0 : 1)));

describe("roberta position ids", () => {
  test("HF create_position_ids_from_input_ids on a padded batch", () => {
    // mask = ids != 1; cumsum(mask) * mask + padding_idx
    assert.deepEqual(createPositionIdsFromInputIds(ids(batch), 1).toArray(), [
      [2, 3, 4, 5, 6],
      [2, 3, 4, 1, 1],
      [1, 1, 2, 3, 4],
    ]);
    assert.deepEqual(createPositionIdsFromInputIds(ids([[5, 1, 6]]), 1, 3).toArray(), [[5, 1, 6]]);
  });

  test("the embeddings use them: LN(word + token_type + position[HF ids])", () => {
    manualSeed(11);
    const m = new RobertaBase(cfg);
    m.eval();
    const e = m.embeddings;
    const pos = createPositionIdsFromInputIds(ids(batch), 1);
    let want = add(embedding(e.word_embeddings.weight, ids(batch)), select(e.token_type_embeddings.weight, 0, 0));
    want = layerNorm(
      add(want, embedding(e.position_embeddings.weight, pos)),
      [16],
      e.LayerNorm.weight,
      e.LayerNorm.bias,
      1e-12,
    );
    const got = m.forward({ inputIds: ids(batch), attentionMask: ids(mask), outputHiddenStates: true })
      .hiddenStates?.[0];
    assert.ok(maxAbs(got as Tensor, want) < 1e-6);
  });

  test("RoBERTa = BERT with those position ids (same weights, same outputs)", () => {
    manualSeed(12);
    const rob = new RobertaBase(cfg);
    const bert = new BertModel(readBertConfig({ raw: cfg, file: "config.json" }));
    bert.loadStateDict(rob.stateDict());
    rob.eval();
    bert.eval();
    const inp = { inputIds: ids(batch), attentionMask: ids(mask) };
    const a = rob.forward(inp);
    const b = bert.forward({ ...inp, positionIds: createPositionIdsFromInputIds(ids(batch), 1) });
    assert.ok(maxAbs(a.lastHiddenState, b.lastHiddenState) === 0);
    assert.ok(maxAbs(a.poolerOutput as Tensor, b.poolerOutput as Tensor) === 0);
    // ...and differs from BERT's plain 0..T-1 positions
    assert.ok(maxAbs(a.lastHiddenState, bert.forward(inp).lastHiddenState) > 1e-3);
  });

  test("padding rows of word and position embeddings get no gradient", () => {
    manualSeed(13);
    const m = new RobertaBase(cfg);
    const o = m.forward({ inputIds: ids(batch), attentionMask: ids(mask) });
    // a random weighting: the plain sum of a LayerNorm output with unit weights is constant
    backward(mul(o.lastHiddenState, randn(o.lastHiddenState.shape)).sum());
    for (const w of [m.embeddings.word_embeddings.weight, m.embeddings.position_embeddings.weight]) {
      const g = (w.grad as Tensor).toList();
      assert.ok(
        g.slice(16, 32).every((v) => v === 0),
        "row 1 (padding_idx) must get no gradient",
      );
      assert.ok(g.slice(32, 48).some((v) => v !== 0));
    }
  });

  test("too long for the position table (positions start at pad + 1) is an error", () => {
    const m = new RobertaBase(cfg);
    const long = [Array.from({ length: 19 }, () => 5)]; // positions 2..20, table has 0..19
    assert.throws(() => m.forward({ inputIds: ids(long) }), /max_position_embeddings 20/);
  });
});

describe("roberta heads", () => {
  test("sequence classification: classifier.dense -> tanh -> classifier.out_proj on <s>, no pooler", () => {
    manualSeed(14);
    const m = getArchitecture("roberta").create(
      { ...cfg, num_labels: 3 },
      "sequence-classification",
    ) as RobertaForSequenceClassification;
    const names = m.namedParameters().map(([n]) => n);
    for (const n of [
      "roberta.embeddings.position_embeddings.weight",
      "roberta.encoder.layer.1.output.LayerNorm.bias",
      "classifier.dense.weight",
      "classifier.out_proj.bias",
    ])
      assert.ok(names.includes(n), n);
    assert.ok(!names.some((n) => n.includes("pooler")));
    m.eval();
    const inp = { inputIds: ids(batch), attentionMask: ids(mask) };
    const out = m.forward({ ...inp, labels: tensor(Int32Array.from([0, 2, 1])) });
    const h = m.roberta.forward(inp).lastHiddenState;
    const c = m.classifier;
    const want = linear(
      tanh(linear(select(h, 1, 0), c.dense.weight, c.dense.bias)),
      c.out_proj.weight,
      c.out_proj.bias,
    );
    assert.ok(maxAbs(out.logits, want) < 1e-6);
    assert.ok((out.loss as Tensor).item() > 0);
    assert.equal(m.modelType, "roberta");
  });

  test("token classification and xlm-roberta alias", () => {
    manualSeed(15);
    const m = getArchitecture("xlm-roberta").create(
      { ...cfg, num_labels: 2 },
      "token-classification",
    ) as RobertaForTokenClassification;
    assert.equal(m.modelType, "xlm-roberta");
    const o = m.forward({
      inputIds: ids(batch),
      attentionMask: ids(mask),
      labels: ids(mask.map((r) => r.map((v) => (v ? 1 : -100)))),
    });
    assert.deepEqual([...o.logits.shape], [3, 5, 2]);
    assert.ok(Number.isFinite((o.loss as Tensor).item()));
  });

  test("state dict round trip into a differently seeded model", () => {
    manualSeed(16);
    const a = new RobertaForSequenceClassification({ ...cfg, num_labels: 2 });
    manualSeed(17);
    const b = new RobertaForSequenceClassification({ ...cfg, num_labels: 2 });
    a.eval();
    b.eval();
    const inp = { inputIds: ids(batch), attentionMask: ids(mask) };
    assert.ok(maxAbs(a.forward(inp).logits, b.forward(inp).logits) > 1e-4);
    const sd = a.stateDict();
    assert.equal(sd.size, a.namedParameters().length);
    b.loadStateDict(sd);
    assert.equal(maxAbs(a.forward(inp).logits, b.forward(inp).logits), 0);
    assert.deepEqual([...reshape(a.forward(inp).logits, [-1]).shape], [6]);
  });
});
