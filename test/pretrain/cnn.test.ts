// The bundled CNN (models/digits-resnet, written by `npm run pretrain:cnn`): it loads with
// loadPretrained, its preprocessing through the image pipeline (PNG -> sharp -> grey to RGB ->
// preprocessor_config.json) gives exactly the pixels pre-training saw, it classifies held-out
// digits 0-4 it never trained on, and a tiny pre-training run twice writes identical bytes.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeMnistFolder } from "../../scripts/make-mnist-folder.ts";
import { digitBatch, digitSplits, pretrainCnn, requireMnist } from "../../scripts/pretrain-cnn.ts";
import { noGrad } from "../../src/autograd/index.ts";
import { backend, initBackend } from "../../src/backend/index.ts";
import { ImageLoader, indexImageFolder, preprocessorFromConfig } from "../../src/data/images/index.ts";
import { loadPretrained } from "../../src/models/index.ts";
import { ResNet } from "../../src/models/resnet.ts";
import { argmax } from "../../src/ops/index.ts";

await initBackend();
const MODEL = fileURLToPath(new URL("../../models/digits-resnet", import.meta.url));
const WEIGHTS = join(MODEL, "model.safetensors");
const tmp = mkdtempSync(join(tmpdir(), "tunekit-cnn-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe("bundled digits-resnet", {
  skip: existsSync(WEIGHTS) ? false : `${WEIGHTS} missing (npm run pretrain:cnn)`,
}, () => {
  test("loads with loadPretrained: torchvision names, every weight used, <= 4 MB, labels 0-4", async () => {
    const warnings: string[] = [];
    const m = await loadPretrained(MODEL, { onWarning: (w) => warnings.push(w) });
    assert.ok(m instanceof ResNet);
    assert.deepEqual(warnings, []);
    assert.deepEqual(m.loadReport.newlyInitialized, []);
    assert.deepEqual(m.loadReport.unexpected, []);
    assert.equal(m.config.num_classes, 5);
    assert.deepEqual(m.config.id2label, { 0: "0", 1: "1", 2: "2", 3: "3", 4: "4" });
    assert.deepEqual(m.config.layers, [1, 1, 1, 1]);
    assert.deepEqual(m.config.channels, [16, 32, 64, 128]);
    const names = m.namedParameters().map(([n]) => n);
    for (const n of [
      "conv1.weight",
      "bn1.weight",
      "layer1.0.conv1.weight",
      "layer2.0.downsample.0.weight",
      "layer4.0.bn2.bias",
      "fc.weight",
      "fc.bias",
    ])
      assert.ok(names.includes(n), n);
    assert.ok(statSync(WEIGHTS).size <= 4 << 20, `${statSync(WEIGHTS).size} bytes`);
    const info = JSON.parse(readFileSync(join(MODEL, "training.json"), "utf8"));
    for (const k of ["seed", "steps", "held_out_accuracy", "seconds", "backend", "threads"]) assert.ok(k in info, k);
  });

  test("classifies 200 held-out digits 0-4 read as PNG files through the image pipeline (> 90%)", async (t) => {
    // The first 40 of each digit's seeded order: inside the 100 per digit pre-training held out.
    const dir = join(tmp, "held-out");
    await writeMnistFolder(requireMnist(), { out: dir, counts: new Map([0, 1, 2, 3, 4].map((d) => [d, 40])), seed: 0 });
    const ds = await indexImageFolder(dir);
    assert.equal(ds.items.length, 200);
    const pre = preprocessorFromConfig(MODEL);
    const m = (await loadPretrained(MODEL, { onWarning: () => {} })) as unknown as ResNet;
    const { heldOut } = digitSplits(requireMnist(), [0, 1, 2, 3, 4], { heldOutPerClass: 100, trainPerClass: 0 });
    const loader = new ImageLoader(ds, { transform: { preprocessor: pre }, batchSize: 50, shuffle: false, workers: 0 });
    let correct = 0;
    let maxDiff = 0;
    for await (const b of loader) {
      // The pipeline's pixels equal what pre-training fed the model for the same images.
      const rows = b.indices.map((i) => {
        const it = ds.items[i];
        return it.label * 100 + Number(basename(it.path, ".png"));
      });
      const [x] = digitBatch(heldOut, rows);
      const a = b.pixelValues.data;
      for (let k = 0; k < x.size; k++) maxDiff = Math.max(maxDiff, Math.abs(a[b.pixelValues.offset + k] - x.data[k]));
      const pred = noGrad(() => argmax(m.forward({ pixelValues: b.pixelValues }).logits, -1));
      pred.toList().forEach((p, i) => {
        if (p === b.labels.data[i]) correct++;
      });
    }
    await loader.close();
    const acc = correct / ds.items.length;
    t.diagnostic(
      `held-out accuracy ${(acc * 100).toFixed(1)}% (200 PNGs); pipeline vs pre-training pixels max diff ${maxDiff.toExponential(1)}`,
    );
    assert.ok(maxDiff < 1e-5, `pixels differ by ${maxDiff}`);
    assert.ok(acc > 0.9, `accuracy ${acc}`);
  });
});

test("a tiny pre-training run twice gives the same bytes", async (t) => {
  const hashes: string[] = [];
  const t0 = Date.now();
  for (const run of ["a", "b"]) {
    const out = join(tmp, `tiny-${run}`);
    const r = await pretrainCnn({
      out,
      steps: 4,
      batchSize: 16,
      trainPerClass: 16,
      heldOutPerClass: 4,
      warmupSteps: 1,
    });
    assert.equal(r.steps, 4);
    assert.equal(r.train_images, 80);
    hashes.push(
      createHash("sha256")
        .update(readFileSync(join(out, "model.safetensors")))
        .digest("hex"),
    );
    assert.equal(
      readFileSync(join(out, "config.json"), "utf8"),
      readFileSync(join(tmp, "tiny-a", "config.json"), "utf8"),
    );
  }
  t.diagnostic(`${backend().name}: ${hashes[0].slice(0, 16)}..., two runs in ${Date.now() - t0} ms`);
  assert.equal(hashes[0], hashes[1]);
});
