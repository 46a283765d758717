// Module tree: dotted names, state dict round trip and its errors, freeze/unfreeze globs,
// numParameters, train/eval.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import {
  BatchNorm2d,
  Conv2d,
  Embedding,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  ReLU,
  Sequential,
  StateDictError,
} from "../../src/nn/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, type Tensor, zeros } from "../../src/tensor/tensor.ts";

setBackend(referenceBackend);

class Block extends Module {
  attention = new Linear(8, 8);
  output = new Linear(8, 8);
  LayerNorm = new LayerNorm(8);
}
class Encoder extends Module {
  embeddings = new Embedding(10, 8);
  layer = new ModuleList([new Block(), new Block()]);
  classifier = new Linear(8, 3);
  _cache = new Linear(8, 8); // underscore fields are not part of the tree
}
const N_PARAMS = 10 * 8 + 2 * (2 * (64 + 8) + 16) + (24 + 3);

describe("names and counts", () => {
  test("HF-style dotted names in declaration order", () => {
    const m = new Encoder();
    const names = m.namedParameters().map(([k]) => k);
    assert.deepEqual(names.slice(0, 7), [
      "embeddings.weight",
      "layer.0.attention.weight",
      "layer.0.attention.bias",
      "layer.0.output.weight",
      "layer.0.output.bias",
      "layer.0.LayerNorm.weight",
      "layer.0.LayerNorm.bias",
    ]);
    assert.equal(names.at(-1), "classifier.bias");
    assert.ok(!names.some((n) => n.startsWith("_cache")));
    assert.equal(m.numParameters(), N_PARAMS);
  });
  test("numParameters({ trainable }) follows freeze/unfreeze", () => {
    const m = new Encoder();
    assert.equal(m.freeze(), 15);
    assert.equal(m.numParameters({ trainable: true }), 0);
    m.unfreeze(["classifier"]);
    assert.equal(m.numParameters({ trainable: true }), 27);
    assert.equal(m.numParameters(), N_PARAMS);
  });
});

describe("freeze / unfreeze globs", () => {
  const trainable = (m: Module) =>
    m
      .namedParameters()
      .filter(([, p]) => p.requiresGrad)
      .map(([k]) => k);
  test("module prefixes, * within a segment, ** across segments", () => {
    const m = new Encoder();
    m.freeze(["layer.0"]);
    assert.ok(trainable(m).every((k) => !k.startsWith("layer.0.")));
    assert.ok(trainable(m).includes("layer.1.attention.weight"));
    m.unfreeze();
    m.freeze(["layer.*.attention"]);
    assert.deepEqual(
      m
        .namedParameters()
        .filter(([, p]) => !p.requiresGrad)
        .map(([k]) => k),
      ["layer.0.attention.weight", "layer.0.attention.bias", "layer.1.attention.weight", "layer.1.attention.bias"],
    );
    m.unfreeze();
    m.freeze(["**.bias"]);
    assert.ok(trainable(m).every((k) => !k.endsWith(".bias")));
    assert.ok(trainable(m).includes("classifier.weight"));
    m.freeze();
    m.unfreeze(["layer.1.**", "classifier.weight"]);
    assert.deepEqual(trainable(m), [
      "layer.1.attention.weight",
      "layer.1.attention.bias",
      "layer.1.output.weight",
      "layer.1.output.bias",
      "layer.1.LayerNorm.weight",
      "layer.1.LayerNorm.bias",
      "classifier.weight",
    ]);
  });
  test("freeze clears existing gradients", () => {
    const m = new Linear(2, 2);
    m.weight.grad = zeros([2, 2]);
    m.freeze(["weight"]);
    assert.equal(m.weight.grad, null);
  });
  test("BatchNorm frozen state: derived from its parameters, or the explicit flag", () => {
    const net = new Sequential(new Conv2d(1, 2, 1), new BatchNorm2d(2), new BatchNorm2d(2, { affine: false }));
    const [bn, bnNoAffine] = [net.at(1) as BatchNorm2d, net.at(2) as BatchNorm2d];
    assert.equal(bn.isFrozen, false);
    net.freeze(["1"]);
    assert.equal(bn.isFrozen, true);
    assert.equal(bnNoAffine.isFrozen, false);
    net.freeze();
    assert.equal(bnNoAffine.isFrozen, true, "freeze() marks a BatchNorm without parameters");
    net.unfreeze();
    assert.equal(bn.isFrozen, false);
    assert.equal(bnNoAffine.isFrozen, false);
    bn.frozen = true;
    assert.equal(bn.isFrozen, true, "explicit flag overrides");
  });
});

describe("stateDict / loadStateDict", () => {
  test("round trip into a freshly initialised model reproduces every tensor", () => {
    manualSeed(1);
    const a = new Sequential(new Conv2d(2, 3, 3), new BatchNorm2d(3), new ReLU());
    (a.at(1) as BatchNorm2d).forward(randn([2, 3, 4, 4])); // move the running statistics
    manualSeed(2);
    const b = new Sequential(new Conv2d(2, 3, 3), new BatchNorm2d(3), new ReLU());
    const sd = a.stateDict();
    assert.deepEqual(
      [...sd.keys()],
      ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"],
    );
    assert.deepEqual(b.loadStateDict(sd), { missing: [], unexpected: [] });
    for (const [k, v] of b.stateDict()) assert.deepEqual(v.toList(), sd.get(k)!.toList(), k);
    assert.equal(b.stateDict().get("1.num_batches_tracked")!.item(), 1);
    // values are copied, not aliased
    assert.notEqual(b.stateDict().get("0.weight")!.data, sd.get("0.weight")!.data);
  });
  test("strict errors list missing, unexpected and shape-mismatched keys", () => {
    const m = new Sequential(new Linear(4, 3), new Linear(3, 2));
    const sd = new Map<string, Tensor>([
      ["0.weight", zeros([3, 4])],
      ["0.bias", zeros([5])],
      ["1.weight", zeros([2, 3])],
      ["2.weight", zeros([1])],
    ]);
    const se = (() => {
      try {
        m.loadStateDict(sd);
      } catch (e) {
        return e;
      }
      assert.fail("loadStateDict did not throw");
    })() as StateDictError;
    assert.ok(se instanceof StateDictError);
    assert.deepEqual(se.missing, ["1.bias"]);
    assert.deepEqual(se.unexpected, ["2.weight"]);
    assert.deepEqual(se.mismatched, [{ key: "0.bias", expected: [3], got: [5] }]);
    for (const s of ["1.bias", "2.weight", "0.bias expected [3] got [5]"])
      assert.match(se.message, new RegExp(s.replace(/[[\]]/g, "\\$&")));
  });
  test("non-strict returns missing/unexpected but still rejects shape mismatches", () => {
    const m = new Linear(2, 2);
    const r = m.loadStateDict({ weight: randn([2, 2]), extra: zeros([1]) }, { strict: false });
    assert.deepEqual(r, { missing: ["bias"], unexpected: ["extra"] });
    assert.throws(() => m.loadStateDict({ weight: zeros([3, 2]) }, { strict: false }), StateDictError);
  });
});

test("train()/eval() propagate to every submodule", () => {
  const m = new Encoder();
  m.eval();
  assert.ok(m.namedModules().every(([, x]) => !x.training));
  m.train();
  assert.ok(m.namedModules().every(([, x]) => x.training));
});

test("a tied model loads its own state dict strictly (aliases are not expected keys)", async () => {
  const { loadPretrained } = await import("../../src/models/index.ts");
  const m = await loadPretrained("test/fixtures/models/gpt2");
  const sd = m.stateDict();
  assert.ok(!sd.has("lm_head.weight"));
  assert.deepEqual(m.loadStateDict(sd), { missing: [], unexpected: [] });
});
