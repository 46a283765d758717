// Head-only training of an image classifier: with no augmentation the frozen backbone runs once
// per image (cached pooled features) and training touches only the head; the result equals
// running the frozen backbone (in inference mode) at every step.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import sharp from "sharp";
import { indexImageFolder } from "../../src/data/images/dataset.ts";
import { preprocessorFromConfig } from "../../src/data/images/preprocess.ts";
import type { MobileNetV2 } from "../../src/models/mobilenet_v2.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { evalSource } from "../../src/train/data.ts";
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
  // The cached evaluation still knows which image each row was: its mistakes carry thumbnails.
  assert.deepEqual(cached.run.eval?.mistakes, plain.run.eval?.mistakes);
  for (const m of cached.run.eval?.mistakes ?? []) assert.ok(m.imagePng?.startsWith("iVBORw0KGgo"), `row ${m.index}`);
});

test("image evaluation describes a row with a thumbnail of that very image (24 px -> 96 px, nearest)", async () => {
  const dir = await imageFolder(join(root, "thumbs"), 2, 5);
  const dataset = await indexImageFolder(dir);
  const transform = { preprocessor: preprocessorFromConfig("mobilenet_v2", { size: 32, cropSize: 32 }) };
  const src = evalSource({ dataset, transform, workers: 0 }, { batchSize: 2 });
  for (const i of [0, 3]) {
    const d = await src.describe?.(i);
    const png = Buffer.from(d?.imagePng ?? "", "base64");
    const thumb = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([thumb.info.width, thumb.info.height, thumb.info.channels], [96, 96, 3]);
    const orig = await sharp(dataset.items[i].path).raw().toBuffer();
    // Nearest-neighbour 4x: thumbnail pixel (4y, 4x) is source pixel (y, x).
    for (const [y, x] of [
      [0, 0],
      [5, 17],
      [23, 23],
    ])
      for (let ch = 0; ch < 3; ch++)
        assert.equal(thumb.data[(4 * y * 96 + 4 * x) * 3 + ch], orig[(y * 24 + x) * 3 + ch], `row ${i} (${y},${x})`);
  }
  assert.deepEqual(await src.describe?.(99), {}, "a row outside the dataset has no picture");
});
