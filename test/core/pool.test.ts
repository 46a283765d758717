// The step scope and storage pool (src/tensor/scope.ts, pool.ts): training steps run inside
// `stepScope` give bitwise the same losses and parameters as without it (a buffer released while
// still in use would be reused, zero-filled, by a later op and change the numbers, or throw);
// tensors that escape keep their values; released tensors throw on read instead of aliasing the
// buffer's next owner; the pool stays bounded over many steps.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward, checkpoint, forwardChain, grad, noGrad } from "../../src/autograd/index.ts";
import { getArchitecture, type PretrainedModel } from "../../src/models/index.ts";
import { add, matmul, mul, relu, reshape, sum, tanh } from "../../src/ops/index.ts";
import { AdamW } from "../../src/optim/index.ts";
import { applyLora } from "../../src/peft/index.ts";
import { ReleasedTensorError } from "../../src/tensor/errors.ts";
import { StoragePool, storagePool } from "../../src/tensor/pool.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { stepScope } from "../../src/tensor/scope.ts";
import { randint, randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { tinyModel } from "../train/helpers.ts";

type Inputs = () => Record<string, Tensor>;

/** `steps` AdamW steps; returns the losses and every parameter's values after them. */
function train(
  build: () => PretrainedModel,
  inputs: Inputs,
  steps: number,
  scoped: boolean,
  releaseActivations = false,
) {
  const model = build();
  model.train();
  const opt = new AdamW(
    model.parameters().filter((p) => p.requiresGrad),
    { lr: 1e-2, weightDecay: 0.01 },
  );
  const fwd = model as unknown as { forward(i: Record<string, Tensor>): { loss?: Tensor } };
  const step = () => {
    const loss = fwd.forward(inputs()).loss as Tensor;
    backward(loss);
    opt.step();
    opt.zeroGrad();
    return loss.item();
  };
  const losses: number[] = [];
  for (let s = 0; s < steps; s++)
    losses.push(scoped ? stepScope(step, { keep: [model, opt], releaseActivations }) : step());
  const state = [...model.stateDict()].map(([k, t]) => [k, t.toFloat64Array()] as const);
  return { losses, state };
}

function sameRun(name: string, build: () => PretrainedModel, inputs: Inputs, steps = 3): void {
  manualSeed(0);
  const a = train(build, inputs, steps, false);
  const hits0 = storagePool.hits;
  assert.ok(a.losses.every(Number.isFinite) && a.losses[0] !== a.losses[steps - 1], `${name}: training did not move`);
  for (const releaseActivations of [false, true]) {
    manualSeed(0);
    const b = train(build, inputs, steps, true, releaseActivations);
    const how = `${name} (releaseActivations ${releaseActivations})`;
    assert.ok(storagePool.hits > hits0, `${how}: the scoped run reused no pooled buffer`);
    assert.deepEqual(b.losses, a.losses, `${how}: losses differ with the step scope`);
    assert.equal(b.state.length, a.state.length);
    for (let i = 0; i < a.state.length; i++) {
      assert.equal(b.state[i][0], a.state[i][0]);
      assert.deepEqual(b.state[i][1], a.state[i][1], `${how}: ${a.state[i][0]} differs with the step scope`);
    }
  }
}

describe("stepScope: training steps are bitwise unchanged", () => {
  test("tiny ResNet (conv, batch norm, residual adds)", () => {
    const x = randn([2, 3, 32, 32]);
    const labels = tensor(new Int32Array([0, 2]));
    sameRun(
      "resnet",
      () =>
        getArchitecture("resnet").create(
          { architecture: "resnet", layers: [1, 1, 1, 1], channels: [8, 16, 16, 32], num_classes: 3 },
          "image-classification",
        ),
      () => ({ pixelValues: x, labels }),
    );
  });

  test("tiny Llama with LoRA", () => {
    const ids = randint(3, 60, [2, 12]);
    sameRun(
      "llama-lora",
      () => {
        const m = tinyModel("llama", "causal-lm");
        applyLora(m, { targets: ["q_proj", "v_proj"], rank: 4, alpha: 8 });
        return m;
      },
      () => ({ inputIds: ids, labels: ids }),
    );
  });

  test("tiny BERT sequence classification (with dropout)", () => {
    const ids = randint(3, 60, [3, 10]);
    const mask = tensor(new Int32Array(30).fill(1), { shape: [3, 10] });
    const labels = tensor(new Int32Array([0, 1, 2]));
    sameRun(
      "bert",
      () =>
        tinyModel("bert", "sequence-classification", { hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1 }),
      () => ({ inputIds: ids, attentionMask: mask, labels }),
    );
  });
});

describe("stepScope: what escapes and what is released", () => {
  test("a returned or kept tensor keeps its values; a released one throws, never aliases", () => {
    const w = tensor([1, 2, 3, 4]);
    const holder: { t: Tensor | null } = { t: null };
    let dead: Tensor | null = null;
    let deadView: Tensor | null = null;
    const out = stepScope(
      () => {
        const a = add(w, 1); // [2,3,4,5]: escapes through `holder`
        holder.t = a;
        dead = mul(w, 10); // not kept
        deadView = reshape(dead, [2, 2]);
        return relu(add(w, -2)); // [0,0,1,2]: the result escapes
      },
      { keep: [holder] },
    );
    // Fill the freed buffers with other values: a kept tensor must not see them.
    stepScope(() => {
      for (let i = 0; i < 8; i++) mul(w, 100 + i);
    });
    assert.deepEqual(out.toList(), [0, 0, 1, 2]);
    assert.deepEqual(holder.t?.toList(), [2, 3, 4, 5]);
    const d = dead as unknown as Tensor;
    assert.equal(d.released, true);
    assert.throws(() => d.toList(), ReleasedTensorError);
    assert.throws(() => (deadView as unknown as Tensor).toList(), ReleasedTensorError);
    assert.throws(() => add(d, 1), ReleasedTensorError);
  });

  test("views keep their base: a kept view holds the storage it shares", () => {
    const w = tensor([1, 2, 3, 4, 5, 6]);
    const v = stepScope(() => reshape(mul(w, 2), [3, 2]));
    stepScope(() => {
      for (let i = 0; i < 4; i++) mul(w, -1);
    });
    assert.deepEqual(v.toList(), [2, 4, 6, 8, 10, 12]);
  });

  test("gradients and optimizer state survive; the step's intermediates do not", () => {
    const init = randn([4, 3]).toList();
    const run = (scoped: boolean) => {
      const p = tensor(init, { shape: [4, 3] }).requiresGrad_();
      const opt = new AdamW([p], { lr: 0.1 });
      let h: Tensor | null = null;
      const step = () => {
        h = relu(p);
        backward(sum(mul(h, h)));
        opt.step();
      };
      const grads: number[][] = [];
      for (let s = 0; s < 3; s++) {
        if (scoped) stepScope(step, { keep: [p, opt] });
        else step();
        grads.push((p.grad as unknown as Tensor).toList()); // accumulated (no zeroGrad): kept across scopes
      }
      return { p: p.toList(), grads, h: h as unknown as Tensor };
    };
    const a = run(false);
    const b = run(true);
    assert.deepEqual(b.grads, a.grads);
    assert.deepEqual(b.p, a.p); // AdamW's moments from earlier scopes were intact
    assert.ok(a.grads[2].some((v) => v !== 0));
    assert.equal(b.h.released, true);
    assert.equal(a.h.released, false);
  });

  test("backward hands dead gradients back at once; checkpoint and grad() agree with the unscoped run", () => {
    const w = randn([16, 16]).requiresGrad_();
    const x = randn([8, 16]);
    const chain = (h: Tensor) => {
      for (let i = 0; i < 6; i++) h = tanh(add(matmul(h, w), h)); // shared w, residual: gradients accumulate
      return h;
    };
    const run = (scoped: boolean, ckpt: boolean, releaseActivations = false) => {
      w.grad = null;
      const body = () => {
        const h = ckpt ? checkpoint((a) => chain(a), x) : chain(x);
        const loss = sum(mul(h, h));
        const [dx] = grad(loss, [w]);
        backward(sum(mul(chain(x), 3)));
        return { dx: dx.toList(), dw: (w.grad as unknown as Tensor).toList() };
      };
      return scoped ? stepScope(body, { keep: [w], releaseActivations }) : body();
    };
    for (const [ckpt, release] of [
      [false, false],
      [true, false],
      [false, true],
      [true, true],
    ]) {
      const ref = run(false, ckpt);
      const hits0 = storagePool.hits;
      storagePool.clear();
      const got = run(true, ckpt, release);
      assert.deepEqual(got, ref, `checkpoint ${ckpt}, releaseActivations ${release}`);
      // The pool started empty: every hit is a gradient released during this very backward.
      assert.ok(storagePool.hits > hits0, "no buffer was reused inside the step");
    }
    assert.ok(!(w.grad as unknown as Tensor).released);
  });

  test("releaseActivations: intermediates are gone after backward, the loss and leaves are not", () => {
    const w = randn([6, 6]).requiresGrad_();
    const x = randn([3, 6]);
    const run = (release: boolean) => {
      storagePool.clear();
      const m0 = storagePool.misses;
      let hidden: Tensor | null = null;
      const loss = stepScope(
        () => {
          let h = x;
          for (let i = 0; i < 8; i++) h = tanh(matmul(h, w));
          hidden = h;
          const l = sum(mul(h, h));
          backward(l);
          if (release) assert.throws(() => (hidden as unknown as Tensor).toList(), ReleasedTensorError);
          else assert.equal((hidden as unknown as Tensor).toList().length, 18);
          return l.item(); // the root survives backward
        },
        { keep: [w], releaseActivations: release },
      );
      const fresh = storagePool.misses - m0;
      const g = (w.grad as unknown as Tensor).toList();
      w.grad = null;
      return { loss, g, fresh };
    };
    const a = run(false);
    const b = run(true);
    assert.equal(b.loss, a.loss);
    assert.deepEqual(b.g, a.g);
    assert.deepEqual(x.toList().length, 18); // an input from outside the scope is untouched
    assert.ok(b.fresh < a.fresh, `releasing activations did not save allocations (${b.fresh} vs ${a.fresh})`);
  });

  test("releaseActivations spares storage that a tensor outside the graph shares (detach)", () => {
    const w = randn([4, 4]).requiresGrad_();
    const w2 = randn([3, 4]).requiresGrad_();
    const x = randn([3, 4]);
    const run = (scoped: boolean) => {
      w.grad = null;
      w2.grad = null;
      const body = () => {
        const y = tanh(matmul(x, w));
        const p = mul(w2, y.detach()); // w2's gradient reads the detached view of y
        backward(add(sum(mul(p, p)), sum(mul(y, y)))); // reverse order: y comes before p
        return [(w.grad as unknown as Tensor).toList(), (w2.grad as unknown as Tensor).toList()];
      };
      return scoped ? stepScope(body, { keep: [w, w2], releaseActivations: true }) : body();
    };
    assert.deepEqual(run(true), run(false));
  });

  test("an exception inside the scope releases nothing", () => {
    const w = tensor([1, 2]);
    let a: Tensor | null = null;
    assert.throws(() =>
      stepScope(() => {
        a = add(w, 1);
        throw new Error("boom");
      }),
    );
    assert.deepEqual((a as unknown as Tensor).toList(), [2, 3]);
  });

  test("pooled memory stays bounded over 200 steps", () => {
    manualSeed(3);
    const model = getArchitecture("resnet").create(
      { architecture: "resnet", layers: [1, 1, 1, 1], channels: [4, 8, 8, 8], num_classes: 2 },
      "image-classification",
    );
    model.train();
    const opt = new AdamW(model.parameters(), { lr: 1e-3 });
    const x = randn([2, 3, 16, 16]);
    const labels = tensor(new Int32Array([0, 1]));
    const fwd = model as unknown as { forward(i: Record<string, Tensor>): { loss?: Tensor } };
    storagePool.clear();
    const bytes: number[] = [];
    let missesAfterWarmup = 0;
    for (let s = 0; s < 200; s++) {
      const m0 = storagePool.misses;
      stepScope(
        () => {
          backward(fwd.forward({ pixelValues: x, labels }).loss as Tensor);
          opt.step();
          opt.zeroGrad();
        },
        { keep: [model, opt] },
      );
      if (s >= 2) missesAfterWarmup += storagePool.misses - m0;
      bytes.push(storagePool.bytes);
    }
    assert.equal(missesAfterWarmup, 0, "steps after the first two still allocated fresh storage");
    assert.ok(bytes[2] > 0);
    assert.equal(Math.max(...bytes.slice(2)), bytes[2], `pool grew: ${bytes[2]} -> ${Math.max(...bytes)} bytes`);
    assert.equal(bytes[199], bytes[2]);
  });
});

describe("forwardChain and carving (inference through a backbone)", () => {
  test("carving: a larger free buffer serves a request up to carveRatio smaller, and goes back whole", () => {
    const pool = new StoragePool();
    const big = new Float32Array(1 << 20); // 4 MiB
    big.fill(7);
    pool.put(big);
    assert.equal(pool.take("float32", 1 << 19), null, "2x smaller: over the default ratio of 1.5");
    pool.carveRatio = 4;
    assert.equal(pool.take("float32", 1 << 15), null, "below 256 KiB: never carved");
    const v = pool.take("int32", 1 << 19) as Int32Array;
    assert.ok(v instanceof Int32Array && v.length === 1 << 19 && v.buffer === big.buffer, "a view over the big buffer");
    assert.ok(
      v.every((e) => e === 0),
      "zero-filled",
    );
    assert.equal(pool.bytes, 0);
    assert.equal(pool.take("float32", 1 << 19), null, "the big buffer is out");
    pool.put(v);
    assert.equal(pool.bytes, big.byteLength, "the whole buffer came back");
    assert.equal(pool.take("float32", 1 << 20), big, "and serves its own size again");
    pool.put(big.subarray(4));
    assert.equal(pool.bytes, 0, "a part of a buffer that was not carved is left to the GC");
  });

  test("under noGrad in a scope, each step's output is released once the next exists", () => {
    const x = randn([64, 64]);
    const steps = [
      (t: Tensor) => tanh(t),
      (t: Tensor) => mul(t, 2),
      (t: Tensor) => reshape(relu(t), [4096]),
      (t: Tensor) => add(t, 1),
    ];
    const plain = steps.reduce((t, f) => f(t), x).toFloat64Array();
    for (const grad of [false, true]) {
      const seen: Tensor[] = [];
      const spy = steps.map((f) => (t: Tensor) => {
        const y = f(t);
        seen.push(y);
        return y;
      });
      const out = stepScope(() => {
        const y = grad ? forwardChain(x.detach().requiresGrad_(true), spy) : noGrad(() => forwardChain(x, spy));
        return { values: y.toFloat64Array(), last: y };
      });
      assert.deepEqual(out.values, plain, `grad=${grad}: same values as the plain loop`);
      assert.deepEqual(out.last.toFloat64Array(), plain, "the result stays readable");
      assert.ok(x.toFloat64Array().length === 4096, "the caller's input is never released");
      for (const [i, t] of seen.slice(0, -1).entries()) {
        if (grad) assert.doesNotThrow(() => t.data, `grad=${grad}: step ${i} kept while a graph is recorded`);
        else assert.throws(() => t.data, ReleasedTensorError, `step ${i}'s output released`);
      }
    }
    // Outside a scope it is the plain loop: nothing is pooled, nothing released.
    const y = noGrad(() => forwardChain(x, steps));
    assert.deepEqual(y.toFloat64Array(), plain);
  });

  test("ResNet pooled features: chained, carved and fused in a scope = bitwise the plain run", () => {
    manualSeed(5);
    const model = getArchitecture("resnet").create(
      { architecture: "resnet", layers: [2, 1, 1, 1], channels: [16, 16, 32, 32], num_classes: 3 },
      "image-classification",
    ) as PretrainedModel & { pooledFeatures(x: Tensor): Tensor };
    model.eval();
    const x = randn([4, 3, 128, 128]); // stem output 1 MiB, layer1 256 KiB: carved from the stem's
    const want = noGrad(() => model.pooledFeatures(x)).toFloat64Array();
    storagePool.clear();
    const c0 = storagePool.carved;
    for (let i = 0; i < 3; i++) {
      const got = stepScope(() => noGrad(() => model.pooledFeatures(x)).toFloat64Array(), { keep: [model, x] });
      assert.deepEqual(got, want, `batch ${i}`);
    }
    assert.ok(storagePool.carved > c0, "some requests were served by carving");
  });
});
