/**
 * Batches and the data loader: dynamic padding per batch, seeded shuffling per epoch, and a
 * cursor that can be saved in a checkpoint and restored so a resumed run sees exactly the same
 * batches.
 *
 * Contract with the models and the trainer:
 * - right padding: `inputIds` padded with the pad id, `attentionMask` 0 on padding;
 * - classification labels are int32 class ids `(B)`, or float32 `(B, K)` (multi-hot for
 *   multi-label, targets for regression);
 * - causal-LM labels are int32 `(B, T)` aligned with `inputIds` (labels[t] = ids[t] or -100),
 *   and the model shifts them as transformers does: logits at t predict labels[t + 1].
 *   `numTargets` counts exactly the positions t >= 1 with labels[t] != -100, so summed token
 *   losses divided by the sum of `numTargets` over micro-batches equals the big-batch mean;
 * - packed causal-LM batches add `positionIds (B, T)`, restarting at 0 for each document, and
 *   `segmentIds (B, T)`, 1, 2, ... per document in a row and 0 on padding. The model builds its
 *   additive attention mask `(B, 1, T, T)` as 0 where `segmentIds[b, i] == segmentIds[b, j] != 0`
 *   and `j <= i`, and -inf elsewhere: block-diagonal causal, no attention across documents.
 *
 * @example
 * ```ts
 * const loader = new DataLoader(encoded.examples, { batchSize: 16, seed: 42, padTokenId: encoded.padTokenId });
 * for (const batch of loader) step(batch);               // one epoch
 * const saved = loader.state();                           // {epoch, position, seed}
 * const again = DataLoader.fromState(encoded.examples, opts, saved); // same next batch
 * ```
 */

import { Generator } from "../tensor/rng.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { DataError } from "./errors.ts";

/** Label value of ignored positions, as PyTorch's `CrossEntropyLoss(ignore_index=-100)`. */
export const IGNORE_INDEX = -100;

/** One tokenized example (or one packed block of several). */
export interface EncodedExample {
  inputIds: number[];
  tokenTypeIds?: number[];
  /** Classification: a class id, or a float vector (multi-hot / regression targets). */
  label?: number | number[];
  /** Causal LM: per-token labels, -100 where no loss applies. */
  labels?: number[];
  /** Token classification: a class id per token, -100 where no loss applies (not shifted). */
  tokenLabels?: number[];
  /** Packed blocks: position within each document. */
  positionIds?: number[];
  /** Packed blocks: 1, 2, ... per document (0 is padding). */
  segmentIds?: number[];
  /** Indices of the dataset examples this came from (one, or several for a packed block). */
  origins: number[];
}

/** What the trainer feeds the model. All tensors are int32 except float labels. */
export interface Batch {
  /** (B, T) int32. */
  inputIds: Tensor;
  /** (B, T) int32, 1 on tokens and 0 on padding. */
  attentionMask: Tensor;
  /** (B, T) int32, when the tokenizer produces segment (sentence A/B) ids. */
  tokenTypeIds?: Tensor;
  /** (B, T) int32, packed LM blocks only. */
  positionIds?: Tensor;
  /** (B, T) int32, packed LM blocks only: document ids for the block-diagonal mask. */
  segmentIds?: Tensor;
  /** int32 (B) class ids | float32 (B, K) | int32 (B, T) token labels with -100. */
  labels: Tensor;
  /** Targets contributing to the loss: B for class ids, B*K for float labels, counted tokens for LM (see module doc). */
  numTargets: number;
  /** Indices (into the loader's example array) of the rows, in order. */
  indices: number[];
}

/** Options for {@link collate}. */
export interface CollateOptions {
  padTokenId: number;
  /** Round T up to a multiple of this (e.g. 8 for kernels that like it). */
  padToMultipleOf?: number;
}

/** Counts the LM targets of one label row: t >= 1 with labels[t] != -100 (labels[0] is never predicted). */
export function countTargets(labels: readonly number[]): number {
  let n = 0;
  for (let t = 1; t < labels.length; t++) if (labels[t] !== IGNORE_INDEX) n++;
  return n;
}

/**
 * Pads a list of examples to the longest in the list (right padding) and builds a {@link Batch}.
 *
 * @example collate([ex0, ex1], { padTokenId: 0 }).inputIds.shape // [2, longest]
 */
export function collate(
  examples: readonly EncodedExample[],
  indices: readonly number[],
  options: CollateOptions,
): Batch {
  const B = examples.length;
  if (B === 0) throw new DataError("batch", "bad_option", "cannot collate an empty batch");
  let T = Math.max(...examples.map((e) => e.inputIds.length));
  const m = options.padToMultipleOf ?? 1;
  T = Math.ceil(T / m) * m;
  const ids = new Int32Array(B * T).fill(options.padTokenId);
  const mask = new Int32Array(B * T);
  const withTypes = examples.some((e) => e.tokenTypeIds);
  const withPos = examples.some((e) => e.segmentIds);
  const types = withTypes ? new Int32Array(B * T) : undefined;
  const pos = withPos ? new Int32Array(B * T) : undefined;
  const seg = withPos ? new Int32Array(B * T) : undefined;
  examples.forEach((e, b) => {
    const o = b * T;
    ids.set(e.inputIds, o);
    if (e.segmentIds) {
      seg!.set(e.segmentIds, o);
      for (let t = 0; t < e.segmentIds.length; t++) mask[o + t] = e.segmentIds[t]! > 0 ? 1 : 0;
    } else mask.fill(1, o, o + e.inputIds.length);
    if (e.tokenTypeIds) types!.set(e.tokenTypeIds, o);
    if (e.positionIds) pos!.set(e.positionIds, o);
  });
  const batch: Batch = {
    inputIds: tensor(ids, { shape: [B, T] }),
    attentionMask: tensor(mask, { shape: [B, T] }),
    ...collateLabels(examples, T),
    indices: [...indices],
  };
  if (types) batch.tokenTypeIds = tensor(types, { shape: [B, T] });
  if (pos) batch.positionIds = tensor(pos, { shape: [B, T] });
  if (seg) batch.segmentIds = tensor(seg, { shape: [B, T] });
  return batch;
}

function collateLabels(examples: readonly EncodedExample[], T: number): { labels: Tensor; numTargets: number } {
  const B = examples.length;
  const first = examples[0]!;
  if (first.tokenLabels) {
    const out = new Int32Array(B * T).fill(IGNORE_INDEX);
    let n = 0;
    examples.forEach((e, b) => {
      if (!e.tokenLabels)
        throw new DataError("batch", "bad_option", "cannot mix token-classification and other examples");
      out.set(e.tokenLabels, b * T);
      for (const l of e.tokenLabels) if (l !== IGNORE_INDEX) n++;
    });
    return { labels: tensor(out, { shape: [B, T] }), numTargets: n };
  }
  if (first.labels) {
    const out = new Int32Array(B * T).fill(IGNORE_INDEX);
    let n = 0;
    examples.forEach((e, b) => {
      if (!e.labels)
        throw new DataError("batch", "bad_option", "cannot mix token-labelled and class-labelled examples");
      out.set(e.labels, b * T);
      n += countTargets(e.labels);
    });
    return { labels: tensor(out, { shape: [B, T] }), numTargets: n };
  }
  if (typeof first.label === "number") {
    const out = new Int32Array(B);
    examples.forEach((e, b) => {
      out[b] = e.label as number;
    });
    return { labels: tensor(out, { shape: [B] }), numTargets: B };
  }
  if (Array.isArray(first.label)) {
    const K = first.label.length;
    const out = new Float32Array(B * K);
    examples.forEach((e, b) => {
      out.set(e.label as number[], b * K);
    });
    return { labels: tensor(out, { shape: [B, K] }), numTargets: B * K };
  }
  throw new DataError("batch", "bad_option", "examples have no labels");
}

/** Options for {@link DataLoader}. */
export interface DataLoaderOptions extends CollateOptions {
  batchSize: number;
  /** Reshuffle every epoch (default true; false keeps dataset order, e.g. for evaluation). */
  shuffle?: boolean;
  /** Default 42. */
  seed?: number;
  /** Drop the last, smaller batch of each epoch (PyTorch `drop_last`). Default false. */
  dropLast?: boolean;
}

/** The loader's cursor: the next batch is batch `position` of epoch `epoch`'s order. */
export interface LoaderState {
  epoch: number;
  position: number;
  seed: number;
}

/** The shuffle seed of one epoch: a 32-bit mix of the run seed and the epoch number. */
export function epochSeed(seed: number, epoch: number): number {
  let h = (Math.floor(seed) ^ Math.imul(epoch + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Iterates batches: per-epoch seeded shuffle, dynamic padding, resumable.
 * `for (const b of loader)` runs the rest of the current epoch; `nextBatch()` rolls over epochs.
 */
export class DataLoader implements Iterable<Batch> {
  readonly examples: readonly EncodedExample[];
  readonly options: Readonly<DataLoaderOptions>;
  private epochNo = 0;
  private position = 0;
  private orderCache: { epoch: number; order: number[] } | undefined;

  constructor(examples: readonly EncodedExample[], options: DataLoaderOptions) {
    if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) {
      throw new DataError("options", "bad_option", `batchSize must be a positive integer, got ${options.batchSize}`, {
        key: "batchSize",
      });
    }
    if (examples.length === 0) throw new DataError("options", "empty_dataset", "the data loader has no examples");
    if (options.dropLast && examples.length < options.batchSize) {
      throw new DataError(
        "options",
        "bad_option",
        `dropLast with ${examples.length} examples and batchSize ${options.batchSize} leaves no batch`,
        { key: "dropLast" },
      );
    }
    this.examples = examples;
    this.options = { shuffle: true, seed: 42, dropLast: false, ...options };
  }

  /** A loader positioned at a saved cursor (from {@link DataLoader.state}). */
  static fromState(examples: readonly EncodedExample[], options: DataLoaderOptions, state: LoaderState): DataLoader {
    const l = new DataLoader(examples, { ...options, seed: state.seed });
    l.loadState(state);
    return l;
  }

  /** Batches per epoch. */
  get length(): number {
    const n = this.examples.length / this.options.batchSize;
    return this.options.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The cursor, for checkpoints. */
  state(): LoaderState {
    return { epoch: this.epochNo, position: this.position, seed: this.options.seed! };
  }

  /** Moves the cursor (the seed must be the loader's). */
  loadState(s: LoaderState): void {
    if (s.seed !== this.options.seed)
      throw new DataError(
        "checkpoint",
        "bad_state",
        `loader seed ${this.options.seed} differs from the saved ${s.seed}`,
        { key: "seed" },
      );
    if (
      !Number.isSafeInteger(s.epoch) ||
      s.epoch < 0 ||
      !Number.isSafeInteger(s.position) ||
      s.position < 0 ||
      s.position >= this.length
    ) {
      throw new DataError(
        "checkpoint",
        "bad_state",
        `cursor epoch ${s.epoch}, position ${s.position} does not fit ${this.length} batches per epoch`,
        { key: "position" },
      );
    }
    this.epochNo = s.epoch;
    this.position = s.position;
  }

  /** The example order of an epoch. */
  order(epoch: number): number[] {
    if (this.orderCache?.epoch === epoch) return this.orderCache.order;
    const order = Array.from(this.examples, (_, i) => i);
    if (this.options.shuffle) new Generator(epochSeed(this.options.seed!, epoch)).shuffle(order);
    this.orderCache = { epoch, order };
    return order;
  }

  /** The next batch; after an epoch's last batch the cursor moves to the next epoch. */
  nextBatch(): Batch {
    const bs = this.options.batchSize;
    const idx = this.order(this.epochNo).slice(this.position * bs, (this.position + 1) * bs);
    const batch = collate(
      idx.map((i) => this.examples[i]!),
      idx,
      this.options,
    );
    if (++this.position >= this.length) {
      this.epochNo++;
      this.position = 0;
    }
    return batch;
  }

  /** The remaining batches of the current epoch. */
  *[Symbol.iterator](): Iterator<Batch> {
    const e = this.epochNo;
    while (this.epochNo === e) yield this.nextBatch();
  }
}
