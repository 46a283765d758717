/**
 * Preprocessing taken from the model: resize, centre crop, rescale and normalise, read from a
 * Hugging Face `preprocessor_config.json` or from torchvision's defaults for an architecture.
 *
 * A {@link Preprocessor} is plain data (it crosses to worker threads as is). The eval transform is
 * resize -> centre crop -> rescale -> normalise; the train transform replaces resize + crop by a
 * random resized crop to the same output size (see `augment.ts`).
 *
 * Not supported from HF configs: `crop_pct` (ConvNeXt), `size.longest_edge`, `do_pad`; they are
 * ignored. Centre-crop offsets follow the source: HF uses `(h - ch) // 2`, torchvision
 * `round((h - ch) / 2)` (half to even).
 *
 * @example
 * ```ts
 * const pre = await preprocessorFromConfig("./vit-base");                 // reads preprocessor_config.json
 * const r18 = preprocessorFromConfig("resnet18");                          // 256 -> 224, ImageNet mean/std
 * const mnist = preprocessorFromConfig("resnet18", { size: 28, cropSize: 28 });
 * ```
 */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ImageDataError } from "./errors.ts";
import { type Box, RESAMPLE_BY_PIL_ID, type Resample, roundHalfEven, type Window } from "./resample.ts";

export const IMAGENET_MEAN: readonly number[] = [0.485, 0.456, 0.406];
export const IMAGENET_STD: readonly number[] = [0.229, 0.224, 0.225];

/** Resize rule: shorter side to `shortestEdge` keeping the aspect ratio, or an exact size. */
export type ResizeSpec = { shortestEdge: number } | { height: number; width: number };

/** Everything needed to turn decoded pixels into model input. Plain, serialisable data. */
export interface Preprocessor {
  resize: ResizeSpec | null;
  centerCrop: { height: number; width: number } | null;
  /** Multiplier applied to 0..255 values (1/255 usually); null = keep 0..255. */
  rescaleFactor: number | null;
  /** Per-channel mean and std (null = no normalisation). */
  mean: number[] | null;
  std: number[] | null;
  resample: Resample;
  /** Centre-crop offset rule: "floor" (HF) or "round" (torchvision, half to even). */
  cropRounding: "floor" | "round";
}

/** Overrides accepted by {@link preprocessorFromConfig} (e.g. 28x28 digits for a small model). */
export interface PreprocessorOverrides {
  /** Shortest edge to resize to (a number) or an exact size. */
  size?: number | { height: number; width: number };
  /** Centre-crop size (number = square); 0 disables cropping. */
  cropSize?: number | { height: number; width: number };
  mean?: number[];
  std?: number[];
  resample?: Resample;
}

const MAX_SIDE = 16384;

/** torchvision's classification preset (`ImageClassification`) for known architectures. */
const TORCHVISION_ARCHS =
  /^(resnet\d+|resnext\d+.*|wide_resnet\d+.*|mobilenet_v[23].*|efficientnet.*|densenet\d+|vgg\d+.*|convnext.*|regnet.*|alexnet|squeezenet.*|shufflenet.*)$/;

/**
 * Builds a {@link Preprocessor} from an HF `preprocessor_config.json` (a folder holding one, the
 * file's path, or its parsed object) or from an architecture name (`resnet18`, `mobilenet_v2`, ...:
 * torchvision's resize 256 / crop 224 / ImageNet mean-std). `overrides` win over both.
 *
 * @example
 * ```ts
 * const pre = preprocessorFromConfig({ do_resize: true, size: { height: 224, width: 224 },
 *   do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: [0.5, 0.5, 0.5],
 *   image_std: [0.5, 0.5, 0.5], resample: 2 });
 * ```
 */
export function preprocessorFromConfig(
  source: string | Record<string, unknown>,
  overrides: PreprocessorOverrides = {},
): Preprocessor {
  let base: Preprocessor;
  if (typeof source === "string" && TORCHVISION_ARCHS.test(source)) base = torchvisionDefaults();
  else if (typeof source === "string") base = fromHf(readConfig(source), source);
  else base = fromHf(source, "<preprocessor config>");
  return applyOverrides(base, overrides, typeof source === "string" ? source : "<preprocessor config>");
}

/** torchvision's ImageNet eval preset: bilinear resize 256, centre crop 224, ImageNet mean/std. */
export function torchvisionDefaults(): Preprocessor {
  return {
    resize: { shortestEdge: 256 },
    centerCrop: { height: 224, width: 224 },
    rescaleFactor: 1 / 255,
    mean: [...IMAGENET_MEAN],
    std: [...IMAGENET_STD],
    resample: "bilinear",
    cropRounding: "round",
  };
}

function readConfig(path: string): Record<string, unknown> {
  let file = path;
  try {
    if (statSync(path).isDirectory()) file = join(path, "preprocessor_config.json");
  } catch (e) {
    throw new ImageDataError(
      path,
      "io",
      `not an architecture name (resnet*, mobilenet_v2, ...) nor a readable path (${(e as Error).message})`,
    );
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new ImageDataError(file, "io", `cannot read (${(e as Error).message})`, { cause: e });
  }
  try {
    const o = JSON.parse(text);
    if (o === null || typeof o !== "object" || Array.isArray(o)) throw new Error("not a JSON object");
    return o;
  } catch (e) {
    throw new ImageDataError(file, "bad_config", `not a JSON object (${(e as Error).message})`, { cause: e });
  }
}

function fromHf(c: Record<string, unknown>, file: string): Preprocessor {
  const bad = (key: string, why: string): never => {
    throw new ImageDataError(file, "bad_config", `${key}: ${why}`);
  };
  const side = (key: string, v: unknown): number =>
    Number.isInteger(v) && (v as number) > 0 && (v as number) <= MAX_SIDE
      ? (v as number)
      : bad(key, `expected an integer in 1..${MAX_SIDE}, got ${JSON.stringify(v)}`);
  const sizeOf = (key: string, v: unknown, allowShortest: boolean): ResizeSpec => {
    if (typeof v === "number") return { height: side(key, v), width: side(key, v) };
    if (v && typeof v === "object") {
      const o = v as Record<string, unknown>;
      if (allowShortest && o.shortest_edge !== undefined)
        return { shortestEdge: side(`${key}.shortest_edge`, o.shortest_edge) };
      if (o.height !== undefined || o.width !== undefined)
        return { height: side(`${key}.height`, o.height), width: side(`${key}.width`, o.width) };
    }
    return bad(key, `expected a number, {shortest_edge} or {height, width}, got ${JSON.stringify(v)}`);
  };
  const vec3 = (key: string, v: unknown, positive: boolean): number[] => {
    const arr = typeof v === "number" ? [v, v, v] : v;
    if (
      !Array.isArray(arr) ||
      arr.length !== 3 ||
      !arr.every((x) => typeof x === "number" && Number.isFinite(x) && (!positive || x > 0))
    ) {
      return bad(key, `expected 3 finite${positive ? " positive" : ""} numbers, got ${JSON.stringify(v)}`);
    }
    return arr as number[];
  };
  const flag = (key: string, dflt: boolean): boolean => {
    const v = c[key];
    if (v === undefined) return dflt;
    return typeof v === "boolean" ? v : bad(key, `expected true/false, got ${JSON.stringify(v)}`);
  };
  let resample: Resample = "bilinear";
  if (c.resample !== undefined) {
    const r = c.resample;
    if (Number.isInteger(r) && (r as number) >= 0 && (r as number) < RESAMPLE_BY_PIL_ID.length)
      resample = RESAMPLE_BY_PIL_ID[r as number];
    else if (typeof r === "string" && (RESAMPLE_BY_PIL_ID as readonly string[]).includes(r)) resample = r as Resample;
    else bad("resample", `expected a Pillow filter id 0..5 or name, got ${JSON.stringify(r)}`);
  }
  const doResize = flag("do_resize", c.size !== undefined);
  const doCrop = flag("do_center_crop", false);
  const doRescale = flag("do_rescale", true);
  const doNorm = flag("do_normalize", c.image_mean !== undefined);
  let rescaleFactor: number | null = null;
  if (doRescale) {
    const f = c.rescale_factor ?? 1 / 255;
    rescaleFactor =
      typeof f === "number" && Number.isFinite(f) && f > 0
        ? f
        : bad("rescale_factor", `expected a positive number, got ${JSON.stringify(f)}`);
  }
  const crop = doCrop ? sizeOf("crop_size", c.crop_size ?? 224, false) : null;
  return {
    resize: doResize ? sizeOf("size", c.size ?? 224, true) : null,
    centerCrop: crop as { height: number; width: number } | null,
    rescaleFactor,
    mean: doNorm ? vec3("image_mean", c.image_mean ?? IMAGENET_MEAN, false) : null,
    std: doNorm ? vec3("image_std", c.image_std ?? IMAGENET_STD, true) : null,
    resample,
    cropRounding: "floor",
  };
}

function applyOverrides(p: Preprocessor, o: PreprocessorOverrides, file: string): Preprocessor {
  const out = { ...p };
  const side = (v: number, key: string) => {
    if (!Number.isInteger(v) || v <= 0 || v > MAX_SIDE)
      throw new ImageDataError(file, "bad_config", `${key}: expected an integer in 1..${MAX_SIDE}, got ${v}`);
    return v;
  };
  if (o.size !== undefined) {
    out.resize =
      typeof o.size === "number"
        ? { shortestEdge: side(o.size, "size") }
        : { height: side(o.size.height, "size.height"), width: side(o.size.width, "size.width") };
  }
  if (o.cropSize !== undefined) {
    if (o.cropSize === 0) out.centerCrop = null;
    else if (typeof o.cropSize === "number")
      out.centerCrop = { height: side(o.cropSize, "cropSize"), width: side(o.cropSize, "cropSize") };
    else
      out.centerCrop = {
        height: side(o.cropSize.height, "cropSize.height"),
        width: side(o.cropSize.width, "cropSize.width"),
      };
  }
  if (o.mean) out.mean = [...o.mean];
  if (o.std) {
    if (o.std.some((s) => !(s > 0)))
      throw new ImageDataError(file, "bad_config", `std: expected positive numbers, got ${JSON.stringify(o.std)}`);
    out.std = [...o.std];
  }
  if (o.resample) out.resample = o.resample;
  return out;
}

/**
 * The model's input size: the crop if any, else an exact resize. A shortest-edge resize without a
 * crop gives images of varying size, which cannot be batched, so it is refused.
 */
export function outputSize(p: Preprocessor): { height: number; width: number } {
  if (p.centerCrop) return p.centerCrop;
  if (p.resize && "height" in p.resize) return p.resize;
  throw new ImageDataError(
    "<preprocessor>",
    "bad_config",
    "a shortest-edge resize without a centre crop gives no fixed input size",
  );
}

/** Size after the resize step for an image of `width` x `height` (torchvision/HF arithmetic). */
export function resizedSize(p: Preprocessor, width: number, height: number): { height: number; width: number } {
  if (!p.resize) return { height, width };
  if ("height" in p.resize) return p.resize;
  const s = p.resize.shortestEdge;
  // int(s * long / short), truncating, as torchvision's and HF's resize do.
  return width <= height
    ? { width: s, height: Math.trunc((s * height) / width) }
    : { height: s, width: Math.trunc((s * width) / height) };
}

/** The eval geometry: resize the whole image, then take the centre-crop window of the result. */
export function evalGeometry(
  p: Preprocessor,
  width: number,
  height: number,
): { box: Box; size: { height: number; width: number }; window: Window } {
  const size = resizedSize(p, width, height);
  const out = outputSize(p);
  const off = (full: number, crop: number) =>
    p.cropRounding === "round" ? roundHalfEven((full - crop) / 2) : Math.floor((full - crop) / 2);
  const window = {
    top: off(size.height, out.height),
    left: off(size.width, out.width),
    height: out.height,
    width: out.width,
  };
  return { box: { x: 0, y: 0, width, height }, size, window };
}

/**
 * Rescale and normalise a CHW float image (values 0..255) in place:
 * `v * rescaleFactor`, then `(v - mean[c]) / std[c]`.
 */
export function rescaleNormalize(p: Preprocessor, chw: Float32Array, plane: number, offset = 0): void {
  const f = p.rescaleFactor ?? 1;
  for (let c = 0; c < 3; c++) {
    const m = p.mean ? p.mean[c] : 0;
    const s = p.std ? p.std[c] : 1;
    const base = offset + c * plane;
    for (let i = 0; i < plane; i++) chw[base + i] = (chw[base + i] * f - m) / s;
  }
}
