/**
 * pngjs through a small typed facade: the package ships no types and we don't add @types here.
 */
import { createRequire } from "node:module";

export interface RawImage {
  width: number;
  height: number;
  /** RGBA, 4 bytes per pixel, row-major. */
  data: Buffer;
}

interface PngSync {
  read(buf: Buffer): RawImage;
  write(img: RawImage): Buffer;
}
const { PNG } = createRequire(import.meta.url)("pngjs") as { PNG: { sync: PngSync } };

/** Encodes an RGBA image as PNG. */
export function encodePng(width: number, height: number, rgba: Uint8Array): Buffer {
  return PNG.sync.write({ width, height, data: Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength) });
}

/** Decodes a PNG file's bytes to RGBA. */
export function decodePng(bytes: Buffer): RawImage {
  return PNG.sync.read(bytes);
}
