// Issue 6 done-means, end to end on real images: MNIST digits 5-9 written as PNG files to an image
// folder (few per class), read back through the image pipeline (indexImageFolder + ImageLoader, the
// sharp decode path, grey -> RGB, the bundled model's preprocessor_config.json). With the same
// images, steps and lr schedule, three runs of the same architecture:
//   (a) fine-tune: the bundled backbone pre-trained on digits 0-4 (models/digits-resnet), new head;
//   (b) from scratch: random init;
//   (c) head only: the pre-trained backbone frozen (BatchNorm in inference mode), new head.
// Fine-tuning must beat from-scratch by a clear margin.
//
// Measured (native backend, AVX-512, 2 threads, loaded 2-core machine, ~30 s in all), 10 PNGs per
// class to train on, 100 per class to test on, 60 steps of 20, AdamW lr 2e-3, cosine, 10 warmup:
//   (a) fine-tune 91.8%   (b) from scratch 78.8%   (c) head only 69.6% (645 trainable parameters).
// Head-only underfits at this budget (last loss ~1.0); a 5x head lr gave ~73%. Scratch at 2.5x the lr
// gave 79.6%, so the margin is not an lr artefact. With 20 per class: (a) 92.4% vs (b) 85.2%.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeMnistFolder } from "../../scripts/make-mnist-folder.ts";
import { requireMnist } from "../../scripts/pretrain-cnn.ts"; // also registers the "resnet" architecture
import { backward, noGrad } from "../../src/autograd/index.ts";
import { backend, initBackend } from "../../src/backend/index.ts";
import {
  type ImageDataset,
  ImageLoader,
  indexImageFolder,
  type Preprocessor,
  preprocessorFromConfig,
} from "../../src/data/images/index.ts";
import { getArchitecture, type LoadedModel, loadPretrained } from "../../src/models/index.ts";
import type { ImageClassifier } from "../../src/models/vision-common.ts";
import { argmax } from "../../src/ops/index.ts";
import { AdamW, getCosineScheduleWithWarmup, weightDecayGroups } from "../../src/optim/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

await initBackend();
const MODEL = fileURLToPath(new URL("../../models/digits-resnet", import.meta.url));
const DIGITS = [5, 6, 7, 8, 9];
const TRAIN_PER_CLASS = 10;
const TEST_PER_CLASS = 100;
const STEPS = 60; // 12 epochs of the 50 training images
const BATCH = 20;
const LR = 2e-3;
const WARMUP = 10;

const native = backend().name === "native";
const skip = !existsSync(join(MODEL, "model.safetensors"))
  ? `bundled model missing at ${MODEL} (run npm run pretrain:cnn)`
  : !native && !process.env.TUNEKIT_E2E_SLOW
    ? "native backend unavailable: on the reference backend this takes many minutes (set TUNEKIT_E2E_SLOW=1 to run anyway)"
    : false;

const tmp = mkdtempSync(join(tmpdir(), "tunekit-e2e-images-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

type Variant = "finetune" | "scratch" | "head";

async function buildModel(v: Variant, labels: string[]): Promise<ImageClassifier> {
  manualSeed(1234);
  if (v === "scratch") {
    const cfg = JSON.parse(readFileSync(join(MODEL, "config.json"), "utf8"));
    const m = getArchitecture("resnet").create(cfg, "image-classification") as ImageClassifier;
    m.replaceHead(labels.length, labels);
    return m;
  }
  const m = (await loadPretrained(MODEL, { onWarning: () => {} })) as LoadedModel & ImageClassifier;
  manualSeed(1234);
  m.replaceHead(labels.length, labels);
  if (v === "head") {
    m.freeze();
    m.unfreeze([m.headPrefix]);
  }
  return m;
}

async function accuracy(m: ImageClassifier, ds: ImageDataset, pre: Preprocessor): Promise<number> {
  m.eval();
  const loader = new ImageLoader(ds, { transform: { preprocessor: pre }, batchSize: 125, shuffle: false, workers: 0 });
  let correct = 0;
  for await (const b of loader) {
    const pred = noGrad(() => argmax(m.forward({ pixelValues: b.pixelValues }).logits, -1)).toList();
    pred.forEach((p, i) => {
      if (p === b.labels.data[i]) correct++;
    });
  }
  await loader.close();
  return correct / ds.items.length;
}

/** The same loop for every variant: AdamW, cosine schedule with warmup, `STEPS` batches of `BATCH`. */
async function run(v: Variant, train: ImageDataset, testSet: ImageDataset, pre: Preprocessor) {
  const t0 = performance.now();
  const m = await buildModel(v, train.classes);
  m.train();
  const opt = new AdamW(weightDecayGroups(m.namedParameters(), 0.01), { lr: LR });
  const sched = getCosineScheduleWithWarmup(opt, WARMUP, STEPS);
  const loader = new ImageLoader(train, { transform: { preprocessor: pre }, batchSize: BATCH, seed: 7, workers: 0 });
  let step = 0;
  let loss = 0;
  while (step < STEPS) {
    for await (const b of loader) {
      opt.zeroGrad();
      const l = m.forward({ pixelValues: b.pixelValues, labels: b.labels }).loss as Tensor;
      backward(l);
      opt.step();
      sched.step();
      loss = l.item();
      if (++step === STEPS) break;
    }
  }
  await loader.close();
  const acc = await accuracy(m, testSet, pre);
  const trainable = m.numParameters({ trainable: true });
  return { acc, loss, trainable, seconds: (performance.now() - t0) / 1000 };
}

test("fine-tuning a backbone pre-trained on other digits beats training from scratch with the same images and budget", {
  skip,
}, async (t) => {
  const mnist = requireMnist();
  const counts = (n: number) => new Map(DIGITS.map((d) => [d, n]));
  // Same seed, disjoint slices of each digit's seeded order: train = first 20, test = next 50.
  await writeMnistFolder(mnist, { out: join(tmp, "train"), counts: counts(TRAIN_PER_CLASS), seed: 1 });
  await writeMnistFolder(mnist, {
    out: join(tmp, "test"),
    counts: counts(TEST_PER_CLASS),
    seed: 1,
    skip: TRAIN_PER_CLASS,
  });
  const train = await indexImageFolder(join(tmp, "train"));
  const testSet = await indexImageFolder(join(tmp, "test"));
  assert.deepEqual(train.classes, ["5", "6", "7", "8", "9"]);
  assert.equal(testSet.items.length, DIGITS.length * TEST_PER_CLASS);
  const pre = preprocessorFromConfig(MODEL);
  const res: Record<string, Awaited<ReturnType<typeof run>>> = {};
  for (const v of ["finetune", "scratch", "head"] as const) {
    res[v] = await run(v, train, testSet, pre);
    t.diagnostic(
      `${v}: test accuracy ${(res[v].acc * 100).toFixed(1)}%, last loss ${res[v].loss.toFixed(3)}, ${res[v].trainable} trainable, ${res[v].seconds.toFixed(1)} s`,
    );
  }
  // 500 test images: one run's accuracy has a standard error of ~1.5 points; demand 8.
  assert.ok(res.finetune.acc >= res.scratch.acc + 0.08, `fine-tune ${res.finetune.acc} vs scratch ${res.scratch.acc}`);
  assert.ok(res.finetune.acc >= 0.85, `fine-tune ${res.finetune.acc}`);
});
