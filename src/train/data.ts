/**
 * What the trainer reads batches from: one small {@link BatchSource} interface (next batch, a
 * resumable cursor) over the text `DataLoader`, the image `ImageLoader`, and cached backbone
 * features for head-only training; plus one-pass evaluation sources.
 *
 * @example
 * ```ts
 * const src = trainSource(data.train, { batchSize: 16, seed: 42 });   // EncodedDataset -> DataLoader
 * const b = await src.next();             // { inputs: { inputIds, attentionMask }, labels, numTargets, ... }
 * const saved = src.state(); ... await src.restore(saved);            // same next batch
 * ```
 */
import { noGrad } from "../autograd/tape.ts";
import { stepScope } from "../tensor/scope.ts";
import { type Batch, DataLoader, epochSeed } from "../data/batch.ts";
import type { MixOptions } from "../data/images/augment.ts";
import type { ImageDataset } from "../data/images/dataset.ts";
import { type DecodeOptions, thumbnailPng } from "../data/images/decode.ts";
import { type ImageBatch, ImageLoader, type LoaderState as ImageLoaderState } from "../data/images/loader.ts";
import type { ImageTransform } from "../data/images/transform.ts";
import type { EncodedDataset } from "../data/text/encode.ts";
import type { Module } from "../nn/module.ts";
import { ValueError } from "../tensor/errors.ts";
import { Generator } from "../tensor/rng.ts";
import { Tensor } from "../tensor/tensor.ts";

/** One batch as the trainer sees it. */
export interface TrainBatch {
  /** Model inputs other than labels (`inputIds`, `attentionMask`, ... or `pixelValues`). */
  inputs: Record<string, Tensor>;
  /** Pre-computed backbone features (head-only training on a cache): the model's `classify` runs on them. */
  features?: Tensor;
  labels: Tensor;
  /** Loss targets: examples (classification), elements (float labels), predicted tokens (LM). */
  numTargets: number;
  numSamples: number;
  /** Non-padding tokens (text), 0 for images. */
  numTokens: number;
  /** Dataset indices of the rows. */
  indices: number[];
}

/** A resumable stream of training batches that rolls over epochs. */
export interface BatchSource {
  readonly batchesPerEpoch: number;
  readonly numExamples: number;
  /** Epoch and in-epoch position of the next batch. */
  cursor(): { epoch: number; position: number };
  next(): Promise<TrainBatch>;
  /** JSON-serialisable cursor (goes into checkpoints). */
  state(): unknown;
  restore(state: unknown): Promise<void>;
  /** Milliseconds spent waiting for data. */
  readonly waitMs: number;
  close(): Promise<void>;
}

/** One pass over evaluation data, in order. */
export interface EvalSource {
  readonly numExamples: number;
  batches(): AsyncIterable<TrainBatch>;
  /** The input for the report's mistakes table: text, an image thumbnail, or nothing. */
  describe?(index: number): { text?: string; imagePng?: string } | Promise<{ text?: string; imagePng?: string }>;
  close?(): Promise<void>;
}

/** Image data for the trainer to build its own loader from. */
export interface ImageDataSpec {
  dataset: ImageDataset;
  /** Train transform (with `augment`); evaluation drops `augment`. */
  transform: ImageTransform;
  workers?: number;
  mix?: MixOptions | null;
  skipInvalid?: boolean;
}

/** Anything the trainer accepts as data. */
export type DataSpec = EncodedDataset | DataLoader | ImageDataSpec | ImageLoader | BatchSource;

const isEncoded = (d: unknown): d is EncodedDataset =>
  typeof d === "object" && d !== null && "examples" in d && "padTokenId" in d;
const isImageSpec = (d: unknown): d is ImageDataSpec =>
  typeof d === "object" && d !== null && "dataset" in d && "transform" in d;

function textBatch(b: Batch): TrainBatch {
  const inputs: Record<string, Tensor> = { inputIds: b.inputIds, attentionMask: b.attentionMask };
  if (b.tokenTypeIds) inputs.tokenTypeIds = b.tokenTypeIds;
  if (b.positionIds) inputs.positionIds = b.positionIds;
  if (b.segmentIds) inputs.segmentIds = b.segmentIds;
  const m = b.attentionMask;
  let tokens = 0;
  for (let i = 0; i < m.size; i++) tokens += m.data[m.offset + i];
  return {
    inputs,
    labels: b.labels,
    numTargets: b.numTargets,
    numSamples: b.indices.length,
    numTokens: tokens,
    indices: b.indices,
  };
}

function imageBatch(b: ImageBatch): TrainBatch {
  const n = b.indices.length;
  const numTargets = b.labels.dtype === "int32" ? n : n; // soft labels still average over rows
  return {
    inputs: { pixelValues: b.pixelValues },
    labels: b.labels,
    numTargets,
    numSamples: n,
    numTokens: 0,
    indices: b.indices,
  };
}

class TextSource implements BatchSource {
  waitMs = 0;
  constructor(private loader: DataLoader) {}
  get batchesPerEpoch() {
    return this.loader.length;
  }
  get numExamples() {
    return this.loader.examples.length;
  }
  cursor() {
    const s = this.loader.state();
    return { epoch: s.epoch, position: s.position };
  }
  async next() {
    return textBatch(this.loader.nextBatch());
  }
  state() {
    return this.loader.state();
  }
  async restore(s: unknown) {
    this.loader.loadState(s as ReturnType<DataLoader["state"]>);
  }
  async close() {}
}

class ImageSource implements BatchSource {
  private it: AsyncIterator<ImageBatch> | null = null;
  private waited = 0;
  constructor(private loader: ImageLoader) {}
  get batchesPerEpoch() {
    return this.loader.numBatches;
  }
  get numExamples() {
    return this.loader.dataset.items.length;
  }
  get waitMs() {
    return this.waited + this.loader.waitMs;
  }
  cursor() {
    const s = this.loader.state();
    return { epoch: s.epoch, position: s.batch };
  }
  async next() {
    this.it ??= this.loader[Symbol.asyncIterator]();
    let r = await this.it.next();
    if (r.done) {
      this.it = this.loader[Symbol.asyncIterator]();
      r = await this.it.next();
    }
    if (r.done) throw new ValueError("image loader produced no batch");
    return imageBatch(r.value);
  }
  state() {
    return this.loader.state();
  }
  async restore(s: unknown) {
    await this.it?.return?.();
    this.it = null;
    this.waited += this.loader.waitMs;
    await this.loader.close();
    this.loader = ImageLoader.fromState(this.loader.dataset, this.loader.opts, s as ImageLoaderState);
  }
  async close() {
    await this.it?.return?.();
    await this.loader.close();
  }
}

/** Cached features (N, F) + labels, shuffled per epoch like the text loader. */
export class FeatureSource implements BatchSource {
  waitMs = 0;
  private epoch = 0;
  private position = 0;
  private order: { epoch: number; idx: number[] } | null = null;
  constructor(
    readonly features: Float32Array,
    readonly dim: number,
    readonly labels: Tensor,
    readonly batchSize: number,
    readonly seed: number,
    readonly shuffle = true,
    /** The epoch order (default: a seeded shuffle like the text loader's); images pass their loader's order. */
    private readonly orderOf?: (epoch: number) => number[],
  ) {}
  get numExamples() {
    return this.features.length / this.dim;
  }
  get batchesPerEpoch() {
    return Math.ceil(this.numExamples / this.batchSize);
  }
  cursor() {
    return { epoch: this.epoch, position: this.position };
  }
  private epochOrder(): number[] {
    if (this.order?.epoch === this.epoch) return this.order.idx;
    let idx = Array.from({ length: this.numExamples }, (_, i) => i);
    if (this.shuffle && this.orderOf) idx = this.orderOf(this.epoch);
    else if (this.shuffle) new Generator(epochSeed(this.seed, this.epoch)).shuffle(idx);
    this.order = { epoch: this.epoch, idx };
    return idx;
  }
  async next(): Promise<TrainBatch> {
    const idx = this.epochOrder().slice(this.position * this.batchSize, (this.position + 1) * this.batchSize);
    const F = this.dim;
    const x = new Float32Array(idx.length * F);
    for (const [r, i] of idx.entries()) x.set(this.features.subarray(i * F, (i + 1) * F), r * F);
    const perRow = this.labels.ndim === 2 ? this.labels.shape[1] : 1;
    const lab =
      this.labels.dtype === "int32" ? new Int32Array(idx.length * perRow) : new Float32Array(idx.length * perRow);
    idx.forEach((i, r) => {
      for (let k = 0; k < perRow; k++) lab[r * perRow + k] = this.labels.data[this.labels.offset + i * perRow + k];
    });
    const labels = new Tensor(lab, this.labels.dtype, this.labels.ndim === 2 ? [idx.length, perRow] : [idx.length]);
    if (++this.position >= this.batchesPerEpoch) {
      this.epoch++;
      this.position = 0;
    }
    const n = idx.length;
    return {
      inputs: {},
      features: new Tensor(x, "float32", [n, F]),
      labels,
      numTargets: n,
      numSamples: n,
      numTokens: 0,
      indices: idx,
    };
  }
  state() {
    return { epoch: this.epoch, position: this.position, seed: this.seed };
  }
  async restore(s: unknown) {
    const st = s as { epoch: number; position: number; seed: number };
    if (st.seed !== this.seed) throw new ValueError(`feature source: saved seed ${st.seed} differs from ${this.seed}`);
    this.epoch = st.epoch;
    this.position = st.position;
  }
  async close() {}
  /** The evaluation view: every row once, in order. */
  evalSource(): EvalSource {
    const self = new FeatureSource(this.features, this.dim, this.labels, this.batchSize, this.seed, false);
    return {
      numExamples: self.numExamples,
      async *batches() {
        await self.restore({ epoch: 0, position: 0, seed: self.seed });
        for (let b = 0; b < self.batchesPerEpoch; b++) yield await self.next();
      },
    };
  }
}

/** The training batch source for `spec` (`batchSize`/`seed` apply when the trainer builds the loader). */
export function trainSource(spec: DataSpec, o: { batchSize: number; seed: number }): BatchSource {
  if (spec instanceof DataLoader) return new TextSource(spec);
  if (spec instanceof ImageLoader) return new ImageSource(spec);
  if (isEncoded(spec))
    return new TextSource(
      new DataLoader(spec.examples, { batchSize: o.batchSize, seed: o.seed, padTokenId: spec.padTokenId }),
    );
  if (isImageSpec(spec))
    return new ImageSource(
      new ImageLoader(spec.dataset, {
        transform: spec.transform,
        batchSize: o.batchSize,
        seed: o.seed,
        workers: spec.workers,
        mix: spec.mix,
        skipInvalid: spec.skipInvalid,
      }),
    );
  if (typeof (spec as BatchSource).next === "function") return spec as BatchSource;
  throw new ValueError(
    "train: expected an EncodedDataset, DataLoader, { dataset, transform }, ImageLoader or BatchSource",
  );
}

/** A one-pass, in-order evaluation source for `spec`. */
export function evalSource(spec: DataSpec | EvalSource, o: { batchSize: number }): EvalSource {
  if (typeof (spec as EvalSource).batches === "function") return spec as EvalSource;
  if (isEncoded(spec) || spec instanceof DataLoader) {
    const examples = spec instanceof DataLoader ? spec.examples : spec.examples;
    const padTokenId = spec instanceof DataLoader ? spec.options.padTokenId : spec.padTokenId;
    const bs = spec instanceof DataLoader ? spec.options.batchSize : o.batchSize;
    const sources = isEncoded(spec) ? spec.sources : undefined;
    return {
      numExamples: examples.length,
      async *batches() {
        const l = new DataLoader(examples, { batchSize: bs, shuffle: false, padTokenId });
        for (const b of l) yield textBatch(b);
      },
      describe(i: number) {
        const s = sources?.[examples[i]?.origins[0] ?? i] as unknown as Record<string, unknown> | undefined;
        const t = s?.text ?? s?.prompt ?? (Array.isArray(s?.tokens) ? s.tokens.join(" ") : undefined);
        return typeof t === "string" ? { text: t } : {};
      },
    };
  }
  const img =
    spec instanceof ImageLoader
      ? { dataset: spec.dataset, transform: spec.opts.transform, workers: spec.opts.workers }
      : isImageSpec(spec)
        ? spec
        : null;
  if (img) {
    const bs = spec instanceof ImageLoader ? spec.opts.batchSize : o.batchSize;
    let loader: ImageLoader | null = null;
    return {
      numExamples: img.dataset.items.length,
      async *batches() {
        loader = new ImageLoader(img.dataset, {
          transform: { ...img.transform, augment: null },
          batchSize: bs,
          shuffle: false,
          workers: img.workers,
        });
        for await (const b of loader) yield imageBatch(b);
        await loader.close();
      },
      describe: (i: number) => describeImage(img.dataset, i, img.transform.decode),
      async close() {
        await loader?.close();
      },
    };
  }
  const src = spec as BatchSource;
  return {
    numExamples: src.numExamples,
    async *batches() {
      for (let b = 0; b < src.batchesPerEpoch; b++) yield await src.next();
    },
  };
}

/** A thumbnail of dataset row `i` for the report; an image that no longer decodes shows none. */
export async function describeImage(
  dataset: ImageDataset,
  i: number,
  decode?: DecodeOptions,
): Promise<{ imagePng?: string }> {
  const item = dataset.items[i];
  if (!item) return {};
  try {
    return { imagePng: await thumbnailPng(item.path, 96, decode) };
  } catch {
    return {};
  }
}

/** A model whose backbone and head can run apart (the vision `ImageClassifier`s). */
export interface SeparableHead {
  pooledFeatures(pixelValues: Tensor): Tensor;
  classify(features: Tensor, labels?: Tensor | null): { logits: Tensor; loss?: Tensor };
}

export function isSeparable(m: unknown): m is SeparableHead & Module {
  const r = m as Partial<SeparableHead>;
  return typeof r.pooledFeatures === "function" && typeof r.classify === "function";
}

/**
 * Runs the frozen backbone once over `src` (in order, inference mode, no gradient) and returns the
 * pooled features by dataset index with the labels: the input of head-only training.
 */
export async function computeFeatures(
  model: SeparableHead & Module,
  src: EvalSource,
): Promise<{ features: Float32Array; dim: number; labels: Tensor }> {
  const wasTraining = model.training;
  model.eval();
  const rows: Float32Array[] = [];
  const labs: Tensor[] = [];
  const order: number[] = [];
  let dim = 0;
  try {
    for await (const b of src.batches()) {
      // A scope per batch: the backbone's intermediates go back to the storage pool, so the next
      // batch reuses them instead of faulting in fresh pages (only the copied features escape).
      const row = stepScope(
        () => {
          const f = noGrad(() => model.pooledFeatures(b.inputs.pixelValues));
          dim = f.shape[1];
          return f.toFloat32Array();
        },
        { keep: [model, b] },
      );
      rows.push(row);
      labs.push(b.labels);
      order.push(...b.indices);
    }
  } finally {
    model.train(wasTraining);
  }
  const n = order.length;
  const features = new Float32Array(n * dim);
  let r = 0;
  for (const chunk of rows) {
    features.set(chunk, r * dim);
    r += chunk.length / dim;
  }
  // Rows come in dataset order (shuffle off), so index i is dataset item order[i].
  const first = labs[0];
  const per = first.ndim === 2 ? first.shape[1] : 1;
  const lab = first.dtype === "int32" ? new Int32Array(n * per) : new Float32Array(n * per);
  let o = 0;
  for (const l of labs) {
    lab.set(l.dtype === "int32" ? (l.data as Int32Array).subarray(l.offset, l.offset + l.size) : l.toFloat32Array(), o);
    o += l.size;
  }
  return { features, dim, labels: new Tensor(lab, first.dtype, per > 1 || first.ndim === 2 ? [n, per] : [n]) };
}
