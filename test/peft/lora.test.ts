// LoRA: layer swap and names, trainable-parameter counts against the closed form r*(in+out),
// freezing (only LoRA + modules_to_save move), zero-init equivalence, merge/unmerge, patterns,
// rsLoRA, all-linear, globs/regexes, Conv1D and half-precision bases.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { backward } from "../../src/autograd/index.ts";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import { Linear, Module, Parameter } from "../../src/nn/index.ts";
import * as F from "../../src/ops/index.ts";
import { applyLora, findTargets, LoRALinear, minimalTargetNames, patternValue } from "../../src/peft/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { assertClose } from "../helpers.ts";
import { baseCount, CLASSES, D, input, TinyClassifier } from "./tiny-model.ts";

setBackend(referenceBackend);

function bytes(t: Tensor): Buffer {
  const d = t.data;
  return Buffer.from(d.buffer, d.byteOffset + t.offset * d.BYTES_PER_ELEMENT, t.size * d.BYTES_PER_ELEMENT);
}

/** Fills every LoRA factor with random values (B starts at zero, which would hide bugs). */
function randomizeLora(model: Module, seed = 3): void {
  const g = new Generator(seed);
  for (const [name, p] of model.namedParameters())
    if (/lora_[AB]/.test(name)) p.data.set(F.mul(randn(p.shape, { generator: g }), 0.2).data);
}

function exactEqual(a: Tensor, b: Tensor, what: string): void {
  const x = a.toFloat64Array();
  const y = b.toFloat64Array();
  assert.equal(x.length, y.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i}: ${x[i]} vs ${y[i]}`);
}

describe("applyLora: names and counts", () => {
  test("targets by suffix; names stay HF/PEFT-like", () => {
    const m = new TinyClassifier();
    const lora = applyLora(m, { targets: ["q_proj", "v_proj"], rank: 4, alpha: 8 });
    assert.deepEqual(
      [...lora.layers.keys()],
      [
        "model.layers.0.self_attn.q_proj",
        "model.layers.0.self_attn.v_proj",
        "model.layers.1.self_attn.q_proj",
        "model.layers.1.self_attn.v_proj",
      ],
    );
    const names = m.namedParameters().map(([n]) => n);
    for (const n of [
      "model.layers.0.self_attn.q_proj.weight",
      "model.layers.0.self_attn.q_proj.bias",
      "model.layers.0.self_attn.q_proj.lora_A.weight",
      "model.layers.0.self_attn.q_proj.lora_B.weight",
      "model.layers.1.self_attn.v_proj.lora_B.weight",
    ])
      assert.ok(names.includes(n), n);
    const q = m.model.layers[0].self_attn.q_proj as unknown as LoRALinear;
    assert.ok(q instanceof LoRALinear);
    assert.deepEqual([...q.lora_A.weight.shape], [4, D]);
    assert.deepEqual([...q.lora_B.weight.shape], [D, 4]);
  });

  test("trainable params = sum r*(in+out) over targets (+ modules_to_save); PEFT's summary line", () => {
    const m = new TinyClassifier();
    const r = 4;
    const lora = applyLora(m, { targets: ["q_proj", "v_proj"], rank: r, alpha: 8, modulesToSave: ["classifier"] });
    const loraParams = 2 * 2 * r * (D + D);
    const head = D * CLASSES + CLASSES;
    assert.equal(m.numParameters({ trainable: true }), loraParams + head);
    assert.equal(m.numParameters(), baseCount() + loraParams);
    // PEFT's ModulesToSaveWrapper keeps a copy of the head, so PEFT's "all params" counts it twice.
    const all = baseCount() + loraParams + head;
    assert.deepEqual(lora.trainableParameters(), { trainable: loraParams + head, all });
    const pct = ((100 * (loraParams + head)) / all).toFixed(4);
    assert.equal(
      lora.printTrainableParameters(false),
      `trainable params: ${loraParams + head} || all params: ${all.toLocaleString("en-US")} || trainable%: ${pct}`,
    );
    assert.match(
      lora.printTrainableParameters(false),
      /^trainable params: \d+ \|\| all params: \d{1,3}(,\d{3})* \|\| trainable%: \d+\.\d{4}$/,
    );
  });

  test("rank_pattern / alpha_pattern (PEFT regex-suffix keys) and rsLoRA scaling", () => {
    const m = new TinyClassifier();
    const lora = applyLora(m, {
      targets: ["q_proj", "v_proj"],
      rank: 4,
      alpha: 8,
      rankPattern: { v_proj: 2, "model.layers.1.self_attn.q_proj": 8 },
      alphaPattern: { "layers\\.0\\.self_attn\\.q_proj": 32 },
    });
    const L = (p: string) => lora.layers.get(p) as LoRALinear;
    assert.equal(L("model.layers.0.self_attn.q_proj").rank, 4);
    assert.equal(L("model.layers.0.self_attn.q_proj").scaling, 32 / 4);
    assert.equal(L("model.layers.0.self_attn.v_proj").rank, 2);
    assert.equal(L("model.layers.0.self_attn.v_proj").scaling, 8 / 2);
    assert.equal(L("model.layers.1.self_attn.q_proj").rank, 8);
    assert.equal(L("model.layers.1.self_attn.q_proj").scaling, 1);
    assert.equal(m.numParameters({ trainable: true }), (4 + 2 + 8 + 2) * (D + D));
    // A key matches only on a dot boundary: "proj" does not match "q_proj".
    assert.equal(patternValue({ proj: 99 }, "model.layers.0.self_attn.q_proj", 1), 1);
    assert.equal(patternValue({ "self_attn.q_proj": 5 }, "model.layers.0.self_attn.q_proj", 1), 5);

    const rs = applyLora(new TinyClassifier(), { targets: ["q_proj"], rank: 16, alpha: 8, useRslora: true });
    for (const l of rs.layers.values()) assert.equal(l.scaling, 8 / Math.sqrt(16));
  });

  test("all-linear wraps every Linear except the output head (classifier / lm_head)", () => {
    const m = new TinyClassifier();
    const lora = applyLora(m, { targets: "all-linear", rank: 2 });
    assert.equal(lora.layers.size, 2 * 6);
    assert.ok(!lora.layers.has("classifier"));
    assert.ok(lora.layers.has("model.layers.1.mlp.2"), "Sequential children are replaced too");
    assert.ok(m.classifier instanceof Linear && !(m.classifier instanceof LoRALinear));

    class Lm extends Module {
      body = new Linear(4, 4);
      lm_head = new Linear(4, 10);
    }
    const lm = new Lm();
    assert.deepEqual(
      findTargets(lm, { targetModules: "ALL-LINEAR" }).map(([p]) => p),
      ["body"],
    );
  });

  test("globs, a regex string, exclude_modules, layers_to_transform, modules_to_save never wrapped", () => {
    const paths = (spec: Parameters<typeof findTargets>[1]) => findTargets(new TinyClassifier(), spec).map(([p]) => p);
    assert.deepEqual(paths({ targetModules: ["layers.*.self_attn.o_proj"] }), []);
    assert.deepEqual(paths({ targetModules: ["model.layers.*.self_attn.o_proj"] }), [
      "model.layers.0.self_attn.o_proj",
      "model.layers.1.self_attn.o_proj",
    ]);
    assert.deepEqual(paths({ targetModules: ["**.mlp.0"] }), ["model.layers.0.mlp.0", "model.layers.1.mlp.0"]);
    assert.deepEqual(paths({ targetModules: ".*layers\\.1\\.self_attn\\.(q|k)_proj" }), [
      "model.layers.1.self_attn.q_proj",
      "model.layers.1.self_attn.k_proj",
    ]);
    assert.deepEqual(paths({ targetModules: ["q_proj"], excludeModules: ["model.layers.0.self_attn.q_proj"] }), [
      "model.layers.1.self_attn.q_proj",
    ]);
    assert.deepEqual(paths({ targetModules: ["q_proj"], layersToTransform: [1], layersPattern: "layers" }), [
      "model.layers.1.self_attn.q_proj",
    ]);
    assert.deepEqual(paths({ targetModules: ["classifier", "q_proj"], modulesToSave: ["classifier"] }), [
      "model.layers.0.self_attn.q_proj",
      "model.layers.1.self_attn.q_proj",
    ]);
    assert.throws(() => applyLora(new TinyClassifier(), { targets: ["nope"] }), /target modules \["nope"\] not found/);
    assert.throws(
      () => applyLora(new TinyClassifier(), { targets: ["self_attn"] }),
      /'model\.layers\.0\.self_attn' \(SelfAttention\).*not linear/,
    );
    const twice = new TinyClassifier();
    applyLora(twice, { targets: ["q_proj"] });
    assert.throws(() => applyLora(twice, { targets: ["v_proj"] }), /already has a LoRA adapter/);
  });

  test("minimal target_modules names: the shortest suffix that selects no other module", () => {
    const all = new TinyClassifier().namedModules().map(([p]) => p);
    assert.deepEqual(minimalTargetNames(["model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"], all), [
      "q_proj",
    ]);
    assert.deepEqual(minimalTargetNames(["model.layers.0.self_attn.q_proj"], all), ["0.self_attn.q_proj"]);
    assert.deepEqual(minimalTargetNames(["model.layers.0.mlp.0", "model.layers.1.mlp.0"], all), ["mlp.0"]);
    for (const targets of [
      ["model.layers.0.self_attn.q_proj"],
      ["model.layers.1.mlp.2", "model.layers.0.self_attn.v_proj"],
    ]) {
      const names = minimalTargetNames(targets, all);
      assert.deepEqual(
        findTargets(new TinyClassifier(), { targetModules: names })
          .map(([p]) => p)
          .sort(),
        [...targets].sort(),
        names.join(),
      );
    }
  });
});

describe("LoRA training semantics", () => {
  test("with B = 0 the output equals the base model exactly", () => {
    const base = new TinyClassifier(1);
    const x = input();
    const ref = base.forward(x);
    const m = new TinyClassifier(1);
    applyLora(m, { targets: "all-linear", rank: 4, alpha: 16, modulesToSave: ["classifier"] });
    exactEqual(m.forward(x), ref, "logits");
  });

  test("only LoRA factors and modules_to_save get gradients; the base stays bitwise unchanged after AdamW steps", () => {
    const m = new TinyClassifier(2);
    applyLora(m, {
      targets: ["q_proj", "k_proj", "v_proj", "o_proj"],
      rank: 4,
      alpha: 8,
      dropout: 0.1,
      modulesToSave: ["classifier"],
      generator: new Generator(5),
    });
    randomizeLora(m);
    const frozen = m.namedParameters().filter(([, p]) => !p.requiresGrad);
    const before = new Map(frozen.map(([n, p]) => [n, Buffer.from(bytes(p))]));
    const trainable = m
      .namedParameters()
      .filter(([, p]) => p.requiresGrad)
      .map(([n]) => n);
    assert.ok(
      trainable.every((n) => /\.lora_[AB]\.weight$/.test(n) || n.startsWith("classifier.")),
      trainable.join(", "),
    );
    const state = new Map<Parameter, { m: Float64Array; v: Float64Array }>();
    for (let step = 1; step <= 3; step++) {
      m.zeroGrad();
      const logits = m.forward(input(step));
      const loss = F.crossEntropy(logits, tensor([0, 2], { dtype: "int32" }));
      backward(loss);
      for (const [n, p] of m.namedParameters()) {
        if (!p.requiresGrad) {
          assert.equal(p.grad, null, `${n} is frozen but has a gradient`);
          continue;
        }
        assert.ok(p.grad, `${n} has no gradient`);
        adamw(p, state, step);
      }
    }
    assert.equal(state.size, trainable.length, "optimizer state only for trainable parameters");
    for (const [n, p] of frozen) assert.ok(bytes(p).equals(before.get(n) as Buffer), `${n} changed`);
  });

  test("merge (and unload) gives the same logits within 1e-5; unmerge restores the weights within 1e-6", () => {
    const m = new TinyClassifier(3);
    const x = input();
    const weightsBefore = new Map(m.namedParameters().map(([n, p]) => [n, p.toFloat64Array()]));
    const lora = applyLora(m, { targets: "all-linear", rank: 4, alpha: 16 });
    randomizeLora(m);
    m.eval();
    const unmerged = m.forward(x);
    const merged = lora.merge();
    assert.equal(lora.state, "merged");
    assert.ok(
      merged.model.layers[0].self_attn.q_proj instanceof Linear &&
        !(merged.model.layers[0].self_attn.q_proj instanceof LoRALinear),
    );
    assert.ok(
      !merged.namedParameters().some(([n]) => n.includes("lora_")),
      "no LoRA parameters after merge-and-unload",
    );
    assert.deepEqual(
      merged.namedParameters().map(([n]) => n),
      [...weightsBefore.keys()],
      "same names as the base model",
    );
    assertClose(merged.forward(x), unmerged, 1e-5, "merged logits");
    let changed = false;
    for (const [n, p] of merged.namedParameters())
      if (p.toFloat64Array().some((v, i) => v !== weightsBefore.get(n)?.[i])) changed = true;
    assert.ok(changed, "merging changed the weights");
    lora.unmerge();
    assert.ok(m.model.layers[0].self_attn.q_proj instanceof LoRALinear);
    for (const [n, p] of m.namedParameters()) {
      const w = weightsBefore.get(n);
      if (w) assertClose(p.toFloat64Array(), w, 1e-6, `unmerged ${n}`);
    }
    assertClose(m.forward(x), unmerged, 1e-6, "logits after unmerge");
    const plain = lora.unload();
    assert.ok(
      plain.model.layers[1].mlp.at(2) instanceof Linear && !(plain.model.layers[1].mlp.at(2) instanceof LoRALinear),
    );
    assert.equal(plain.numParameters(), baseCount());
  });

  test("LoRALinear.fromBase: forward is base(x) + dropout(x) A^T B^T * scaling; merge() in place", () => {
    const g = new Generator(11);
    const base = new Linear(5, 3, { generator: g });
    const w0 = base.weight.toFloat64Array();
    const l = LoRALinear.fromBase(base, { rank: 2, alpha: 3, generator: g });
    assert.equal(l.scaling, 1.5);
    l.lora_B.weight.data.set(randn([3, 2], { generator: g }).data);
    const x = randn([4, 5], { generator: g });
    const y = l.forward(x).toFloat64Array();
    const [X, W, b, A, B] = [x, base.weight, base.bias as Tensor, l.lora_A.weight, l.lora_B.weight].map((t) =>
      t.toFloat64Array(),
    );
    const want = new Float64Array(12);
    for (let n = 0; n < 4; n++) {
      for (let o = 0; o < 3; o++) {
        let s = b[o];
        for (let i = 0; i < 5; i++) s += X[n * 5 + i] * W[o * 5 + i];
        let d = 0;
        for (let k = 0; k < 2; k++) {
          let h = 0;
          for (let i = 0; i < 5; i++) h += X[n * 5 + i] * A[k * 5 + i];
          d += h * B[o * 2 + k];
        }
        want[n * 3 + o] = s + 1.5 * d;
      }
    }
    assertClose(y, want, 1e-5, "LoRALinear forward");
    l.merge();
    assert.equal(l.merged, true);
    assertClose(l.forward(x).toFloat64Array(), want, 1e-5, "merged forward");
    l.unmerge();
    assertClose(l.weight.toFloat64Array(), w0, 1e-6, "unmerged weight");
    assert.throws(() => LoRALinear.fromBase(l), /already has a LoRA adapter/);
  });

  test("GPT-2 Conv1D (weight (in, out)) is wrapped with fan_in_fan_out semantics", () => {
    class Conv1D extends Module {
      weight: Parameter;
      bias: Parameter;
      constructor(inF: number, outF: number, g: Generator) {
        super();
        this.weight = new Parameter(randn([inF, outF], { generator: g }));
        this.bias = new Parameter(randn([outF], { generator: g }));
      }
      forward(x: Tensor): Tensor {
        return F.linear(x, F.transpose(this.weight), this.bias); // as models/common.ts Conv1D
      }
    }
    const g = new Generator(4);
    const c = new Conv1D(6, 4, g);
    const x = randn([2, 6], { generator: g });
    const ref = c.forward(x);
    const l = LoRALinear.fromBase(c, { rank: 2, alpha: 2, generator: g });
    assert.equal(l.fanInFanOut, true);
    assert.deepEqual([l.inFeatures, l.outFeatures], [6, 4]);
    exactEqual(l.forward(x), ref, "zero-init Conv1D");
    l.lora_B.weight.data.set(randn([4, 2], { generator: g }).data);
    const y = l.forward(x);
    l.merge();
    assertClose(c.forward(x), y, 1e-5, "merged Conv1D through its own forward");
  });

  test("a bf16 base weight is frozen storage; forward and merge work", () => {
    const m = new TinyClassifier(4);
    const lora = applyLora(m, { targets: ["q_proj", "v_proj"], rank: 2, baseDtype: "bfloat16" });
    const q = lora.layers.get("model.layers.0.self_attn.q_proj") as LoRALinear;
    assert.equal(q.weight.dtype, "bfloat16");
    assert.equal(q.weight.requiresGrad, false);
    randomizeLora(m);
    const x = input();
    const y = m.forward(x);
    // In-place merge (the layers stay LoRALinear): a plain Linear with a bf16 weight hits the
    // reference matmul's half handling, which widens only its first operand.
    for (const l of lora.layers.values()) l.merge();
    assertClose(m.forward(x), y, 2e-2, "bf16 merged logits");
    for (const l of lora.layers.values()) l.unmerge();
    assertClose(m.forward(x), y, 2e-2, "bf16 unmerged logits");
  });
});

/** A plain AdamW update (lr 1e-2, wd 0.01) on one parameter. */
function adamw(p: Parameter, state: Map<Parameter, { m: Float64Array; v: Float64Array }>, step: number): void {
  const g = (p.grad as Tensor).toFloat64Array();
  const s = state.get(p) ?? { m: new Float64Array(g.length), v: new Float64Array(g.length) };
  state.set(p, s);
  const [lr, b1, b2, eps, wd] = [1e-2, 0.9, 0.999, 1e-8, 0.01];
  for (let i = 0; i < g.length; i++) {
    s.m[i] = b1 * s.m[i] + (1 - b1) * g[i];
    s.v[i] = b2 * s.v[i] + (1 - b2) * g[i] * g[i];
    const mh = s.m[i] / (1 - b1 ** step);
    const vh = s.v[i] / (1 - b2 ** step);
    p.data[i] = p.data[i] * (1 - lr * wd) - (lr * mh) / (Math.sqrt(vh) + eps);
  }
}
