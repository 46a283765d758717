// Optimiser mechanics: parameter groups, frozen parameters, state dict, the fused AdamW hook,
// schedules and gradient clipping.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type Backend, referenceBackend, setBackend, withBackend } from "../../src/backend/index.ts";
import { loadNativeBackend } from "../../src/backend/native.ts";
import { LayerNorm, Linear, Sequential } from "../../src/nn/index.ts";
import {
  Adam,
  type AdamState,
  AdamW,
  clipGradNorm,
  constantWithWarmupLambda,
  cosineWithWarmupLambda,
  getScheduler,
  LRScheduler,
  linearWithWarmupLambda,
  OptimizerError,
  SGD,
  weightDecayGroups,
} from "../../src/optim/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { assertClose } from "../helpers.ts";

setBackend(referenceBackend);
const g = new Generator(42);
const leaf = (shape: number[], dtype: "float32" | "float64" = "float64") =>
  randn(shape, { dtype, generator: g }).requiresGrad_(true);
const setGrad = (p: Tensor, gr?: Tensor) => {
  p.grad = gr ?? randn(p.shape, { dtype: p.dtype, generator: g });
};

describe("parameter groups and frozen parameters", () => {
  test("each group uses its own lr and weight decay", () => {
    const [a, b] = [leaf([3]), leaf([2])];
    const [a0, b0] = [a.toList(), b.toList()];
    const opt = new SGD(
      [
        { params: [a], lr: 0.1 },
        { params: [b], weightDecay: 0.5 },
      ],
      { lr: 0.01 },
    );
    setGrad(a);
    setGrad(b);
    const [ga, gb] = [a.grad!.toList(), b.grad!.toList()];
    opt.step();
    assertClose(
      a,
      a0.map((v, i) => v - 0.1 * ga[i]),
      1e-15,
      "group 0",
    );
    assertClose(
      b,
      b0.map((v, i) => v - 0.01 * (gb[i] + 0.5 * v)),
      1e-15,
      "group 1",
    );
    assert.equal(opt.paramGroups[1].lr, 0.01);
    assert.equal(opt.paramGroups[0].weightDecay, 0);
  });
  test("frozen parameters and parameters without a gradient are skipped and get no state", () => {
    const [a, b, c] = [leaf([2]), leaf([2]), leaf([2])];
    b.requiresGrad = false;
    const opt = new AdamW([a, b, c], { lr: 0.1 });
    setGrad(a);
    setGrad(b); // a stray gradient on a frozen tensor is still ignored
    const [b0, c0] = [b.toList(), c.toList()];
    opt.step();
    assert.deepEqual([opt.state.has(a), opt.state.has(b), opt.state.has(c)], [true, false, false]);
    assert.deepEqual(b.toList(), b0);
    assert.deepEqual(c.toList(), c0, "no gradient: not even weight decay");
    assert.deepEqual(Object.keys(opt.stateDict().state), ["0"]);
    b.requiresGrad = true; // unfreezing later creates state on the next step
    opt.step();
    assert.equal((opt.state.get(b) as AdamState).step, 1);
    assert.equal((opt.state.get(a) as AdamState).step, 2);
  });
  test("zeroGrad clears every gradient; a parameter in two groups is an error", () => {
    const a = leaf([2]);
    const opt = new SGD([a], { lr: 1 });
    setGrad(a);
    opt.zeroGrad();
    assert.equal(a.grad, null);
    assert.throws(() => new SGD([{ params: [a] }, { params: [a] }], { lr: 1 }), OptimizerError);
    assert.throws(() => new SGD([a], { lr: -1 }), /learning rate/);
    assert.throws(() => new SGD([a], { lr: 1, nesterov: true }), /nesterov/);
    assert.throws(() => new Adam([a], { betas: [1, 0.9] }), /betas/);
  });
});

describe("state dict", () => {
  test("snapshot is a copy; restore continues bit-identically", () => {
    const grads = Array.from({ length: 6 }, () => randn([4], { dtype: "float64", generator: g }));
    const run = (p: Tensor, opt: SGD, from: number, to: number) => {
      for (let k = from; k < to; k++) {
        p.grad = grads[k];
        opt.step();
      }
    };
    const p = leaf([4]);
    const q = tensor(Float64Array.from(p.toList())).requiresGrad_(true);
    const opt = new SGD([p], { lr: 0.1, momentum: 0.9, nesterov: true });
    run(p, opt, 0, 3);
    const sd = opt.stateDict();
    const buf = (sd.state[0].momentumBuffer as Tensor).toList();
    run(p, opt, 3, 6);
    assert.deepEqual((sd.state[0].momentumBuffer as Tensor).toList(), buf, "snapshot unchanged by later steps");
    const opt2 = new SGD([q], { lr: 0.1, momentum: 0.9, nesterov: true });
    run(q, opt2, 0, 3);
    const opt3 = new SGD([q], { lr: 0.5 });
    opt3.loadStateDict(sd);
    assert.equal(opt3.paramGroups[0].lr, 0.1, "hyper-parameters restored");
    assert.equal(opt3.paramGroups[0].nesterov, true);
    run(q, opt3, 3, 6);
    assert.deepEqual(q.toList(), p.toList());
  });
  test("mismatched structure or shapes are rejected with the reason", () => {
    const opt = new Adam([leaf([3])]);
    setGrad(opt.paramGroups[0].params[0]);
    opt.step();
    const sd = opt.stateDict();
    assert.throws(
      () => new Adam([{ params: [leaf([3])] }, { params: [leaf([1])] }]).loadStateDict(sd),
      /1 parameter groups in the state dict, the optimizer has 2/,
    );
    assert.throws(
      () => new Adam([leaf([3]), leaf([1])]).loadStateDict(sd),
      /group 0 has 1 parameters in the state dict, 2 in the optimizer/,
    );
    assert.throws(
      () => new Adam([leaf([4])]).loadStateDict(sd),
      /state 'expAvg' of parameter 0 has shape \[3\], the parameter \[4\]/,
    );
  });
});

describe("Adam / AdamW details", () => {
  test("float32 AdamW follows the float64 trajectory closely", () => {
    const p64 = leaf([50]);
    const p32 = tensor(Float32Array.from(p64.toList())).requiresGrad_(true);
    const o64 = new AdamW([p64], { lr: 1e-2 });
    const o32 = new AdamW([p32], { lr: 1e-2 });
    for (let k = 0; k < 20; k++) {
      const gr = randn([50], { dtype: "float64", generator: g });
      p64.grad = gr;
      p32.grad = tensor(Float32Array.from(gr.toList()));
      o64.step();
      o32.step();
    }
    assertClose(p32, p64, 1e-6, "f32 vs f64");
    assert.equal((o32.state.get(p32) as AdamState).expAvg.dtype, "float32");
  });
  test("amsgrad keeps the running maximum of the second moment", () => {
    const p = leaf([5]);
    const opt = new Adam([p], { lr: 0.01, amsgrad: true });
    for (let k = 0; k < 4; k++) {
      setGrad(p, randn([5], { dtype: "float64", generator: g }).mul(k === 0 ? 10 : 0.1));
      opt.step();
    }
    const st = opt.state.get(p) as AdamState;
    const [v, vmax] = [st.expAvgSq.toList(), st.maxExpAvgSq!.toList()];
    assert.ok(vmax.every((m, i) => m >= v[i] && m > 0));
  });
  test("AdamW uses backend().fused.adamw for float32 parameters, batched by step, and matches the TS loop", () => {
    let calls = 0;
    const steps: number[] = [];
    // An independent transcription of the PyTorch formula, as a native kernel would do it.
    const adamw: NonNullable<Backend["fused"]["adamw"]> = (ps, gs, ms, vs, hp) => {
      calls++;
      steps.push(hp.step);
      const bc1 = 1 - hp.beta1 ** hp.step;
      const bc2 = 1 - hp.beta2 ** hp.step;
      ps.forEach((p, j) => {
        for (let i = 0; i < p.length; i++) {
          p[i] *= 1 - hp.lr[j] * hp.weightDecay[j];
          ms[j][i] = hp.beta1 * ms[j][i] + (1 - hp.beta1) * gs[j][i];
          vs[j][i] = hp.beta2 * vs[j][i] + (1 - hp.beta2) * gs[j][i] * gs[j][i];
          p[i] -= (hp.lr[j] / bc1) * (ms[j][i] / (Math.sqrt(vs[j][i] / bc2) + hp.eps));
        }
      });
    };
    const fake: Backend = { ...referenceBackend, name: "fake", fused: { ...referenceBackend.fused, adamw } };
    const mk = () => [leaf([6], "float32"), leaf([3], "float32"), leaf([2], "float64")];
    const a = mk();
    const b = a.map((t) =>
      tensor(t.dtype === "float32" ? Float32Array.from(t.toList()) : Float64Array.from(t.toList())).requiresGrad_(true),
    );
    const oa = new AdamW(a, { lr: 0.05 });
    const ob = new AdamW(b, { lr: 0.05 });
    ob.useFused = false;
    for (let k = 0; k < 4; k++) {
      a.forEach((t, i) => {
        setGrad(t);
        b[i].grad = tensor(
          t.dtype === "float32" ? Float32Array.from(t.grad!.toList()) : Float64Array.from(t.grad!.toList()),
        );
      });
      if (k === 0) a[1].grad = b[1].grad = null; // a[1] starts one step later: two step counts
      withBackend(fake, () => oa.step());
      ob.step();
    }
    for (const [i, t] of a.entries()) assertClose(t, b[i], 1e-6, `param ${i}`);
    assert.ok(calls >= 4);
    assert.ok(steps.includes(4) && steps.includes(3), `fused steps ${steps}`);
    assert.equal((oa.state.get(a[0]) as AdamState).step, 4);
    assert.equal((oa.state.get(a[1]) as AdamState).step, 3);
  });
});

describe("schedules", () => {
  const opt = () =>
    new SGD(
      [
        { params: [leaf([1])], lr: 0.1 },
        { params: [leaf([1])], lr: 0.01 },
      ],
      { lr: 1 },
    );
  test("HF formulas", () => {
    const cw = constantWithWarmupLambda(4);
    assert.deepEqual([0, 1, 4, 100].map(cw), [0, 0.25, 1, 1]);
    const lin = linearWithWarmupLambda(2, 10);
    assert.deepEqual([0, 1, 2, 6, 10, 12].map(lin), [0, 0.5, 1, 0.5, 0, 0]);
    const cos = cosineWithWarmupLambda(0, 10, 1);
    assert.ok(Math.abs(cos(5)) < 1e-15 && Math.abs(cos(10) - 1) < 1e-15, "one full cycle comes back up");
    assert.equal(cosineWithWarmupLambda(2, 10)(0), 0);
  });
  test("each group scales its own base lr; state dict resumes", () => {
    const o = opt();
    const s = getScheduler("linear", o, { numWarmupSteps: 2, numTrainingSteps: 10 });
    assert.deepEqual(s.getLastLr(), [0, 0]);
    s.step();
    s.step();
    s.step();
    const want = [0.1 * (7 / 8), 0.01 * (7 / 8)];
    for (const [i, lr] of s.getLastLr().entries()) assert.ok(Math.abs(lr - want[i]) < 1e-15);
    const o2 = opt();
    const s2 = getScheduler("linear", o2, { numWarmupSteps: 2, numTrainingSteps: 10 });
    s2.loadStateDict(s.stateDict());
    assert.deepEqual(s2.getLastLr(), s.getLastLr());
    s.step();
    s2.step();
    assert.deepEqual(s2.getLastLr(), s.getLastLr());
    assert.throws(() => getScheduler("cosine", opt()), /numTrainingSteps/);
    assert.equal(getScheduler("constant", opt()).getLastLr()[0], 0.1);
    assert.throws(() => new LRScheduler(opt(), [() => 1]), /1 lambdas for 2 parameter groups/);
  });
});

describe("clipGradNorm", () => {
  test("global L2 norm, scaled by maxNorm/(norm+1e-6), returns the pre-clip norm", () => {
    const [a, b] = [leaf([2]), leaf([1])];
    setGrad(a, tensor(new Float64Array([3, 4])));
    setGrad(b, tensor(new Float64Array([12])));
    assert.equal(clipGradNorm([a, b], 1), 13);
    assertClose(
      [...a.grad!.toList(), ...b.grad!.toList()],
      [3, 4, 12].map((v) => (v * 1) / (13 + 1e-6)),
      1e-15,
      "scaled",
    );
    const before = [...a.grad!.toList(), ...b.grad!.toList()];
    assert.ok(Math.abs(clipGradNorm([a, b], 5) - 13 / (13 + 1e-6)) < 1e-15);
    assert.deepEqual([...a.grad!.toList(), ...b.grad!.toList()], before, "below the max: unchanged");
  });
  test("max-abs and p-norms; parameters without a gradient are ignored", () => {
    const [a, b] = [leaf([3]), leaf([2])];
    setGrad(a, tensor(new Float64Array([1, -7, 2])));
    assert.equal(clipGradNorm([a, b], 100, Number.POSITIVE_INFINITY), 7);
    assert.ok(Math.abs(clipGradNorm([a, b], 100, 1) - 10) < 1e-12);
    assert.equal(clipGradNorm([b], 1), 0);
  });
  test("non-finite norms are returned without touching the gradients", () => {
    const a = leaf([3]);
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
      setGrad(a, tensor(new Float64Array([1, bad, 2])));
      const n = clipGradNorm([a], 1);
      assert.ok(Number.isNaN(bad) ? Number.isNaN(n) : n === Number.POSITIVE_INFINITY, `norm ${n}`);
      assert.deepEqual(a.grad!.toList(), [1, bad, 2]);
    }
  });
});

test("weightDecayGroups: matrices decay, biases and norm weights do not, frozen left out", () => {
  const m = new Sequential(new Linear(4, 4), new LayerNorm(4), new Linear(4, 2));
  m.freeze(["2"]);
  const groups = weightDecayGroups(m.namedParameters(), 0.1);
  const sd = m.stateDict();
  assert.deepEqual(
    groups.map((x) => x.weightDecay),
    [0.1, 0],
  );
  assert.deepEqual(groups[0].params, [sd.get("0.weight")]);
  assert.deepEqual(
    groups[1].params,
    ["0.bias", "1.weight", "1.bias"].map((k) => sd.get(k)),
  );
  const opt = new AdamW(groups, { lr: 1e-3 });
  assert.equal(opt.paramGroups[1].weightDecay, 0);
});

test("native backend: fused AdamW matches the TS definition (float32)", (t) => {
  const r = loadNativeBackend();
  if ("error" in r) {
    t.skip(`native addon unavailable: ${r.error}`);
    return;
  }
  const gen = new Generator(9);
  const a = [randn([1000], { generator: gen }), randn([7, 13], { generator: gen })].map((x) => x.requiresGrad_(true));
  const b = a.map((x) => tensor(Float32Array.from(x.toList()), { shape: x.shape }).requiresGrad_(true));
  const oa = new AdamW([{ params: [a[0]] }, { params: [a[1]], lr: 3e-3, weightDecay: 0 }], {
    lr: 1e-2,
    betas: [0.9, 0.95],
  });
  const ob = new AdamW([{ params: [b[0]] }, { params: [b[1]], lr: 3e-3, weightDecay: 0 }], {
    lr: 1e-2,
    betas: [0.9, 0.95],
  });
  ob.useFused = false;
  for (let k = 0; k < 10; k++) {
    for (const [i, x] of a.entries()) {
      x.grad = randn(x.shape, { generator: gen });
      b[i].grad = tensor(Float32Array.from(x.grad.toList()), { shape: x.shape });
    }
    withBackend(r.backend, () => oa.step());
    withBackend(referenceBackend, () => ob.step());
  }
  for (const [i, x] of a.entries()) assertClose(x, b[i], 1e-5, `param ${i}`);
});
