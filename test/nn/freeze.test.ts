// The freezing contract: after optimiser steps in train() mode, frozen parameters and frozen
// BatchNorm statistics are bitwise unchanged, frozen parameters have no gradient and no optimiser
// state, and a frozen BatchNorm computes in inference mode.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import {
  AdaptiveAvgPool2d,
  BatchNorm2d,
  Conv2d,
  Flatten,
  Linear,
  type Module,
  ReLU,
  Sequential,
} from "../../src/nn/index.ts";
import { crossEntropy } from "../../src/ops/index.ts";
import { AdamW, clipGradNorm, type Optimizer, SGD } from "../../src/optim/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randint, randn, type Tensor } from "../../src/tensor/tensor.ts";

setBackend(referenceBackend);

function cnn(): Sequential {
  return new Sequential(
    new Conv2d(3, 4, 3, { padding: 1 }),
    new BatchNorm2d(4),
    new ReLU(),
    new Conv2d(4, 6, 3, { stride: 2 }),
    new BatchNorm2d(6),
    new ReLU(),
    new AdaptiveAvgPool2d(1),
    new Flatten(),
    new Linear(6, 3),
  );
}

/** Exact bytes of a tensor's elements. */
function bytes(t: Tensor): Buffer {
  const d = t.data;
  return Buffer.from(d.buffer, d.byteOffset + t.offset * d.BYTES_PER_ELEMENT, t.size * d.BYTES_PER_ELEMENT);
}

function snapshot(m: Module): Map<string, Buffer> {
  return new Map([...m.stateDict()].map(([k, v]) => [k, Buffer.from(bytes(v))]));
}

function trainSteps(m: Module, opt: Optimizer, steps: number): void {
  m.train();
  for (let s = 0; s < steps; s++) {
    opt.zeroGrad();
    const x = randn([4, 3, 6, 6]);
    const y = randint(0, 3, [4]);
    backward(crossEntropy((m as Sequential).forward(x), y));
    clipGradNorm(m.parameters(), 1.0);
    opt.step();
  }
}

function checkContract(m: Module, frozenPrefixes: string[], opt: Optimizer, before: Map<string, Buffer>): void {
  const frozen = (k: string) => frozenPrefixes.some((p) => k.startsWith(p));
  const after = snapshot(m);
  let changed = 0;
  for (const [k, b] of before) {
    if (frozen(k)) assert.ok(b.equals(after.get(k)!), `frozen ${k} changed`);
    else if (!b.equals(after.get(k)!)) changed++;
  }
  assert.ok(changed > 0, "trainable tensors did change");
  const sd = opt.stateDict();
  const all = opt.paramGroups.flatMap((g) => g.params);
  for (const [k, p] of m.namedParameters()) {
    if (!frozen(k)) {
      assert.ok(p.grad, `${k} has a gradient`);
      assert.ok(opt.state.has(p), `${k} has optimiser state`);
      continue;
    }
    assert.equal(p.requiresGrad, false, k);
    assert.equal(p.grad, null, `frozen ${k} has a gradient`);
    assert.equal(opt.state.has(p), false, `frozen ${k} has optimiser state`);
    assert.equal(sd.state[all.indexOf(p)], undefined, `frozen ${k} is in the optimiser state dict`);
  }
}

describe("freezing is a verified contract", () => {
  for (const [name, make] of [
    ["AdamW (decoupled weight decay)", (ps: Tensor[]) => new AdamW(ps, { lr: 0.05, weightDecay: 0.1 })],
    ["SGD (momentum, L2 weight decay)", (ps: Tensor[]) => new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 })],
  ] as const) {
    test(`first conv block frozen, ${name}`, () => {
      manualSeed(11);
      const m = cnn();
      m.freeze(["0", "1"]);
      // all parameters are handed to the optimiser, frozen ones included
      const opt = make(m.parameters()) as Optimizer;
      const before = snapshot(m);
      trainSteps(m, opt, 3);
      checkContract(m, ["0.", "1."], opt, before);
      // the unfrozen BatchNorm did update its statistics in train()
      assert.equal(m.stateDict().get("4.num_batches_tracked")!.item(), 3);
      assert.equal(m.stateDict().get("1.num_batches_tracked")!.item(), 0);
    });
  }

  test("feature extraction: whole backbone frozen, only the head trains", () => {
    manualSeed(12);
    const m = cnn();
    m.freeze();
    m.unfreeze(["8"]);
    const opt = new AdamW(m.parameters(), { lr: 0.05 });
    const before = snapshot(m);
    trainSteps(m, opt, 2);
    checkContract(m, ["0.", "1.", "3.", "4."], opt, before);
  });

  test("a frozen BatchNorm in train() computes exactly what it computes in eval()", () => {
    manualSeed(13);
    const bn = new BatchNorm2d(3);
    bn.running_mean!.value.data.set([0.5, -1, 2]);
    bn.running_var!.value.data.set([2, 0.5, 3]);
    bn.freeze();
    const x = randn([2, 3, 4, 4]);
    bn.train();
    const yTrain = bn.forward(x);
    bn.eval();
    const yEval = bn.forward(x);
    assert.ok(bytes(yTrain).equals(bytes(yEval)));
    bn.unfreeze();
    bn.train();
    assert.ok(!bytes(bn.forward(x)).equals(bytes(yEval)), "unfrozen: batch statistics again");
  });

  test("explicit frozen flag on a BatchNorm without affine parameters", () => {
    const bn = new BatchNorm2d(2, { affine: false });
    bn.frozen = true;
    const before = Buffer.from(bytes(bn.running_mean!.value));
    bn.train().forward(randn([2, 2, 3, 3]));
    assert.ok(before.equals(bytes(bn.running_mean!.value)));
    assert.equal(bn.num_batches_tracked!.value.item(), 0);
  });
});
