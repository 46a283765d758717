// torchvision ResNet. Parity against torchvision 0.14 on resnet18 (5 classes, 2x3x64x64) when its
// 45 MB weights are present (/work/shared/fixtures/models/resnet18, or TUNEKIT_RESNET18_DIR): eval
// and train-mode logits, loss, every gradient norm, three full gradients, running statistics after
// one train-mode forward, eval logits after it, and the BN freeze contract. Always: torchvision's
// names and parameter counts for resnet18/34/50, head replacement, feature/head split.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { backward, noGrad } from "../../src/autograd/index.ts";
import { parseSafetensors } from "../../src/formats/safetensors.ts";
import { rawToTensor } from "../../src/formats/tensors.ts";
import { getArchitecture } from "../../src/models/registry.ts";
import type { ResNet } from "../../src/models/resnet.ts";
import "../../src/models/resnet.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";

const DIR = process.env.TUNEKIT_RESNET18_DIR ?? "/work/shared/fixtures/models/resnet18";
const WEIGHTS = join(DIR, "model.safetensors");
const present = existsSync(WEIGHTS) && existsSync(join(DIR, "reference.json"));
const skip = present
  ? false
  : `resnet18 weights (45 MB) not found at ${WEIGHTS}; set TUNEKIT_RESNET18_DIR to run the parity test`;

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flatMap(flat) : [x as number]);
const maxAbs = (a: Tensor, b: number[]) => {
  const v = a.toList();
  assert.equal(v.length, b.length);
  return v.reduce((m, x, i) => Math.max(m, Number.isNaN(x) ? Infinity : Math.abs(x - b[i])), 0);
};
const l2 = (t: Tensor) => Math.sqrt(t.toList().reduce((a, v) => a + v * v, 0));
const create = (raw: Record<string, unknown>, skipInit = false) =>
  getArchitecture(String(raw.architecture)).create(raw, "image-classification", "config.json", { skipInit }) as ResNet;

describe("resnet18 parity (torchvision 0.14)", { skip }, () => {
  // biome-ignore lint/suspicious/noExplicitAny: JSON fixture
  const ref = present ? (JSON.parse(readFileSync(join(DIR, "reference.json"), "utf8")) as any) : null;
  const load = () => {
    const m = create(JSON.parse(readFileSync(join(DIR, "config.json"), "utf8")), true);
    const st = parseSafetensors(new Uint8Array(readFileSync(WEIGHTS)), WEIGHTS);
    m.loadStateDict(new Map([...st.tensors].map(([k, v]) => [k, rawToTensor(v, k, WEIGHTS)])));
    return m;
  };
  const pixels = () => tensor(Float32Array.from(flat(ref.inputs.pixel_values)), { shape: [2, 3, 64, 64] });

  test("logits, loss, gradients, running statistics", () => {
    const model = load();
    const x = pixels();
    model.eval();
    const le = noGrad(() => model.forward({ pixelValues: x }).logits);
    model.train();
    const out = model.forward({ pixelValues: x, labels: tensor(Int32Array.from(ref.labels)) });
    backward(out.loss as Tensor);
    const de = maxAbs(le, flat(ref.logits_eval));
    const dt = maxAbs(out.logits, flat(ref.logits_train));
    const lr = Math.abs((out.loss as Tensor).item() - ref.loss_train) / ref.loss_train;
    console.log(
      `resnet18 logits max abs diff: eval ${de.toExponential(2)}, train ${dt.toExponential(2)}; loss rel ${lr.toExponential(2)}`,
    );
    assert.ok(de < 1e-4 && dt < 1e-4 && lr < 1e-5, `eval ${de}, train ${dt}, loss ${lr}`);

    let worst = 0;
    for (const [name, p] of model.namedParameters()) {
      const want = ref.grad_norms_train[name] as number;
      const got = p.grad ? l2(p.grad) : 0;
      if (want < 1e-5) {
        assert.ok(Math.abs(got - want) < 1e-5, `${name}: noise-level grad norm ${got} vs ${want}`);
        continue;
      }
      worst = Math.max(worst, Math.abs(got - want) / want);
      assert.ok(Math.abs(got - want) / want < 1e-4, `${name}: grad norm ${got} vs ${want}`);
    }
    console.log(`resnet18 grad norms worst rel diff ${worst.toExponential(2)}`);
    const params = new Map(model.namedParameters());
    for (const [name, g] of Object.entries(ref.full_grads_train as Record<string, { grad: unknown }>)) {
      const want = flat(g.grad);
      const scale = Math.max(...want.map(Math.abs));
      const d = maxAbs(params.get(name)?.grad as Tensor, want);
      console.log(`resnet18 full grad ${name}: max abs diff ${d.toExponential(2)} (largest ${scale.toPrecision(3)})`);
      assert.ok(d <= 1e-4 * scale, `${name}: ${d}`);
    }
    const bufs = new Map(model.namedBuffers().map(([k, b]) => [k, b.value]));
    for (const [name, v] of Object.entries(ref.bn_buffers_after_train_forward as Record<string, unknown>)) {
      const want = flat(v);
      const d = maxAbs(bufs.get(name) as Tensor, want) / Math.max(1, ...want.map(Math.abs));
      assert.ok(d < 1e-5, `${name}: ${d}`);
    }
    model.eval();
    const da = maxAbs(
      noGrad(() => model.forward({ pixelValues: x }).logits),
      flat(ref.logits_eval_after_train_forward),
    );
    assert.ok(da < 1e-4, `eval after train forward: ${da}`);
  });

  test("frozen BN in train(): running statistics used, buffers bitwise unchanged", () => {
    const model = load();
    const before = model.namedBuffers().map(([k, b]) => [k, b.value.toList()] as const);
    model.freeze();
    model.unfreeze(["fc"]);
    model.train();
    const d = maxAbs(model.forward({ pixelValues: pixels() }).logits, flat(ref.logits_eval));
    assert.ok(d < 1e-4, `frozen train() logits vs eval: ${d}`);
    const now = new Map(model.namedBuffers().map(([k, b]) => [k, b.value.toList()]));
    for (const [k, v] of before) assert.deepEqual(now.get(k), v, k);
  });
});

describe("resnet structure", () => {
  test("torchvision parameter counts and names (resnet18/34/50)", () => {
    const counts: Record<string, number> = { resnet18: 11689512, resnet34: 21797672, resnet50: 25557032 };
    for (const [arch, n] of Object.entries(counts)) {
      const m = create({ architecture: arch }, true);
      assert.equal(m.numParameters(), n, arch);
      const keys = [...m.stateDict().keys()];
      assert.ok(
        keys.includes("layer2.0.downsample.0.weight") && keys.includes("layer2.0.downsample.1.running_var"),
        arch,
      );
      assert.equal(keys.includes("layer1.0.downsample.0.weight"), arch === "resnet50", arch);
      assert.ok(keys.includes("bn1.num_batches_tracked") && keys.includes("fc.bias"));
    }
    assert.ok(create({ architecture: "resnet50" }, true).stateDict().has("layer4.2.conv3.weight"));
  });

  test("forward, feature/head split and replaceHead on a random resnet18", () => {
    manualSeed(7);
    const m = create({ architecture: "resnet18", num_classes: 4 });
    assert.deepEqual(m.config.id2label, { 0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2", 3: "LABEL_3" });
    m.eval();
    const x = randn([1, 3, 32, 32]);
    const feats = noGrad(() => m.pooledFeatures(x));
    assert.deepEqual([...feats.shape], [1, 512]);
    assert.equal(
      maxAbs(
        noGrad(() => m.forward({ pixelValues: x }).logits),
        m.classify(feats).logits.toList(),
      ),
      0,
    );
    m.replaceHead(2, ["neg", "pos"]);
    assert.deepEqual([...m.fc.weight.shape], [2, 512]);
    assert.deepEqual(m.config.label2id, { neg: 0, pos: 1 });
    assert.equal(m.config.num_classes, 2);
    assert.deepEqual([...m.classify(feats).logits.shape], [1, 2]);
  });

  test("labels from id2label win over num_classes (the loader's new-head path)", () => {
    const m = create({ architecture: "resnet18", num_classes: 1000, id2label: { 0: "a", 1: "b", 2: "c" } }, true);
    assert.equal(m.numClasses, 3);
    assert.equal(m.config.num_classes, 3);
  });
});
