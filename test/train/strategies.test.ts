// Strategies: which parameters train, counted against closed forms from the fixture configs;
// layouts per architecture; layer-wise lr decay groups; gradual unfreezing; the freeze audit.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  FreezeViolationError,
  modelLayout,
  paramGroups,
  parseStrategy,
  prepareStrategy,
  snapshotFrozen,
  trainableSummary,
} from "../../src/train/index.ts";
import { tinyModel } from "./helpers.ts";

// gpt2 fixture: n_embd 32, n_layer 2, vocab 128, n_positions 64, 4*32 MLP.
const E = 32;
const BLOCK = 2 * 2 * E /* ln_1, ln_2 */ + (E * 3 * E + 3 * E) + (E * E + E) + (E * 4 * E + 4 * E) + (4 * E * E + E);
const LNF = 2 * E;
const SCORE = (k: number) => E * k; // GPT-2 score has no bias

const trainable = (m: { namedParameters(): [string, { requiresGrad: boolean }][] }) =>
  m
    .namedParameters()
    .filter(([, p]) => p.requiresGrad)
    .map(([n]) => n);

test("gpt2 layout: blocks, post (ln_f), head (score)", () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 3, pad_token_id: 0 });
  const l = modelLayout(m);
  assert.deepEqual(l.blocks, ["transformer.h.0", "transformer.h.1"]);
  assert.deepEqual(l.head, ["score"]);
  assert.deepEqual(l.post, ["transformer.ln_f"]);
  assert.deepEqual(l.pre, ["transformer.wte", "transformer.wpe"]);
});

test("head / top:N / full train exactly the closed-form counts", () => {
  const cases: [string, number][] = [
    ["head", SCORE(3)],
    ["top:1", SCORE(3) + LNF + BLOCK],
    ["top:2", SCORE(3) + LNF + 2 * BLOCK],
  ];
  for (const [s, want] of cases) {
    const m = tinyModel("gpt2", "sequence-classification", { num_labels: 3, pad_token_id: 0 });
    prepareStrategy(m, parseStrategy(s)).apply(0, 0);
    assert.equal(m.numParameters({ trainable: true }), want, s);
    if (s === "top:1")
      assert.ok(
        trainable(m).every(
          (n) => n.startsWith("transformer.h.1.") || n === "score.weight" || n.startsWith("transformer.ln_f"),
        ),
      );
  }
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 3, pad_token_id: 0 });
  prepareStrategy(m, parseStrategy("full")).apply(0, 0);
  assert.equal(m.numParameters({ trainable: true }), m.numParameters());
});

test("lora: adapters + the new head as modules to save (closed form)", () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 3, pad_token_id: 0 });
  const plan = prepareStrategy(m, { name: "lora", lora: { targets: ["c_attn"], rank: 4, alpha: 8 } });
  plan.apply(0, 0);
  // c_attn is a Conv1D 32 -> 96: A (4, 32), B (96, 4) per layer.
  assert.equal(m.numParameters({ trainable: true }), 2 * (4 * E + 3 * E * 4) + SCORE(3));
  assert.deepEqual(plan.lora?.savedModules, ["score"]);
});

test("layouts of other architectures", () => {
  const bert = modelLayout(tinyModel("bert", "sequence-classification"));
  assert.ok(bert.blocks.length > 0 && bert.blocks.every((b) => /^bert\.encoder\.layer\.\d+$/.test(b)));
  assert.deepEqual(bert.head, ["classifier"]);
  assert.deepEqual(bert.post, ["bert.pooler.dense"]);
  const db = modelLayout(tinyModel("distilbert", "sequence-classification"));
  assert.ok(db.blocks.every((b) => /^distilbert\.transformer\.layer\.\d+$/.test(b)));
  assert.deepEqual(db.head, ["pre_classifier", "classifier"]);
  const llama = modelLayout(tinyModel("llama", "causal-lm"));
  assert.ok(llama.blocks.every((b) => /^model\.layers\.\d+$/.test(b)));
  assert.deepEqual(llama.post, ["model.norm"]);
  const mb = modelLayout(tinyModel("mobilenet_v2", "image-classification"));
  assert.deepEqual(mb.head, ["classifier.1"]);
  assert.ok(mb.blocks[0] === "features.1" && mb.pre.every((p) => p.startsWith("features.0")));
});

test("top:N on a CNN freezes BatchNorm below (inference mode) and trains BN above", () => {
  const m = tinyModel("mobilenet_v2", "image-classification");
  const plan = prepareStrategy(m, parseStrategy("top:1"));
  plan.apply(0, 0);
  const last = plan.layout.blocks.at(-1) as string;
  const names = trainable(m);
  assert.ok(names.length > 0 && names.every((n) => n.startsWith(`${last}.`) || n.startsWith("classifier.1.")));
});

test("layer-wise lr decay: head at lr, block i from the top at lr*d^(i+1), embeddings lowest", () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 2, pad_token_id: 0 });
  const plan = prepareStrategy(m, parseStrategy("full"));
  plan.apply(0, 0);
  const groups = paramGroups(m, [""], { lr: 1, weightDecay: 0.1, layerwiseLrDecay: 0.5 }, plan.layout);
  const lrOf = (name: string) => {
    const p = new Map(m.namedParameters()).get(name);
    return groups.find((g) => g.params.includes(p as never));
  };
  assert.equal(lrOf("score.weight")?.lr, 1);
  assert.equal(lrOf("transformer.h.1.attn.c_attn.weight")?.lr, 0.5);
  assert.equal(lrOf("transformer.h.0.attn.c_attn.weight")?.lr, 0.25);
  assert.equal(lrOf("transformer.wte.weight")?.lr, 0.125);
  assert.equal(lrOf("transformer.h.0.ln_1.weight")?.weightDecay, 0);
  assert.equal(lrOf("transformer.h.0.attn.c_attn.weight")?.weightDecay, 0.1);
  const over = paramGroups(m, [""], { lr: 1, weightDecay: 0, groups: [{ pattern: "score", lr: 7 }] }, plan.layout);
  assert.equal(over.find((g) => g.params.includes(new Map(m.namedParameters()).get("score.weight") as never))?.lr, 7);
});

test("gradual unfreezing: one more block every K epochs", () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 3, pad_token_id: 0 });
  const plan = prepareStrategy(m, { name: "top", topN: 2, unfreezeEvery: 2 });
  const counts = [0, 1, 2, 3, 4, 5].map((e) => {
    plan.apply(0, e);
    return m.numParameters({ trainable: true });
  });
  const h = SCORE(3) + LNF;
  assert.deepEqual(counts, [h, h, h + BLOCK, h + BLOCK, h + 2 * BLOCK, h + 2 * BLOCK]);
});

test("freeze audit: a modified frozen parameter or BatchNorm statistic is named", () => {
  const m = tinyModel("mobilenet_v2", "image-classification");
  prepareStrategy(m, parseStrategy("head")).apply(0, 0);
  const snap = snapshotFrozen(m);
  assert.ok(snap.size > 0);
  snap.verify(m); // unchanged: passes
  const [name, p] = m.namedParameters().find(([, q]) => !q.requiresGrad) as [
    string,
    { data: Float32Array; offset: number },
  ];
  p.data[p.offset] += 1e-7;
  assert.throws(
    () => snap.verify(m),
    (e: unknown) => e instanceof FreezeViolationError && e.tensorName === name,
  );
  p.data[p.offset] -= 1e-7;
  const snap2 = snapshotFrozen(m);
  const [bn, b] = m.namedBuffers().find(([n]) => n.endsWith("running_mean")) as [
    string,
    { value: { data: Float32Array } },
  ];
  b.value.data[0] += 1;
  assert.throws(
    () => snap2.verify(m),
    (e: unknown) => e instanceof FreezeViolationError && e.tensorName === bn && e.kind === "buffer",
  );
});

test("trainable summary: PEFT's line and per-module counts", () => {
  const m = tinyModel("gpt2", "sequence-classification", { num_labels: 3, pad_token_id: 0 });
  prepareStrategy(m, parseStrategy("head")).apply(0, 0);
  const s = trainableSummary(m);
  assert.equal(s.trainable, SCORE(3));
  assert.match(s.line, /^trainable params: 96 \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}$/);
  assert.equal(
    s.byModule.reduce((a, b) => a + b.trainable + b.frozen, 0),
    s.total,
  );
  assert.deepEqual(
    s.byModule.find((x) => x.name === "score"),
    { name: "score", trainable: 96, frozen: 0 },
  );
});
