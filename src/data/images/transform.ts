/**
 * One image in, model input out; and a whole batch, which is the unit of work a loader worker
 * runs. Everything here is a pure function of (transform, item, seed, epoch, index), so a batch
 * built in a worker thread equals the same batch built on the main thread.
 *
 * @example
 * ```ts
 * const t: ImageTransform = { preprocessor: preprocessorFromConfig("resnet18"), augment: { horizontalFlip: 0.5 } };
 * const x = await transformImage("cat.jpg", t, new Generator(sampleSeed(0, 0, 17)));  // (3, 224, 224) values
 * ```
 */
import { Generator } from "../../tensor/rng.ts";
import {
  type AugmentOptions,
  colorJitter,
  hflip,
  type MixOptions,
  mixBatch,
  randomErasing,
  randomResizedCropBox,
  rotate,
} from "./augment.ts";
import type { ImageItem } from "./dataset.ts";
import { type DecodeOptions, decodeImage } from "./decode.ts";
import { ImageDataError, type SkippedImage } from "./errors.ts";
import { evalGeometry, outputSize, type Preprocessor, rescaleNormalize } from "./preprocess.ts";
import { resampleToChw } from "./resample.ts";

/** How images become model input. Plain data: it is sent to worker threads as is. */
export interface ImageTransform {
  preprocessor: Preprocessor;
  /** Train-time augmentation; absent or null = the eval transform (resize, centre crop, normalise). */
  augment?: AugmentOptions | null;
  decode?: DecodeOptions;
}

/** A 53-bit seed for one sample (or, with index -1 - b, one batch) from (seed, epoch, index). */
export function sampleSeed(seed: number, epoch: number, index: number): number {
  let h = 0x811c9dc5;
  let l = 0x9e3779b9;
  for (const v of [seed, Math.floor(seed / 2 ** 32), epoch, index, Math.floor(index / 2 ** 32)]) {
    h = Math.imul(h ^ (v >>> 0), 0x85ebca6b) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
    l = Math.imul(l ^ h, 0xc2b2ae35) >>> 0;
    l = (l ^ (l >>> 16)) >>> 0;
  }
  return (h & 0x1fffff) * 2 ** 32 + l;
}

/**
 * Decodes and transforms one image into `out` at `offset` (3 * H * W floats). `g` drives the
 * augmentation and may be omitted for the eval transform.
 */
export async function transformImage(
  path: string,
  t: ImageTransform,
  g?: Generator,
  out?: Float32Array,
  offset = 0,
): Promise<Float32Array> {
  const pre = t.preprocessor;
  const size = outputSize(pre);
  const plane = size.height * size.width;
  const dst = out ?? new Float32Array(3 * plane);
  const img = await decodeImage(path, t.decode);
  const aug = t.augment ?? null;
  if (aug && !g) throw new ImageDataError(path, "bad_config", "augmentation needs a Generator");
  const view = dst.subarray(offset, offset + 3 * plane);
  if (aug && aug.randomResizedCrop !== false && g) {
    const rrc = aug.randomResizedCrop ?? {};
    const box = randomResizedCropBox(g, img.width, img.height, rrc.scale, rrc.ratio);
    resampleToChw(img, box, size, { top: 0, left: 0, ...size }, pre.resample, view);
  } else {
    const geo = evalGeometry(pre, img.width, img.height);
    resampleToChw(img, geo.box, geo.size, geo.window, pre.resample, view);
  }
  if (aug && g) {
    if (g.random() < (aug.horizontalFlip ?? 0.5)) hflip(view, size.height, size.width);
    if (aug.rotation) rotate(view, size.height, size.width, (2 * g.random() - 1) * aug.rotation);
    if (aug.colorJitter) colorJitter(g, view, size.height, size.width, aug.colorJitter, 255);
  }
  rescaleNormalize(pre, view, plane);
  if (aug?.randomErasing && g) randomErasing(g, view, size.height, size.width, aug.randomErasing);
  return dst;
}

/** One batch to build: what a loader sends to a worker. */
export interface BatchTask {
  items: ImageItem[];
  /** Dataset indices of `items` (they seed the per-sample generators). */
  indices: number[];
  seed: number;
  epoch: number;
  batchIndex: number;
  numClasses: number;
  mix?: MixOptions | null;
  skipInvalid?: boolean;
}

/** A built batch as plain arrays (transferable between threads). */
export interface BatchData {
  /** (B, 3, H, W) float32. */
  pixels: Float32Array;
  height: number;
  width: number;
  /** int32 class ids (B), or soft labels (B, numClasses) when MixUp/CutMix ran. */
  labels: Int32Array | Float32Array;
  indices: number[];
  skipped: SkippedImage[];
}

/**
 * Decodes and transforms a batch (images concurrently; sharp decodes on libuv's thread pool). With
 * `skipInvalid`, images that fail with an `ImageDataError` are left out and reported.
 */
export async function buildBatch(task: BatchTask, t: ImageTransform): Promise<BatchData> {
  const { height, width } = outputSize(t.preprocessor);
  const S = 3 * height * width;
  const tmp = new Float32Array(task.items.length * S);
  const ok = await Promise.all(
    task.items.map(async (it, k): Promise<SkippedImage | null> => {
      const g = t.augment ? new Generator(sampleSeed(task.seed, task.epoch, task.indices[k])) : undefined;
      try {
        await transformImage(it.path, t, g, tmp, k * S);
        return null;
      } catch (e) {
        if (task.skipInvalid && e instanceof ImageDataError) return { file: e.file, code: e.code, reason: e.reason };
        throw e;
      }
    }),
  );
  const keep = ok.map((s, k) => (s ? -1 : k)).filter((k) => k >= 0);
  const pixels = keep.length === task.items.length ? tmp : new Float32Array(keep.length * S);
  if (pixels !== tmp) for (const [j, k] of keep.entries()) pixels.set(tmp.subarray(k * S, (k + 1) * S), j * S);
  const labels = keep.map((k) => task.items[k].label);
  const indices = keep.map((k) => task.indices[k]);
  const skipped = ok.filter((s): s is SkippedImage => s !== null);
  const mix = task.mix;
  if (mix && (mix.mixupAlpha !== undefined || mix.cutmixAlpha !== undefined) && keep.length > 0) {
    const g = new Generator(sampleSeed(task.seed, task.epoch, -1 - task.batchIndex));
    const soft = mixBatch(g, pixels, labels, task.numClasses, height, width, mix);
    return { pixels, height, width, labels: soft, indices, skipped };
  }
  return { pixels, height, width, labels: Int32Array.from(labels), indices, skipped };
}
