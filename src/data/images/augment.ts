/**
 * Training augmentation, torchvision's algorithms on float CHW images, every random draw taken from
 * a `Generator` so a sample is the same given (seed, epoch, index) on any thread or machine.
 *
 * Geometric ops run on the decoded pixels in TypeScript, not in sharp: the random resized crop is
 * folded into the resize (`resampleToChw` with a crop box, Pillow-style antialiased filter), flip
 * and rotation work on the float tensor. Rotation uses nearest-neighbour like torchvision's
 * `RandomRotation` default, about the image centre, without expanding, filling with 0.
 * Order (torchvision's usual recipe): random resized crop -> flip -> rotation -> colour jitter ->
 * rescale + normalise -> random erasing; MixUp / CutMix act on whole batches.
 *
 * @example
 * ```ts
 * const aug: AugmentOptions = { horizontalFlip: 0.5, colorJitter: { brightness: 0.4 }, randomErasing: { p: 0.25 } };
 * ```
 */
import type { Generator } from "../../tensor/rng.ts";
import type { Box } from "./resample.ts";
import { roundHalfEven } from "./resample.ts";

export interface AugmentOptions {
  /** torchvision `RandomResizedCrop`; defaults scale (0.08, 1), ratio (3/4, 4/3). `false` = eval resize + crop. */
  randomResizedCrop?: { scale?: [number, number]; ratio?: [number, number] } | false;
  /** Probability of a horizontal flip. Default 0.5. */
  horizontalFlip?: number;
  /** Maximum rotation in degrees (uniform in [-d, d]). Default 0 (off). */
  rotation?: number;
  /** torchvision `ColorJitter` strengths; hue in [0, 0.5]. */
  colorJitter?: { brightness?: number; contrast?: number; saturation?: number; hue?: number };
  /** torchvision `RandomErasing` (after normalisation); defaults p 0.5, scale (0.02, 0.33), ratio (0.3, 3.3), value 0. */
  randomErasing?: { p?: number; scale?: [number, number]; ratio?: [number, number]; value?: number | "random" };
}

/** Batch-level mixing: MixUp and/or CutMix (one of them per batch, chosen at random when both). */
export interface MixOptions {
  mixupAlpha?: number;
  cutmixAlpha?: number;
}

const uniform = (g: Generator, a: number, b: number) => a + (b - a) * g.random();

/**
 * torchvision `RandomResizedCrop.get_params`: up to 10 tries at an area fraction in `scale` and a
 * log-uniform aspect ratio in `ratio`, else a centre crop clamped to the ratio range.
 */
export function randomResizedCropBox(
  g: Generator,
  width: number,
  height: number,
  scale: [number, number] = [0.08, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): Box {
  const area = width * height;
  const lr0 = Math.log(ratio[0]);
  const lr1 = Math.log(ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * uniform(g, scale[0], scale[1]);
    const aspect = Math.exp(uniform(g, lr0, lr1));
    const w = roundHalfEven(Math.sqrt(target * aspect));
    const h = roundHalfEven(Math.sqrt(target / aspect));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const y = g.randint(0, height - h + 1);
      const x = g.randint(0, width - w + 1);
      return { x, y, width: w, height: h };
    }
  }
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { x: Math.floor((width - w) / 2), y: Math.floor((height - h) / 2), width: w, height: h };
}

/** Mirrors each row of a (3, H, W) image in place. */
export function hflip(chw: Float32Array, H: number, W: number, offset = 0): void {
  for (let r = 0; r < 3 * H; r++) {
    const base = offset + r * W;
    for (let i = 0, j = W - 1; i < j; i++, j--) {
      const t = chw[base + i];
      chw[base + i] = chw[base + j];
      chw[base + j] = t;
    }
  }
}

/** Rotates a (3, H, W) image counter-clockwise by `degrees` about its centre (nearest, fill 0). */
export function rotate(chw: Float32Array, H: number, W: number, degrees: number, offset = 0): void {
  const plane = H * W;
  const src = chw.slice(offset, offset + 3 * plane);
  const th = (degrees * Math.PI) / 180;
  const cos = Math.cos(th);
  const sin = Math.sin(th);
  const cx = (W - 1) / 2;
  const cy = (H - 1) / 2;
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const dx = x - cx;
      const dy = y - cy;
      const sx = Math.round(cos * dx - sin * dy + cx);
      const sy = Math.round(sin * dx + cos * dy + cy);
      const inside = sx >= 0 && sx < W && sy >= 0 && sy < H;
      for (let c = 0; c < 3; c++) chw[offset + c * plane + y * W + x] = inside ? src[c * plane + sy * W + sx] : 0;
    }
  }
}

const gray = (r: number, g: number, b: number) => 0.2989 * r + 0.587 * g + 0.114 * b;

/**
 * torchvision `ColorJitter` on a (3, H, W) image with values in [0, bound]: the four adjustments in
 * a random order, each factor drawn only for the enabled ones (the same draws as torchvision).
 */
export function colorJitter(
  g: Generator,
  chw: Float32Array,
  H: number,
  W: number,
  o: NonNullable<AugmentOptions["colorJitter"]>,
  bound: number,
  offset = 0,
): void {
  const order = g.shuffle([0, 1, 2, 3]);
  const range = (v: number | undefined) => (v ? [Math.max(0, 1 - v), 1 + v] : null);
  const rb = range(o.brightness);
  const rc = range(o.contrast);
  const rs = range(o.saturation);
  const b = rb ? uniform(g, rb[0], rb[1]) : null;
  const c = rc ? uniform(g, rc[0], rc[1]) : null;
  const s = rs ? uniform(g, rs[0], rs[1]) : null;
  const h = o.hue ? uniform(g, -o.hue, o.hue) : null;
  const n = H * W;
  const R = offset;
  const G = offset + n;
  const B = offset + 2 * n;
  const clamp = (v: number) => (v < 0 ? 0 : v > bound ? bound : v);
  for (const op of order) {
    if (op === 0 && b !== null) for (let i = 0; i < 3 * n; i++) chw[offset + i] = clamp(chw[offset + i] * b);
    if (op === 1 && c !== null) {
      let mean = 0;
      for (let i = 0; i < n; i++) mean += gray(chw[R + i], chw[G + i], chw[B + i]);
      mean /= n;
      for (let i = 0; i < 3 * n; i++) chw[offset + i] = clamp(c * chw[offset + i] + (1 - c) * mean);
    }
    if (op === 2 && s !== null) {
      for (let i = 0; i < n; i++) {
        const y = gray(chw[R + i], chw[G + i], chw[B + i]);
        chw[R + i] = clamp(s * chw[R + i] + (1 - s) * y);
        chw[G + i] = clamp(s * chw[G + i] + (1 - s) * y);
        chw[B + i] = clamp(s * chw[B + i] + (1 - s) * y);
      }
    }
    if (op === 3 && h !== null) for (let i = 0; i < n; i++) shiftHue(chw, R + i, G + i, B + i, h, bound);
  }
}

/** torchvision's `_rgb2hsv` -> hue shift -> `_hsv2rgb` for one pixel. */
function shiftHue(a: Float32Array, ir: number, ig: number, ib: number, shift: number, bound: number): void {
  const r = a[ir] / bound;
  const g = a[ig] / bound;
  const b = a[ib] / bound;
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  const cr = maxc - minc;
  const sat = maxc === minc ? 0 : cr / maxc;
  let hue = 0;
  if (cr !== 0) {
    const rc = (maxc - r) / cr;
    const gc = (maxc - g) / cr;
    const bc = (maxc - b) / cr;
    if (maxc === r) hue = bc - gc;
    else if (maxc === g) hue = 2 + rc - bc;
    else hue = 4 + gc - rc;
  }
  hue = (((hue / 6 + 1 + shift) % 1) + 1) % 1;
  const v = maxc;
  const i6 = Math.floor(hue * 6);
  const f = hue * 6 - i6;
  const c01 = (x: number) => Math.min(1, Math.max(0, x));
  const p = c01(v * (1 - sat));
  const q = c01(v * (1 - sat * f));
  const t = c01(v * (1 - sat * (1 - f)));
  const rgb = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][i6 % 6];
  a[ir] = rgb[0] * bound;
  a[ig] = rgb[1] * bound;
  a[ib] = rgb[2] * bound;
}

/** torchvision `RandomErasing` on a normalised (3, H, W) image, in place. Returns whether it erased. */
export function randomErasing(
  g: Generator,
  chw: Float32Array,
  H: number,
  W: number,
  o: NonNullable<AugmentOptions["randomErasing"]>,
  offset = 0,
): boolean {
  if (g.random() >= (o.p ?? 0.5)) return false;
  const [s0, s1] = o.scale ?? [0.02, 0.33];
  const [r0, r1] = o.ratio ?? [0.3, 3.3];
  const area = H * W;
  for (let t = 0; t < 10; t++) {
    const target = area * uniform(g, s0, s1);
    const aspect = Math.exp(uniform(g, Math.log(r0), Math.log(r1)));
    const h = roundHalfEven(Math.sqrt(target * aspect));
    const w = roundHalfEven(Math.sqrt(target / aspect));
    if (!(h < H && w < W)) continue;
    const y = g.randint(0, H - h + 1);
    const x = g.randint(0, W - w + 1);
    for (let c = 0; c < 3; c++) {
      for (let yy = y; yy < y + h; yy++) {
        const base = offset + c * area + yy * W;
        for (let xx = x; xx < x + w; xx++) chw[base + xx] = o.value === "random" ? g.normal() : (o.value ?? 0);
      }
    }
    return true;
  }
  return false;
}

/** A Gamma(a, 1) draw (Marsaglia-Tsang; boosted for a < 1). */
function gamma(g: Generator, a: number): number {
  if (a < 1) return gamma(g, a + 1) * g.random() ** (1 / a);
  const d = a - 1 / 3;
  const c = 1 / Math.sqrt(9 * d);
  for (;;) {
    let x: number;
    let v: number;
    do {
      x = g.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const u = g.random();
    if (u < 1 - 0.0331 * x ** 4 || Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v;
  }
}

/** A Beta(a, b) draw. */
export function sampleBeta(g: Generator, a: number, b: number): number {
  const x = gamma(g, a);
  const y = gamma(g, b);
  return x / (x + y);
}

/**
 * torchvision v2 `MixUp` / `CutMix` on a batch (B, 3, H, W) in place: each sample is mixed with its
 * predecessor (the batch rolled by one). Returns soft labels (B, numClasses) float32.
 */
export function mixBatch(
  g: Generator,
  pixels: Float32Array,
  labels: readonly number[],
  numClasses: number,
  H: number,
  W: number,
  o: MixOptions,
): Float32Array {
  const B = labels.length;
  const useCut = o.cutmixAlpha !== undefined && (o.mixupAlpha === undefined || g.random() < 0.5);
  const alpha = (useCut ? o.cutmixAlpha : o.mixupAlpha) as number;
  let lam = sampleBeta(g, alpha, alpha);
  const S = 3 * H * W;
  const orig = pixels.slice(0, B * S);
  const prev = (i: number) => (i + B - 1) % B;
  if (!useCut) {
    for (let i = 0; i < B; i++) {
      const a = i * S;
      const p = prev(i) * S;
      for (let k = 0; k < S; k++) pixels[a + k] = lam * orig[a + k] + (1 - lam) * orig[p + k];
    }
  } else {
    const rx = g.randint(0, W);
    const ry = g.randint(0, H);
    const r = 0.5 * Math.sqrt(1 - lam);
    const hw = Math.trunc(r * W);
    const hh = Math.trunc(r * H);
    const x1 = Math.max(rx - hw, 0);
    const y1 = Math.max(ry - hh, 0);
    const x2 = Math.min(rx + hw, W);
    const y2 = Math.min(ry + hh, H);
    for (let i = 0; i < B; i++) {
      for (let c = 0; c < 3; c++) {
        for (let y = y1; y < y2; y++) {
          const row = c * H * W + y * W;
          for (let x = x1; x < x2; x++) pixels[i * S + row + x] = orig[prev(i) * S + row + x];
        }
      }
    }
    lam = 1 - ((x2 - x1) * (y2 - y1)) / (W * H);
  }
  const soft = new Float32Array(B * numClasses);
  for (let i = 0; i < B; i++) {
    soft[i * numClasses + labels[i]] += lam;
    soft[i * numClasses + labels[prev(i)]] += 1 - lam;
  }
  return soft;
}
