/** Preprocessing (numbers by hand), resize semantics, and augmentation determinism and properties. */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  colorJitter,
  evalGeometry,
  IMAGENET_MEAN,
  IMAGENET_STD,
  type ImageDataError,
  type ImageTransform,
  mixBatch,
  preprocessorFromConfig,
  randomErasing,
  randomResizedCropBox,
  resampleToChw,
  rotate,
  sampleBeta,
  sampleSeed,
  torchvisionDefaults,
  transformImage,
} from "../../src/data/images/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { tempDir, writePattern, writeSolid } from "../fixtures/data/images/make.ts";

const tmp = tempDir();
after(() => tmp.cleanup());

describe("preprocessing", () => {
  test("a constant-colour image normalises to (c/255 - mean) / std everywhere (resnet18 defaults)", async () => {
    const rgb: [number, number, number] = [200, 100, 50];
    const f = await writeSolid(join(tmp.dir, "solid.png"), 300, 260, rgb);
    const pre = preprocessorFromConfig("resnet18");
    const out = await transformImage(f, { preprocessor: pre });
    assert.equal(out.length, 3 * 224 * 224);
    for (let c = 0; c < 3; c++) {
      const want = (rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
      for (let i = 0; i < 224 * 224; i++)
        assert.ok(Math.abs(out[c * 224 * 224 + i] - want) < 1e-5, `channel ${c}: ${out[c * 224 * 224 + i]} vs ${want}`);
    }
  });

  test("bilinear downscale with antialias matches Pillow's weights by hand", () => {
    // 4 -> 2 pixels: support widens to 2 source pixels; output 0 weights 3/7, 3/7, 1/7 on x = 0, 1, 2.
    const row = [0, 100, 200, 40];
    const img = { data: new Uint8Array(row.flatMap((v) => [v, v, v])), width: 4, height: 1 };
    const out = resampleToChw(
      img,
      { x: 0, y: 0, width: 4, height: 1 },
      { height: 1, width: 2 },
      { top: 0, left: 0, height: 1, width: 2 },
      "bilinear",
    );
    assert.ok(Math.abs(out[0] - 500 / 7) < 1e-4 && Math.abs(out[1] - 820 / 7) < 1e-4, `${out.subarray(0, 2)}`);
    // Same size: the identity.
    const same = resampleToChw(
      img,
      { x: 0, y: 0, width: 4, height: 1 },
      { height: 1, width: 4 },
      { top: 0, left: 0, height: 1, width: 4 },
      "bicubic",
    );
    assert.deepEqual([...same.subarray(0, 4)], row);
    // A crop box: the filter reads only inside it (torchvision crops, then resizes).
    const crop = resampleToChw(
      img,
      { x: 1, y: 0, width: 2, height: 1 },
      { height: 1, width: 1 },
      { top: 0, left: 0, height: 1, width: 1 },
      "bilinear",
    );
    assert.ok(Math.abs(crop[0] - 150) < 1e-4, `${crop[0]}`);
  });

  test("resize shortest edge and centre-crop offsets (torchvision rounds half to even, HF floors)", () => {
    const tv = torchvisionDefaults();
    assert.deepEqual(evalGeometry(tv, 300, 200).size, { height: 256, width: 384 });
    assert.deepEqual(evalGeometry(tv, 300, 200).window, { top: 16, left: 80, height: 224, width: 224 });
    const odd = { ...tv, resize: { height: 227, width: 227 } };
    assert.equal(evalGeometry(odd, 10, 10).window.top, 2); // round(1.5) = 2
    assert.equal(evalGeometry({ ...odd, cropRounding: "floor" }, 10, 10).window.top, 1);
    // int(256 * 333 / 200) = 426: truncation, not rounding.
    assert.equal(evalGeometry(tv, 333, 200).size.width, 426);
  });

  test("HF preprocessor_config.json: object, folder; ViT and CLIP styles", () => {
    const vit = preprocessorFromConfig({
      do_normalize: true,
      do_rescale: true,
      do_resize: true,
      image_mean: [0.5, 0.5, 0.5],
      image_std: [0.5, 0.5, 0.5],
      resample: 2,
      rescale_factor: 0.00392156862745098,
      size: { height: 224, width: 224 },
    });
    assert.deepEqual(vit.resize, { height: 224, width: 224 });
    assert.equal(vit.centerCrop, null);
    assert.equal(vit.resample, "bilinear");
    assert.deepEqual(vit.std, [0.5, 0.5, 0.5]);
    const dir = join(tmp.dir, "clip");
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, "preprocessor_config.json"),
      JSON.stringify({
        crop_size: { height: 224, width: 224 },
        do_center_crop: true,
        do_normalize: true,
        do_resize: true,
        image_mean: [0.481, 0.458, 0.408],
        image_std: [0.269, 0.261, 0.276],
        resample: 3,
        size: { shortest_edge: 224 },
      }),
    );
    const clip = preprocessorFromConfig(dir);
    assert.deepEqual(clip.resize, { shortestEdge: 224 });
    assert.deepEqual(clip.centerCrop, { height: 224, width: 224 });
    assert.equal(clip.resample, "bicubic");
    assert.equal(clip.rescaleFactor, 1 / 255);
    assert.equal(clip.cropRounding, "floor");
  });

  test("architecture defaults with a small-model override; bad configs name the key", () => {
    const m = preprocessorFromConfig("mobilenet_v2", { size: 32, cropSize: 28 });
    assert.deepEqual(m.resize, { shortestEdge: 32 });
    assert.deepEqual(m.centerCrop, { height: 28, width: 28 });
    assert.deepEqual(m.mean, [...IMAGENET_MEAN]);
    for (const [cfg, key] of [
      [{ size: { height: -1, width: 3 } }, "size.height"],
      [{ do_normalize: true, image_std: [1, 0, 1] }, "image_std"],
      [{ resample: 9 }, "resample"],
      [{ do_rescale: "yes" }, "do_rescale"],
      [{ size: { shortest_edge: 1e9 } }, "size.shortest_edge"],
    ] as const) {
      assert.throws(
        () => preprocessorFromConfig(cfg as Record<string, unknown>),
        (e: ImageDataError) => e.code === "bad_config" && e.message.includes(key),
      );
    }
    assert.throws(
      () => preprocessorFromConfig(join(tmp.dir, "nope")),
      (e: ImageDataError) => e.code === "io",
    );
  });
});

describe("augmentation", () => {
  const pre = preprocessorFromConfig("resnet18", { size: 40, cropSize: 32 });
  let img = "";
  const run = async (t: ImageTransform, seed: number) => transformImage(img, t, new Generator(seed));

  test("deterministic given the seed; different seeds differ", async () => {
    img = await writePattern(join(tmp.dir, "pat.png"), 64, 48);
    const t: ImageTransform = {
      preprocessor: pre,
      augment: {
        rotation: 15,
        colorJitter: { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
        randomErasing: { p: 0.5 },
      },
    };
    const s = sampleSeed(3, 1, 17);
    assert.deepEqual(await run(t, s), await run(t, s));
    assert.notDeepEqual(await run(t, s), await run(t, sampleSeed(3, 2, 17)));
    assert.notEqual(sampleSeed(0, 0, 1), sampleSeed(0, 1, 0));
  });

  test("horizontal flip equals the eval image with reversed columns", async () => {
    const ev = await transformImage(img, { preprocessor: pre });
    const fl = await run({ preprocessor: pre, augment: { randomResizedCrop: false, horizontalFlip: 1 } }, 0);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < 32; y++)
        for (let x = 0; x < 32; x++) assert.equal(fl[c * 1024 + y * 32 + x], ev[c * 1024 + y * 32 + 31 - x]);
  });

  test("random resized crop: output size, box inside the image, area and ratio in range (or the fallback)", async () => {
    const out = await run({ preprocessor: pre, augment: { horizontalFlip: 0 } }, 5);
    assert.equal(out.length, 3 * 32 * 32);
    const g = new Generator(1);
    for (let i = 0; i < 500; i++) {
      const b = randomResizedCropBox(g, 64, 48);
      assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.width <= 64 && b.y + b.height <= 48, JSON.stringify(b));
      const frac = (b.width * b.height) / (64 * 48);
      assert.ok(frac > 0.06 && frac <= 1 + 1e-9, `area ${frac}`);
    }
    // Impossible scale forces the fallback: the centre crop clamped to the ratio range.
    assert.deepEqual(randomResizedCropBox(new Generator(0), 100, 10, [5, 6]), { x: 43, y: 0, width: 13, height: 10 });
  });

  test("rotation by 90 degrees is a counter-clockwise quarter turn", () => {
    const W = 5;
    const src = Float32Array.from({ length: 3 * W * W }, (_, i) => i);
    const r = src.slice();
    rotate(r, W, W, 90);
    for (let c = 0; c < 3; c++)
      for (let y = 0; y < W; y++)
        for (let x = 0; x < W; x++) assert.equal(r[c * 25 + y * W + x], src[c * 25 + x * W + (W - 1 - y)]);
  });

  test("colour jitter stays in range; hue and saturation leave grey alone", () => {
    const g = new Generator(2);
    const grey = new Float32Array(3 * 16).fill(90);
    colorJitter(g, grey, 4, 4, { hue: 0.5, saturation: 0.9 }, 255);
    // torchvision's grey weights sum to 0.9999, so saturation moves grey by up to 0.01%.
    for (const v of grey) assert.ok(Math.abs(v - 90) < 0.02, `${v}`);
    const x = Float32Array.from({ length: 3 * 64 }, (_, i) => (i * 37) % 256);
    colorJitter(g, x, 8, 8, { brightness: 2, contrast: 2, saturation: 2, hue: 0.3 }, 255);
    for (const v of x) assert.ok(v >= 0 && v <= 255, `${v}`);
  });

  test("random erasing (p = 1) blanks one rectangle with the value", () => {
    const x = new Float32Array(3 * 20 * 20).fill(7);
    assert.ok(randomErasing(new Generator(4), x, 20, 20, { p: 1, value: 0 }));
    const zeros = x.filter((v) => v === 0).length;
    assert.ok(zeros > 0 && zeros % 3 === 0 && zeros / 3 >= 0.02 * 400 * 0.5, `${zeros}`);
    assert.ok(!randomErasing(new Generator(4), x, 20, 20, { p: 0 }));
  });

  test("MixUp and CutMix give soft labels that sum to one and match the pixel mix", () => {
    const B = 4;
    const H = 8;
    const W = 8;
    const S = 3 * H * W;
    const make = () => Float32Array.from({ length: B * S }, (_, i) => Math.floor(i / S)); // sample i is constant i
    const labels = [0, 1, 2, 1];
    const px = make();
    const soft = mixBatch(new Generator(9), px, labels, 3, H, W, { mixupAlpha: 0.4 });
    for (let i = 0; i < B; i++) assert.ok(Math.abs(soft[i * 3] + soft[i * 3 + 1] + soft[i * 3 + 2] - 1) < 1e-6);
    const lam = soft[0 * 3 + 0]; // sample 0 (label 0) mixed with sample 3 (label 1)
    assert.ok(Math.abs(px[0] - (lam * 0 + (1 - lam) * 3)) < 1e-5, `${px[0]} vs lam ${lam}`);
    const cx = make();
    const cs = mixBatch(new Generator(10), cx, labels, 3, H, W, { cutmixAlpha: 1 });
    const fromPrev = cx.subarray(S, 2 * S).filter((v) => v === 0).length / S; // sample 1 pasted from sample 0
    assert.ok(Math.abs(cs[1 * 3 + 0] - fromPrev) < 1e-6, `${cs[3]} vs ${fromPrev}`);
    let m = 0;
    const g = new Generator(11);
    for (let i = 0; i < 4000; i++) m += sampleBeta(g, 2, 2);
    assert.ok(Math.abs(m / 4000 - 0.5) < 0.02);
  });
});
