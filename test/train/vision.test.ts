// Head-only training of an image classifier: with no augmentation the frozen backbone runs once
// per image (cached pooled features) and training touches only the head; the result equals
// running the frozen backbone (in inference mode) at every step.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { indexImageFolder } from "../../src/data/images/dataset.ts";
import { preprocessorFromConfig } from "../../src/data/images/preprocess.ts";
import type { MobileNetV2 } from "../../src/models/mobilenet_v2.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { Trainer } from "../../src/train/index.ts";
import { imageFolder } from "../helpers.ts";
import { tinyModel } from "./helpers.ts";

const root = mkdtempSync(join(tmpdir(), "tunekit-vision-"));
after(() => rmSync(root, { recursive: true, force: true }));

function model(): MobileNetV2 & { calls: number } {
  const m = tinyModel("mobilenet_v2", "image-classification", {}, 7) as MobileNetV2 & { calls: number };
  m.replaceHead(2, ["blue", "red"]);
  m.calls = 0;
  const orig = m.pooledFeatures.bind(m);
  m.pooledFeatures = (x: Tensor) => {
    m.calls += x.shape[0];
    return orig(x);
  };
  return m;
}

test("head strategy caches backbone features and equals the uncached run", async () => {
  await imageFolder(join(root, "train"), 6, 1);
  await imageFolder(join(root, "eval"), 3, 2);
  const transform = { preprocessor: preprocessorFromConfig("mobilenet_v2", { size: 32, cropSize: 32 }) };
  const train = { dataset: await indexImageFolder(join(root, "train")), transform, workers: 0 };
  const evalData = { dataset: await indexImageFolder(join(root, "eval")), transform, workers: 0 };
  const fit = async (cacheFeatures: boolean) => {
    const m = model();
    const run = await new Trainer({
      model: m,
      train,
      eval: evalData,
      strategy: { name: "head", cacheFeatures },
      optimizer: { lr: 1e-2 },
      epochs: 3,
      batchSize: 4,
      quiet: true,
      seed: 3,
    }).fit();
    return { m, run };
  };
  const cached = await fit(true);
  assert.equal(cached.m.calls, 12 + 6, "the backbone runs once per train and eval image");
  assert.equal(cached.run.record.freezeAudit?.trainable, 2 * cached.m.numFeatures + 2);
  assert.equal(cached.run.record.freezeAudit?.verified, true);
  const plain = await fit(false);
  assert.ok(plain.m.calls > 3 * 12, "uncached: the backbone runs every step");
  const a = cached.m.classifier[1].weight.toFloat64Array();
  const b = plain.m.classifier[1].weight.toFloat64Array();
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  assert.ok(d < 1e-5, `cached and uncached heads differ by ${d}`);
  const la = cached.run.metrics.filter((r) => r.split === "train").map((r) => r.loss as number);
  const lb = plain.run.metrics.filter((r) => r.split === "train").map((r) => r.loss as number);
  for (const [i, x] of la.entries()) assert.ok(Math.abs(x - lb[i]) < 1e-5);
  assert.ok(cached.run.eval?.confusion);
});
