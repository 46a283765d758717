/**
 * Resizing with antialiasing, written out so that the train and eval transforms are the same
 * numbers in every thread and on every machine.
 *
 * The algorithm is Pillow's `ImagingResample` (which torchvision's `antialias=True` tensor path
 * copies): a separable convolution whose filter support widens with the downscale factor,
 * horizontal pass first. Differences to torchvision, all below one grey level: we keep float
 * values between and after the passes (Pillow rounds to uint8 after each pass and uses 8-bit
 * fixed-point weights), so results agree with `transforms.Resize` on PIL images to within about
 * 1/255 of the value range.
 *
 * One call resizes a source box (a crop: the filter never reads outside it, like
 * torchvision's crop-then-resize) to a virtual output size and writes only a window of that output
 * (so resize-then-centre-crop never materialises the full resized image). Output is float32 CHW
 * with values 0..255; window pixels outside the virtual image are 0 (torchvision pads a centre crop
 * larger than the image with zeros).
 *
 * @example
 * ```ts
 * // the 224x224 centre of the image resized to shortest edge 256
 * const out = resampleToChw(img, { x: 0, y: 0, width: img.width, height: img.height },
 *   { height: 256, width: 341 }, { top: 16, left: 58, height: 224, width: 224 }, "bilinear");
 * ```
 */
import type { RgbImage } from "./decode.ts";

/** Pillow's filter names (`Image.Resampling`); HF configs use the numbers in {@link RESAMPLE_BY_PIL_ID}. */
export type Resample = "nearest" | "bilinear" | "bicubic" | "lanczos" | "box" | "hamming";

/** Pillow's enum values: NEAREST=0, LANCZOS=1, BILINEAR=2, BICUBIC=3, BOX=4, HAMMING=5. */
export const RESAMPLE_BY_PIL_ID: readonly Resample[] = ["nearest", "lanczos", "bilinear", "bicubic", "box", "hamming"];

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface Window {
  top: number;
  left: number;
  height: number;
  width: number;
}

const sinc = (x: number) => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));

const FILTERS: Record<Exclude<Resample, "nearest">, { support: number; f: (x: number) => number }> = {
  box: { support: 0.5, f: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0) },
  bilinear: { support: 1, f: (x) => Math.max(0, 1 - Math.abs(x)) },
  hamming: { support: 1, f: (x) => (Math.abs(x) >= 1 ? 0 : sinc(x) * (0.54 + 0.46 * Math.cos(Math.PI * x))) },
  bicubic: {
    support: 2,
    f: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
  lanczos: { support: 3, f: (x) => (Math.abs(x) >= 3 ? 0 : sinc(x) * sinc(x / 3)) },
};

/** Per output index: first source index, tap count and normalised weights (stride `taps`). */
interface Coeffs {
  start: Int32Array;
  count: Int32Array;
  weights: Float64Array;
  taps: number;
}

/**
 * Weights mapping `inLen` source pixels (starting at `inStart`) to `outSize` outputs, for the
 * outputs `outStart .. outStart+outLen` only. Outputs outside [0, outSize) get no taps (zero).
 */
function coeffs(
  inStart: number,
  inLen: number,
  outSize: number,
  outStart: number,
  outLen: number,
  filter: Resample,
): Coeffs {
  const scale = inLen / outSize;
  const start = new Int32Array(outLen);
  const count = new Int32Array(outLen);
  if (filter === "nearest") {
    const weights = new Float64Array(outLen).fill(1);
    for (let i = 0; i < outLen; i++) {
      const o = outStart + i;
      if (o < 0 || o >= outSize) continue;
      start[i] = inStart + Math.min(inLen - 1, Math.floor((o + 0.5) * scale));
      count[i] = 1;
    }
    return { start, count, weights, taps: 1 };
  }
  const { support: s0, f } = FILTERS[filter];
  const fscale = Math.max(scale, 1);
  const support = s0 * fscale;
  const taps = Math.ceil(support) * 2 + 1;
  const weights = new Float64Array(outLen * taps);
  for (let i = 0; i < outLen; i++) {
    const o = outStart + i;
    if (o < 0 || o >= outSize) continue;
    const center = (o + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + support + 0.5), inLen);
    let sum = 0;
    for (let x = xmin; x < xmax; x++) {
      const w = f((x - center + 0.5) / fscale);
      weights[i * taps + (x - xmin)] = w;
      sum += w;
    }
    if (sum !== 0) for (let x = 0; x < xmax - xmin; x++) weights[i * taps + x] /= sum;
    start[i] = inStart + xmin;
    count[i] = xmax - xmin;
  }
  return { start, count, weights, taps };
}

/**
 * Resizes `box` of `src` to a virtual `size` and returns the `win` window of it as float32 CHW
 * (3, win.height, win.width), values 0..255. `out` may be passed to write into (e.g. a batch slot).
 */
export function resampleToChw(
  src: RgbImage,
  box: Box,
  size: { height: number; width: number },
  win: Window,
  filter: Resample,
  out: Float32Array = new Float32Array(3 * win.height * win.width),
): Float32Array {
  const cx = coeffs(box.x, box.width, size.width, win.left, win.width, filter);
  const cy = coeffs(box.y, box.height, size.height, win.top, win.height, filter);
  // Source rows the vertical pass needs.
  let r0 = Number.POSITIVE_INFINITY;
  let r1 = 0;
  for (let i = 0; i < win.height; i++) {
    if (cy.count[i] === 0) continue;
    r0 = Math.min(r0, cy.start[i]);
    r1 = Math.max(r1, cy.start[i] + cy.count[i]);
  }
  const W = win.width;
  const plane = win.height * W;
  out.fill(0, 0, 3 * plane);
  if (r1 <= r0) return out;
  // Horizontal pass over the needed rows: tmp (rows, W, 3).
  const tmp = new Float32Array((r1 - r0) * W * 3);
  const s = src.data;
  const rowStride = src.width * 3;
  for (let r = r0; r < r1; r++) {
    const srow = r * rowStride;
    const trow = (r - r0) * W * 3;
    for (let j = 0; j < W; j++) {
      const n = cx.count[j];
      let a = 0;
      let b = 0;
      let c = 0;
      let p = srow + cx.start[j] * 3;
      const wo = j * cx.taps;
      for (let k = 0; k < n; k++, p += 3) {
        const w = cx.weights[wo + k];
        a += w * s[p];
        b += w * s[p + 1];
        c += w * s[p + 2];
      }
      tmp[trow + j * 3] = a;
      tmp[trow + j * 3 + 1] = b;
      tmp[trow + j * 3 + 2] = c;
    }
  }
  // Vertical pass into CHW.
  for (let i = 0; i < win.height; i++) {
    const n = cy.count[i];
    if (n === 0) continue;
    const wo = i * cy.taps;
    const base = (cy.start[i] - r0) * W * 3;
    for (let j = 0; j < W; j++) {
      let a = 0;
      let b = 0;
      let c = 0;
      for (let k = 0, p = base + j * 3; k < n; k++, p += W * 3) {
        const w = cy.weights[wo + k];
        a += w * tmp[p];
        b += w * tmp[p + 1];
        c += w * tmp[p + 2];
      }
      const o = i * W + j;
      out[o] = clamp255(a);
      out[plane + o] = clamp255(b);
      out[2 * plane + o] = clamp255(c);
    }
  }
  return out;
}

// Bicubic and Lanczos overshoot; Pillow clips to the uint8 range, so do we.
const clamp255 = (v: number) => (v < 0 ? 0 : v > 255 ? 255 : v);

/** Python's `round()` (half to even), which torchvision's size arithmetic uses. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
