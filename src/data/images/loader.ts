/**
 * `ImageLoader`: batches of model input, decoded and augmented ahead of the training step in a
 * small pool of worker threads.
 *
 * - Each epoch's order is a seeded shuffle of (seed, epoch); each sample's augmentation is seeded
 *   by (seed, epoch, dataset index) and each MixUp/CutMix by (seed, epoch, batch), so the batches
 *   do not depend on the number of workers or on timing: `workers: 0` (main thread) gives the
 *   same bytes.
 * - Up to `prefetch` batches are in flight while the consumer works; `waitMs` adds up the time
 *   the consumer spent waiting for one (report it: near zero means the loader keeps up).
 * - `state()` is a resumable cursor (epoch, next batch); `ImageLoader.fromState` continues with
 *   exactly the batches an uninterrupted run would have seen.
 * - Workers are unreferenced while idle (they never keep the process alive) and terminated by
 *   `close()`.
 *
 * @example
 * ```ts
 * const loader = new ImageLoader(train, { transform: { preprocessor: pre, augment: {} }, batchSize: 16, seed: 0 });
 * for (let e = 0; e < 3; e++) for await (const { pixelValues, labels } of loader) step(pixelValues, labels);
 * console.log(`waited ${loader.waitMs.toFixed(0)} ms for data`);
 * await loader.close();
 * ```
 */
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import { Worker } from "node:worker_threads";
import { Generator } from "../../tensor/rng.ts";
import { Tensor } from "../../tensor/tensor.ts";
import type { MixOptions } from "./augment.ts";
import type { ImageDataset } from "./dataset.ts";
import { ImageDataError, type SkippedImage } from "./errors.ts";
import { type BatchData, type BatchTask, buildBatch, type ImageTransform, sampleSeed } from "./transform.ts";

export interface ImageLoaderOptions {
  transform: ImageTransform;
  batchSize: number;
  /** Seeded reshuffle every epoch. Default true. */
  shuffle?: boolean;
  seed?: number;
  /** Drop a last, smaller batch. Default false. */
  dropLast?: boolean;
  /** Worker threads; 0 builds batches on the calling thread. Default min(4, cores - 1), at least 1. */
  workers?: number;
  /** Batches in flight ahead of the consumer. Default 2 * max(1, workers). */
  prefetch?: number;
  /** MixUp / CutMix per batch; labels become soft (B, numClasses) float32. */
  mix?: MixOptions | null;
  /** Leave out images that fail to load (counted in `skipped`) instead of throwing. */
  skipInvalid?: boolean;
}

/** A resumable position: the next batch of an epoch, and what it was computed for. */
export interface LoaderState {
  epoch: number;
  batch: number;
  seed: number;
  size: number;
  batchSize: number;
  shuffle: boolean;
  dropLast: boolean;
}

/** What the trainer receives. */
export interface ImageBatch {
  /** (B, 3, H, W) float32. */
  pixelValues: Tensor;
  /** int32 (B), or float32 soft labels (B, numClasses) with MixUp/CutMix. */
  labels: Tensor;
  /** Dataset indices of the batch's images. */
  indices: number[];
}

export class ImageLoader implements AsyncIterable<ImageBatch> {
  /** Milliseconds the consumer waited for a batch, summed over the loader's life. */
  waitMs = 0;
  /** Images left out with `skipInvalid`, in the order met. */
  readonly skipped: SkippedImage[] = [];
  private epoch = 0;
  private batch = 0;
  private pool: WorkerPool | null = null;
  private readonly seed: number;
  private readonly workers: number;
  private readonly prefetch: number;

  constructor(
    readonly dataset: ImageDataset,
    readonly opts: ImageLoaderOptions,
  ) {
    if (!(Number.isInteger(opts.batchSize) && opts.batchSize > 0)) {
      throw new ImageDataError("<loader>", "bad_config", `batchSize must be a positive integer, got ${opts.batchSize}`);
    }
    this.seed = opts.seed ?? 0;
    this.workers = opts.workers ?? Math.max(1, Math.min(4, availableParallelism() - 1));
    this.prefetch = Math.max(1, opts.prefetch ?? 2 * Math.max(1, this.workers));
  }

  /** Continues from a cursor saved with `state()` (same dataset size, batch size and flags). */
  static fromState(dataset: ImageDataset, opts: ImageLoaderOptions, st: LoaderState): ImageLoader {
    const l = new ImageLoader(dataset, { ...opts, seed: st.seed });
    const want = l.state();
    for (const k of ["size", "batchSize", "shuffle", "dropLast"] as const) {
      if (want[k] !== st[k])
        throw new ImageDataError(
          "<loader state>",
          "bad_state",
          `${k} is ${want[k]} here but ${st[k]} in the saved state`,
        );
    }
    if (
      !(
        Number.isInteger(st.epoch) &&
        st.epoch >= 0 &&
        Number.isInteger(st.batch) &&
        st.batch >= 0 &&
        st.batch <= l.numBatches
      )
    ) {
      throw new ImageDataError("<loader state>", "bad_state", `epoch ${st.epoch} / batch ${st.batch} out of range`);
    }
    l.epoch = st.epoch;
    l.batch = st.batch;
    return l;
  }

  /** Batches per epoch. */
  get numBatches(): number {
    const n = this.dataset.items.length;
    return this.opts.dropLast ? Math.floor(n / this.opts.batchSize) : Math.ceil(n / this.opts.batchSize);
  }

  /** The cursor: the next batch to be yielded (an epoch just finished reads as the next one's start). */
  state(): LoaderState {
    const done = this.batch >= this.numBatches;
    return {
      epoch: done ? this.epoch + 1 : this.epoch,
      batch: done ? 0 : this.batch,
      seed: this.seed,
      size: this.dataset.items.length,
      batchSize: this.opts.batchSize,
      shuffle: this.opts.shuffle ?? true,
      dropLast: this.opts.dropLast ?? false,
    };
  }

  /** The dataset indices in `epoch`'s order. */
  epochOrder(epoch: number): number[] {
    const order = Array.from({ length: this.dataset.items.length }, (_, i) => i);
    if (this.opts.shuffle ?? true) new Generator(sampleSeed(this.seed, epoch, -(2 ** 31))).shuffle(order);
    return order;
  }

  /** Yields the rest of the current epoch, then moves the cursor to the next epoch. */
  async *[Symbol.asyncIterator](): AsyncIterator<ImageBatch> {
    const st = this.state();
    this.epoch = st.epoch;
    this.batch = st.batch;
    const order = this.epochOrder(this.epoch);
    const nb = this.numBatches;
    const pending = new Map<number, Promise<BatchData>>();
    let next = this.batch;
    const submit = () => {
      while (pending.size < this.prefetch && next < nb) {
        const p = this.run(this.task(order, next));
        p.catch(() => {}); // awaited in order below; this only stops an early break leaving it unhandled
        pending.set(next++, p);
      }
    };
    for (let b = this.batch; b < nb; b++) {
      submit();
      const t0 = performance.now();
      const data = await (pending.get(b) as Promise<BatchData>);
      this.waitMs += performance.now() - t0;
      pending.delete(b);
      this.batch = b + 1;
      submit();
      this.skipped.push(...data.skipped);
      yield toBatch(data);
    }
    this.epoch++;
    this.batch = 0;
  }

  private task(order: number[], b: number): BatchTask {
    const bs = this.opts.batchSize;
    const indices = order.slice(b * bs, (b + 1) * bs);
    return {
      items: indices.map((i) => this.dataset.items[i]),
      indices,
      seed: this.seed,
      epoch: this.epoch,
      batchIndex: b,
      numClasses: this.dataset.classes.length,
      mix: this.opts.mix ?? null,
      skipInvalid: this.opts.skipInvalid ?? false,
    };
  }

  private run(task: BatchTask): Promise<BatchData> {
    if (this.workers === 0) return buildBatch(task, this.opts.transform);
    this.pool ??= new WorkerPool(this.workers, this.opts.transform);
    return this.pool.run(task);
  }

  /** Terminates the worker threads. The loader can be iterated again afterwards (new workers). */
  async close(): Promise<void> {
    const p = this.pool;
    this.pool = null;
    await p?.close();
  }
}

function toBatch(d: BatchData): ImageBatch {
  const B = d.indices.length;
  const pixelValues = new Tensor(d.pixels, "float32", [B, 3, d.height, d.width]);
  const labels =
    d.labels instanceof Int32Array
      ? new Tensor(d.labels, "int32", [B])
      : new Tensor(d.labels, "float32", [B, B > 0 ? d.labels.length / B : 0]);
  return { pixelValues, labels, indices: d.indices };
}

interface Job {
  id: number;
  task: BatchTask;
  resolve: (b: BatchData) => void;
  reject: (e: Error) => void;
}

/** Worker threads running `worker.mjs`; referenced only while they hold a job. */
class WorkerPool {
  private readonly idle: Worker[] = [];
  private readonly busy = new Map<Worker, Job>();
  private readonly queue: Job[] = [];
  private nextId = 0;
  private closed = false;
  private crashes = 0;

  constructor(
    n: number,
    private readonly transform: ImageTransform,
  ) {
    for (let i = 0; i < n; i++) this.idle.push(this.spawn());
  }

  private spawn(): Worker {
    // execArgv [] : worker.mjs registers tsx itself, so the parent's --import flags are not needed.
    const w = new Worker(new URL("./worker.mjs", import.meta.url), {
      workerData: { transform: this.transform },
      execArgv: [],
    });
    w.unref();
    w.on(
      "message",
      (msg: {
        id: number;
        batch?: BatchData;
        error?: { message: string; stack?: string; image: SkippedImage | null };
      }) => {
        const job = this.busy.get(w);
        this.busy.delete(w);
        this.release(w);
        if (!job) return;
        if (msg.batch) job.resolve(msg.batch);
        else if (msg.error?.image)
          job.reject(new ImageDataError(msg.error.image.file, msg.error.image.code, msg.error.image.reason));
        else
          job.reject(
            Object.assign(new Error(msg.error?.message ?? "image worker failed"), { stack: msg.error?.stack }),
          );
      },
    );
    const fail = (err: Error) => {
      const job = this.busy.get(w);
      this.busy.delete(w);
      const i = this.idle.indexOf(w);
      if (i >= 0) this.idle.splice(i, 1);
      job?.reject(err);
      if (this.closed) return;
      // A worker that cannot even start (e.g. tsx missing) must not respawn forever.
      if (++this.crashes > 3) {
        for (const j of this.queue.splice(0)) j.reject(err);
        return;
      }
      this.idle.push(this.spawn());
      this.dispatch();
    };
    w.on("error", fail);
    w.on("exit", (code) => {
      if (!this.closed && (this.busy.has(w) || this.idle.includes(w)))
        fail(new Error(`image loader worker exited with code ${code}`));
    });
    return w;
  }

  private release(w: Worker): void {
    w.unref();
    this.idle.push(w);
    this.dispatch();
  }

  run(task: BatchTask): Promise<BatchData> {
    return new Promise((resolve, reject) => {
      this.queue.push({ id: this.nextId++, task, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.shift() as Worker;
      const job = this.queue.shift() as Job;
      this.busy.set(w, job);
      w.ref(); // a job in flight keeps the process alive until its answer arrives
      w.postMessage({ id: job.id, task: job.task });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new Error("image loader closed");
    for (const j of [...this.queue, ...this.busy.values()]) j.reject(err);
    this.queue.length = 0;
    const all = [...this.idle, ...this.busy.keys()];
    this.idle.length = 0;
    this.busy.clear();
    await Promise.all(all.map((w) => w.terminate()));
  }
}
