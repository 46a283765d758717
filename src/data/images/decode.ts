/**
 * Reading images safely: a cheap check of the bytes and header before any pixel is decoded, then
 * decoding with sharp (libvips) to 8-bit RGB.
 *
 * Order of checks for every file: size (> 0, <= `maxFileBytes`), signature (JPEG, PNG, WebP, GIF),
 * structure (a PNG's chunks must reach IEND inside the file, a WebP's RIFF size must fit, a JPEG
 * must hold an end-of-image marker), header dimensions via sharp `metadata()` (which parses the
 * header only) against `maxPixels`; then the decode itself runs with `failOn: "truncated"` and
 * `limitInputPixels`, so anything the structure check missed still fails with a typed error.
 *
 * Decoding: EXIF orientation applied (`rotate()`), the first frame of a GIF, alpha flattened onto
 * a background (default white: transparent areas look like paper, as most viewers show them;
 * `"black"` matches premultiplied-alpha conventions), grey replicated to RGB, 16-bit reduced to
 * 8-bit.
 *
 * @example
 * ```ts
 * const img = await decodeImage("cat.jpg");   // { data: Uint8Array HWC RGB, width, height }
 * ```
 */
import { open } from "node:fs/promises";
import sharp from "sharp";
import { ImageDataError, type SkippedImage } from "./errors.ts";

/** 8-bit RGB pixels, row-major HWC (what sharp's `raw()` gives). */
export interface RgbImage {
  data: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeOptions {
  /** Largest width * height accepted from a header. Default 89,478,485 (PIL's `MAX_IMAGE_PIXELS`). */
  maxPixels?: number;
  /** Largest file accepted, in bytes. Default 256 MiB. */
  maxFileBytes?: number;
  /** Background that alpha is flattened onto. Default "white". */
  alphaBackground?: "white" | "black";
}

export const DEFAULT_MAX_PIXELS = 89_478_485;
export const DEFAULT_MAX_FILE_BYTES = 256 * 2 ** 20;

export type ImageFormat = "jpeg" | "png" | "webp" | "gif";

/** What the header says, read without decoding pixels. */
export interface ImageHeader {
  format: ImageFormat;
  width: number;
  height: number;
  fileBytes: number;
}

/** The format from the leading bytes, or null. */
export function sniffFormat(b: Uint8Array): ImageFormat | null {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return "jpeg";
  if (
    b.length >= 8 &&
    b[0] === 0x89 &&
    b[1] === 0x50 &&
    b[2] === 0x4e &&
    b[3] === 0x47 &&
    b[4] === 0x0d &&
    b[5] === 0x0a &&
    b[6] === 0x1a &&
    b[7] === 0x0a
  ) {
    return "png";
  }
  if (b.length >= 12 && ascii(b, 0, 4) === "RIFF" && ascii(b, 8, 4) === "WEBP") return "webp";
  if (b.length >= 6 && (ascii(b, 0, 6) === "GIF87a" || ascii(b, 0, 6) === "GIF89a")) return "gif";
  return null;
}

function ascii(b: Uint8Array, at: number, n: number): string {
  return String.fromCharCode(...b.subarray(at, at + n));
}

/**
 * Checks the whole file's bytes without decoding: non-empty, a known signature, and a structure
 * that reaches its end marker. Returns the format.
 */
export function checkImageBytes(file: string, b: Uint8Array): ImageFormat {
  if (b.length === 0) throw new ImageDataError(file, "empty", "zero-byte file");
  const format = sniffFormat(b);
  if (!format) throw new ImageDataError(file, "not_image", "not a JPEG, PNG, WebP or GIF file (unknown signature)");
  const why = truncation(format, b);
  if (why) throw new ImageDataError(file, "truncated", why);
  return format;
}

function truncation(format: ImageFormat, b: Uint8Array): string | null {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (format === "png") {
    // Walk the chunk headers (length, type) up to IEND; no pixel data is touched.
    for (let at = 8; ; ) {
      if (at + 12 > b.length) return `file ends inside a PNG chunk at byte ${at} (no IEND)`;
      const len = dv.getUint32(at);
      if (ascii(b, at + 4, 4) === "IEND") return null;
      at += 12 + len;
    }
  }
  if (format === "webp") {
    const riff = dv.getUint32(4, true) + 8;
    return riff > b.length ? `RIFF header says ${riff} bytes, file has ${b.length}` : null;
  }
  if (format === "jpeg") {
    // Entropy-coded data stuffs 0xFF with 0x00, so FF D9 only appears as an end-of-image marker.
    for (let i = b.length - 2; i >= 2; i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return null;
    return "no JPEG end-of-image marker";
  }
  return null; // GIF: the decoder's failOn check catches a cut-off frame.
}

/** Reads a file whole, refusing empty and oversized files first. */
export async function readImageFile(file: string, opts: DecodeOptions = {}): Promise<Uint8Array> {
  const max = opts.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  let fh: Awaited<ReturnType<typeof open>> | undefined;
  try {
    fh = await open(file, "r");
    const { size } = await fh.stat();
    if (size === 0) throw new ImageDataError(file, "empty", "zero-byte file");
    if (size > max) throw new ImageDataError(file, "too_big_file", `${size} bytes is over the ${max}-byte limit`);
    return await fh.readFile();
  } catch (e) {
    if (e instanceof ImageDataError) throw e;
    throw new ImageDataError(file, "io", `cannot read (${(e as Error).message})`, { cause: e });
  } finally {
    await fh?.close();
  }
}

/** Parses the header (sharp `metadata()`, no pixel decoding) and applies the pixel limit. */
export async function readHeader(file: string, bytes: Uint8Array, opts: DecodeOptions = {}): Promise<ImageHeader> {
  const format = checkImageBytes(file, bytes);
  let meta: sharp.Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (e) {
    const msg = (e as Error).message;
    throw new ImageDataError(file, failureCode(msg), `unreadable ${format} header (${msg.split("\n")[0]})`, {
      cause: e,
    });
  }
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!(width > 0 && height > 0))
    throw new ImageDataError(file, "corrupt", `header has no valid size (${width} x ${height})`);
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  if (width * height > maxPixels) {
    throw new ImageDataError(
      file,
      "too_large",
      `header claims ${width} x ${height} pixels, over the ${maxPixels}-pixel limit`,
    );
  }
  return { format, width, height, fileBytes: bytes.length };
}

/**
 * Checks one image file without decoding pixels (size, signature, structure, header, pixel limit).
 *
 * @example
 * ```ts
 * const h = await probeImage("big.png", { maxPixels: 50e6 });  // throws ImageDataError "too_large"
 * ```
 */
export async function probeImage(file: string, opts: DecodeOptions = {}): Promise<ImageHeader> {
  return readHeader(file, await readImageFile(file, opts), opts);
}

/**
 * Checks every file up front (headers only, `concurrency` at a time). Throws the first
 * `ImageDataError`, or with `skipInvalid` returns the good indices and the skipped files.
 *
 * @example
 * ```ts
 * const { valid, skipped } = await validateImages(ds.items.map((i) => i.path), { skipInvalid: true });
 * ```
 */
export async function validateImages(
  files: readonly string[],
  opts: DecodeOptions & { skipInvalid?: boolean; concurrency?: number } = {},
): Promise<{ valid: number[]; skipped: SkippedImage[] }> {
  const ok = new Uint8Array(files.length);
  const bad = new Map<number, SkippedImage>();
  let next = 0;
  const run = async () => {
    while (next < files.length) {
      const i = next++;
      try {
        await probeImage(files[i], opts);
        ok[i] = 1;
      } catch (e) {
        if (!(e instanceof ImageDataError) || !opts.skipInvalid) throw e;
        bad.set(i, { file: e.file, code: e.code, reason: e.reason });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.concurrency ?? 8) }, run));
  const valid: number[] = [];
  ok.forEach((v, i) => {
    if (v) valid.push(i);
  });
  return { valid, skipped: [...bad.keys()].sort((a, b) => a - b).map((i) => bad.get(i) as SkippedImage) };
}

/**
 * Decodes an image (path or bytes) to 8-bit RGB HWC after the header checks. `file` names the
 * image in errors when `input` is a buffer.
 */
export async function decodeImage(
  input: string | Uint8Array,
  opts: DecodeOptions & { file?: string } = {},
): Promise<RgbImage> {
  const file = opts.file ?? (typeof input === "string" ? input : "<buffer>");
  const bytes = typeof input === "string" ? await readImageFile(input, opts) : input;
  const header = await readHeader(file, bytes, opts);
  try {
    const bg = opts.alphaBackground === "black" ? "#000000" : "#ffffff";
    const { data, info } = await sharp(bytes, {
      failOn: "truncated",
      limitInputPixels: opts.maxPixels ?? DEFAULT_MAX_PIXELS,
      pages: 1,
    })
      .rotate()
      .flatten({ background: bg })
      .toColourspace("srgb")
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`expected 3 channels after conversion, got ${info.channels}`);
    return {
      data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
      width: info.width,
      height: info.height,
    };
  } catch (e) {
    const msg = (e as Error).message;
    throw new ImageDataError(file, failureCode(msg), `cannot decode ${header.format} (${msg.split("\n")[0]})`, {
      cause: e,
    });
  }
}

/** libvips' wording for input that stops early, as opposed to input that is malformed. */
function failureCode(message: string): "truncated" | "corrupt" {
  return /premature|end of stream|truncat|unexpected end|short read|not enough data/i.test(message)
    ? "truncated"
    : "corrupt";
}

/**
 * A small PNG of an image for reports (the most confident mistakes): decoded with the same checks
 * as training, shrunk to fit `size` x `size` (never enlarged past 4x: MNIST's 28 px digits become
 * 96 px), base64 without the `data:` prefix.
 */
export async function thumbnailPng(file: string, size = 96, opts: DecodeOptions = {}): Promise<string> {
  const img = await decodeImage(file, opts);
  const scale = Math.min(size / img.width, size / img.height, 4);
  const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize({
      width: Math.max(1, Math.round(img.width * scale)),
      height: Math.max(1, Math.round(img.height * scale)),
      kernel: scale > 1 ? "nearest" : "lanczos3",
    })
    .png()
    .toBuffer();
  return png.toString("base64");
}
