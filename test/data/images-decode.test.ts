/** Image decoding: formats, grey/alpha/EXIF handling, and bad images refused before pixels are decoded. */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import sharp from "sharp";
import {
  decodeImage,
  ImageDataError,
  ImageLoader,
  probeImage,
  torchvisionDefaults,
  validateImages,
} from "../../src/data/images/index.ts";
import { encode, pattern, pngClaiming, tempDir, writePattern, writeSolid } from "../fixtures/data/images/make.ts";

const tmp = tempDir();
after(() => tmp.cleanup());
const p = (name: string) => join(tmp.dir, name);

describe("formats", () => {
  test("PNG, lossless WebP: exact pixels; JPEG q100: close; shape and HWC order", async () => {
    const raw = pattern(7, 5);
    for (const fmt of ["png", "webp", "jpeg"] as const) {
      const f = await writePattern(p(`pat.${fmt}`), 7, 5, fmt);
      const img = await decodeImage(f);
      assert.equal(img.width, 7);
      assert.equal(img.height, 5);
      assert.equal(img.data.length, 7 * 5 * 3);
      let maxd = 0;
      for (let i = 0; i < raw.length; i++) maxd = Math.max(maxd, Math.abs(img.data[i] - raw[i]));
      assert.ok(maxd <= (fmt === "jpeg" ? 40 : 0), `${fmt}: max diff ${maxd}`);
    }
  });

  test("GIF: the first frame of an animation", async () => {
    const frame = (r: number, b: number) =>
      sharp({ create: { width: 8, height: 6, channels: 3, background: { r, g: 0, b } } })
        .png()
        .toBuffer();
    const gif = await sharp([await frame(255, 0), await frame(0, 255)], { join: { animated: true } })
      .gif()
      .toBuffer();
    writeFileSync(p("anim.gif"), gif);
    const img = await decodeImage(p("anim.gif"));
    assert.deepEqual([img.width, img.height], [8, 6]);
    for (let i = 0; i < 48; i++) assert.deepEqual([...img.data.subarray(i * 3, i * 3 + 3)], [255, 0, 0]);
  });

  test("grey becomes RGB with equal channels", async () => {
    const g = new Uint8Array([0, 50, 100, 150, 200, 250]);
    writeFileSync(p("grey.png"), await encode(g, 3, 2, 1, "png"));
    const img = await decodeImage(p("grey.png"));
    assert.deepEqual(
      [...img.data],
      [...g].flatMap((v) => [v, v, v]),
    );
  });

  test("alpha is flattened onto white (default) or black", async () => {
    // RGBA: an opaque red pixel, a fully transparent green one, a half-transparent blue one.
    const rgba = new Uint8Array([255, 0, 0, 255, 0, 255, 0, 0, 0, 0, 255, 128]);
    writeFileSync(p("alpha.png"), await encode(rgba, 3, 1, 4, "png"));
    const white = await decodeImage(p("alpha.png"));
    const black = await decodeImage(p("alpha.png"), { alphaBackground: "black" });
    assert.deepEqual([...white.data.subarray(0, 6)], [255, 0, 0, 255, 255, 255]);
    assert.deepEqual([...black.data.subarray(0, 6)], [255, 0, 0, 0, 0, 0]);
    assert.ok(
      Math.abs(white.data[6] - 127) <= 2 && Math.abs(white.data[8] - 255) <= 1,
      `half blue on white: ${white.data.subarray(6)}`,
    );
    assert.ok(
      Math.abs(black.data[8] - 128) <= 2 && black.data[6] === 0,
      `half blue on black: ${black.data.subarray(6)}`,
    );
    // grey + alpha
    writeFileSync(p("ga.png"), await encode(new Uint8Array([100, 0, 100, 255]), 2, 1, 2, "png"));
    assert.deepEqual([...(await decodeImage(p("ga.png"))).data], [255, 255, 255, 100, 100, 100]);
  });

  test("EXIF orientation is applied (orientation 6: rotate 90 degrees clockwise)", async () => {
    // 32x16 stored: quadrants TL red, TR green, BL blue, BR white.
    const W = 32;
    const H = 16;
    const raw = new Uint8Array(W * H * 3);
    const col = (x: number, y: number) =>
      y < 8 ? (x < 16 ? [255, 0, 0] : [0, 255, 0]) : x < 16 ? [0, 0, 255] : [255, 255, 255];
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) raw.set(col(x, y), (y * W + x) * 3);
    const jpg = await sharp(Buffer.from(raw), { raw: { width: W, height: H, channels: 3 } })
      .jpeg({ quality: 100, chromaSubsampling: "4:4:4" })
      .withMetadata({ orientation: 6 })
      .toBuffer();
    writeFileSync(p("exif6.jpg"), jpg);
    const img = await decodeImage(p("exif6.jpg"));
    assert.deepEqual([img.width, img.height], [16, 32]);
    const at = (x: number, y: number) =>
      [...img.data.subarray((y * 16 + x) * 3, (y * 16 + x) * 3 + 3)].map((v) => Math.round(v / 255));
    // Displayed (16 wide, 32 tall): TL = stored BL (blue), TR = stored TL (red), BL = stored BR (white), BR = stored TR (green).
    assert.deepEqual(at(4, 8), [0, 0, 1]);
    assert.deepEqual(at(12, 8), [1, 0, 0]);
    assert.deepEqual(at(4, 24), [1, 1, 1]);
    assert.deepEqual(at(12, 24), [0, 1, 0]);
  });
});

describe("bad images", () => {
  const bad: Record<string, { code: string; make: () => Promise<void> | void }> = {
    "zero.png": { code: "empty", make: () => writeFileSync(p("zero.png"), "") },
    "text.jpg": { code: "not_image", make: () => writeFileSync(p("text.jpg"), "this is not an image\n") },
    "trunc.png": {
      code: "truncated",
      make: async () => {
        const f = await writePattern(p("full.png"), 64, 64, "png");
        const b = readFileSync(f);
        writeFileSync(p("trunc.png"), b.subarray(0, b.length >> 1));
      },
    },
    "trunc.jpg": {
      code: "truncated",
      make: async () => {
        const f = await writePattern(p("full.jpg"), 64, 64, "jpeg");
        const b = readFileSync(f);
        writeFileSync(p("trunc.jpg"), b.subarray(0, b.length >> 1));
      },
    },
    "trunc.gif": {
      code: "truncated",
      make: async () => {
        const f = await writePattern(p("full.gif"), 64, 64, "gif");
        writeFileSync(p("trunc.gif"), readFileSync(f).subarray(0, 40));
      },
    },
    "huge.png": { code: "too_large", make: () => writeFileSync(p("huge.png"), pngClaiming(100_000, 100_000)) },
  };

  test("each is refused with its code and the file's name, before decoding pixels", async () => {
    for (const c of Object.values(bad)) await c.make();
    const rss0 = process.memoryUsage().rss;
    for (const [name, c] of Object.entries(bad)) {
      for (const fn of [probeImage, decodeImage]) {
        await assert.rejects(fn(p(name)), (e: unknown) => {
          assert.ok(e instanceof ImageDataError, `${name}: ${e}`);
          assert.equal(e.code, c.code, `${name}: ${e.message}`);
          assert.equal(e.file, p(name));
          assert.ok(e.message.startsWith(p(name)), e.message);
          return true;
        });
      }
    }
    // 100,000 x 100,000 RGB would be 30 GB decoded; refusing it from the header costs nothing.
    const grewMb = (process.memoryUsage().rss - rss0) / 2 ** 20;
    assert.ok(grewMb < 200, `rss grew ${grewMb.toFixed(0)} MB`);
    await assert.rejects(decodeImage(p("zero.png")), /zero\.png: zero-byte file \[empty\]/);
  });

  test("the pixel limit is configurable", async () => {
    const f = await writeSolid(p("small.png"), 20, 10, [1, 2, 3]);
    assert.equal((await probeImage(f, { maxPixels: 200 })).width, 20);
    await assert.rejects(probeImage(f, { maxPixels: 199 }), (e: ImageDataError) => e.code === "too_large");
  });

  test("skipInvalid: validateImages skips and reports which files", async () => {
    const good = [
      await writeSolid(p("ok1.png"), 4, 4, [9, 9, 9]),
      await writeSolid(p("ok2.webp"), 4, 4, [9, 9, 9], "webp"),
    ];
    const files = [good[0], p("zero.png"), p("huge.png"), good[1], p("trunc.jpg"), p("text.jpg")];
    await assert.rejects(
      validateImages(files),
      (e: ImageDataError) => e.file === p("zero.png") || e instanceof ImageDataError,
    );
    const { valid, skipped } = await validateImages(files, { skipInvalid: true });
    assert.deepEqual(valid, [0, 3]);
    assert.deepEqual(
      skipped.map((s) => [s.file, s.code]),
      [
        [p("zero.png"), "empty"],
        [p("huge.png"), "too_large"],
        [p("trunc.jpg"), "truncated"],
        [p("text.jpg"), "not_image"],
      ],
    );
  });

  test("skipInvalid in the loader: bad images left out of their batch and counted", async () => {
    const dir = p("ds");
    mkdirSync(join(dir, "a"), { recursive: true });
    await writeSolid(join(dir, "a", "1.png"), 8, 8, [10, 20, 30]);
    writeFileSync(join(dir, "a", "2.png"), "");
    writeFileSync(join(dir, "a", "3.png"), pngClaiming(100_000, 100_000));
    await writeSolid(join(dir, "a", "4.png"), 8, 8, [10, 20, 30]);
    const items = [1, 2, 3, 4].map((i) => ({ path: join(dir, "a", `${i}.png`), label: 0 }));
    const ds = { root: dir, classes: ["a"], items, classCounts: [4], warnings: [] };
    const transform = {
      preprocessor: { ...torchvisionDefaults(), resize: { shortestEdge: 8 }, centerCrop: { height: 8, width: 8 } },
    };
    const strict = new ImageLoader(ds, { transform, batchSize: 4, workers: 0, shuffle: false });
    await assert.rejects(
      (async () => {
        for await (const _ of strict);
      })(),
      (e: ImageDataError) => e.code === "empty" && e.file === items[1].path,
    );
    const loose = new ImageLoader(ds, { transform, batchSize: 4, workers: 0, shuffle: false, skipInvalid: true });
    const got = [];
    for await (const b of loose) got.push(b);
    assert.equal(got.length, 1);
    assert.deepEqual(got[0].indices, [0, 3]);
    assert.deepEqual(got[0].pixelValues.shape, [2, 3, 8, 8]);
    assert.deepEqual(
      loose.skipped.map((s) => [s.file, s.code]),
      [
        [items[1].path, "empty"],
        [items[2].path, "too_large"],
      ],
    );
  });
});
