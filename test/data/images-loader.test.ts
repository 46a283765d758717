/** The worker-thread loader (same batches as one thread, resumable, never keeps the process alive) and the feature cache. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  FeatureCache,
  hashImageFile,
  type ImageBatch,
  type ImageDataError,
  type ImageDataset,
  ImageLoader,
  type ImageLoaderOptions,
  indexImageFolder,
  preprocessorFromConfig,
} from "../../src/data/images/index.ts";
import { tempDir, writePattern, writeSolid } from "../fixtures/data/images/make.ts";

const tmp = tempDir();
after(() => tmp.cleanup());
let ds: ImageDataset;

before(async () => {
  const jobs = [];
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < 5; i++)
      jobs.push(writePattern(join(tmp.dir, "ds", `c${c}`, `${i}.png`), 40 + 3 * i + c, 36 + 2 * c));
  await Promise.all(jobs);
  ds = await indexImageFolder(join(tmp.dir, "ds"));
});

const opts = (extra: Partial<ImageLoaderOptions> = {}): ImageLoaderOptions => ({
  transform: {
    preprocessor: preprocessorFromConfig("resnet18", { size: 28, cropSize: 24 }),
    augment: { rotation: 10, colorJitter: { brightness: 0.3, hue: 0.05 }, randomErasing: { p: 0.5 } },
  },
  batchSize: 4,
  seed: 11,
  workers: 0,
  ...extra,
});

/** Plain copies of a loader's batches for `epochs` epochs (or `limit` batches). */
async function take(l: ImageLoader, epochs: number, limit = Number.POSITIVE_INFINITY) {
  const out: { px: number[]; labels: number[]; labelShape: number[]; indices: number[] }[] = [];
  for (let e = 0; e < epochs; e++) {
    for await (const b of l as AsyncIterable<ImageBatch>) {
      out.push({
        px: [...b.pixelValues.toFloat32Array()],
        labels: b.labels.toList(),
        labelShape: [...b.labels.shape],
        indices: b.indices,
      });
      if (out.length >= limit) return out;
    }
  }
  return out;
}

describe("ImageLoader", () => {
  test("worker threads give exactly the single-threaded batches (augmentation + MixUp/CutMix, 2 epochs)", async () => {
    const mix = { mixupAlpha: 0.2, cutmixAlpha: 1 };
    const ref = await take(new ImageLoader(ds, opts({ mix })), 2);
    const pooled = new ImageLoader(ds, opts({ mix, workers: 2, prefetch: 3 }));
    try {
      const got = await take(pooled, 2);
      assert.equal(got.length, 8); // 15 images, batch 4 -> 4 batches per epoch
      assert.deepEqual(got, ref);
      assert.deepEqual(got[0].labelShape, [4, 3]);
      assert.equal(got[3].indices.length, 3);
      assert.ok(pooled.waitMs >= 0 && Number.isFinite(pooled.waitMs));
    } finally {
      await pooled.close();
    }
  });

  test("each epoch is a different permutation of all images; int32 labels without mixing", async () => {
    const l = new ImageLoader(ds, opts());
    const got = await take(l, 2);
    const e0 = got.slice(0, 4).flatMap((b) => b.indices);
    const e1 = got.slice(4).flatMap((b) => b.indices);
    assert.deepEqual(
      [...e0].sort((a, b) => a - b),
      [...Array(15).keys()],
    );
    assert.deepEqual(
      [...e1].sort((a, b) => a - b),
      [...Array(15).keys()],
    );
    assert.notDeepEqual(e0, e1);
    assert.deepEqual(
      got[0].labels,
      got[0].indices.map((i) => ds.items[i].label),
    );
    const b = (await new ImageLoader(ds, opts({ shuffle: false }))[Symbol.asyncIterator]().next()).value as ImageBatch;
    assert.equal(b.labels.dtype, "int32");
    assert.deepEqual(b.pixelValues.shape, [4, 3, 24, 24]);
    assert.deepEqual(b.indices, [0, 1, 2, 3]);
  });

  test("a resumed loader sees the batches an uninterrupted run would have seen", async () => {
    const full = await take(new ImageLoader(ds, opts()), 3);
    const first = new ImageLoader(ds, opts());
    const seen = await take(first, 2, 6); // epoch 0 and two batches of epoch 1
    const st = JSON.parse(JSON.stringify(first.state()));
    assert.deepEqual([st.epoch, st.batch], [1, 2]);
    const resumed = ImageLoader.fromState(ds, opts({ workers: 1 }), st);
    try {
      const rest = await take(resumed, 2);
      assert.deepEqual([...seen, ...rest], full);
    } finally {
      await resumed.close();
    }
    assert.throws(
      () => ImageLoader.fromState(ds, opts({ batchSize: 5 }), st),
      (e: ImageDataError) => e.code === "bad_state",
    );
    assert.throws(
      () => ImageLoader.fromState(ds, opts(), { ...st, batch: 99 }),
      (e: ImageDataError) => e.code === "bad_state",
    );
  });

  test("an error in a worker arrives as an ImageDataError naming the file", async () => {
    const bad = join(tmp.dir, "bad", "x", "0.png");
    await writeSolid(bad, 4, 4, [0, 0, 0]);
    writeFileSync(bad, "");
    const l = new ImageLoader(await indexImageFolder(join(tmp.dir, "bad")), opts({ workers: 1 }));
    try {
      await assert.rejects(
        take(l, 1),
        (e: ImageDataError) => e.name === "ImageDataError" && e.code === "empty" && e.file === bad,
      );
    } finally {
      await l.close();
    }
  });

  test("workers do not keep the process alive without close()", () => {
    const script = join(tmp.dir, "alive.mts");
    const src = fileURLToPath(new URL("../../src/data/images/index.ts", import.meta.url));
    writeFileSync(
      script,
      `import { ImageLoader, indexImageFolder, preprocessorFromConfig } from ${JSON.stringify(src)};
const ds = await indexImageFolder(${JSON.stringify(join(tmp.dir, "ds"))});
const l = new ImageLoader(ds, { transform: { preprocessor: preprocessorFromConfig("resnet18", { size: 20, cropSize: 16 }) }, batchSize: 2, workers: 2, prefetch: 4 });
for await (const b of l) { console.log("batch", b.pixelValues.shape.join("x")); break; }
`,
    );
    const r = spawnSync(process.execPath, ["--import", "tsx", script], { encoding: "utf8", timeout: 30_000 });
    assert.equal(r.status, 0, `exit ${r.status} signal ${r.signal}\n${r.stderr}`);
    assert.match(r.stdout, /batch 2x3x16x16/);
  });
});

describe("FeatureCache", () => {
  test("round trip across reopen; keyed by image bytes", async () => {
    const dir = join(tmp.dir, "cache");
    const img = ds.items[0].path;
    const key = await hashImageFile(img);
    assert.equal(key, createHash("sha256").update(readFileSync(img)).digest("hex"));
    copyFileSync(img, join(tmp.dir, "renamed.png"));
    assert.equal(await hashImageFile(join(tmp.dir, "renamed.png")), key);
    const other = await hashImageFile(ds.items[1].path);

    const c = await FeatureCache.open(dir, "resnet18:abc:eval24");
    assert.equal(c.invalidated, false);
    c.put(key, Float32Array.from([1, 2, 3, 4]));
    assert.ok(c.has(key));
    assert.deepEqual([...((await c.get(key)) as Float32Array)], [1, 2, 3, 4]);
    await c.flush();
    c.put(other, Float32Array.from([5, 6, 7, 8]));
    await c.flush();
    assert.throws(
      () => c.put(other, new Float32Array(3)),
      (e: ImageDataError) => e.code === "bad_config",
    );
    assert.throws(
      () => c.put("not-a-hash", new Float32Array(4)),
      (e: ImageDataError) => e.code === "bad_config",
    );

    const again = await FeatureCache.open(dir, "resnet18:abc:eval24");
    assert.equal(again.invalidated, false);
    assert.equal(again.size, 2);
    assert.deepEqual([...((await again.get(key)) as Float32Array)], [1, 2, 3, 4]);
    assert.deepEqual([...((await again.get(other)) as Float32Array)], [5, 6, 7, 8]);
    assert.equal(await again.get("0".repeat(64)), undefined);
    assert.deepEqual(readdirSync(dir).sort(), [
      "features-00001.safetensors",
      "features-00002.safetensors",
      "index.json",
    ]);
  });

  test("another model key invalidates; a broken index starts over", async () => {
    const dir = join(tmp.dir, "cache2");
    const key = "a".repeat(64);
    const c = await FeatureCache.open(dir, "model-A");
    c.put(key, new Float32Array([1]));
    await c.flush();
    const b = await FeatureCache.open(dir, "model-B");
    assert.equal(b.invalidated, true);
    assert.equal(b.has(key), false);
    assert.deepEqual(readdirSync(dir), ["index.json"]);
    b.put(key, new Float32Array([2, 2]));
    await b.flush();
    writeFileSync(join(dir, "index.json"), "{broken");
    const d = await FeatureCache.open(dir, "model-B");
    assert.equal(d.invalidated, true);
    assert.equal(d.size, 0);
  });
});
