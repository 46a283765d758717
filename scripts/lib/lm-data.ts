/**
 * Packing for causal-LM pre-training, nanoGPT style: every document becomes
 * `<|endoftext|> text`, all of them are concatenated (plus a final `<|endoftext|>`) into one token
 * stream, and the stream is cut into fixed-length blocks that overlap by one token, so with HF's
 * shifted loss (labels = inputs) every token after the first is a target exactly once. Attention
 * may cross a document boundary inside a block; the separator tells the model where one starts.
 *
 * @example
 * ```ts
 * const stream = tokenStream(docs, (t) => tok.encode(t, { addSpecialTokens: false }).ids, 0);
 * const blocks = new BlockSet(stream, 256);
 * const batch = blocks.batch([3, 17, 9]);   // Int32Array of 3 * 256 ids
 * ```
 */
import { Generator } from "../../src/tensor/rng.ts";

/** One Int32Array of `sep doc sep doc ... sep`. */
export function tokenStream(texts: readonly string[], encode: (text: string) => number[], sep: number): Int32Array {
  const parts = texts.map(encode);
  const total = parts.reduce((n, p) => n + p.length + 1, 1);
  const out = new Int32Array(total);
  let k = 0;
  for (const p of parts) {
    out[k++] = sep;
    out.set(p, k);
    k += p.length;
  }
  out[k] = sep;
  return out;
}

/** Fixed-length blocks over a token stream (block i starts at i * (blockSize - 1)). */
export class BlockSet {
  readonly count: number;
  constructor(
    readonly stream: Int32Array,
    readonly blockSize: number,
  ) {
    // The last partial block is dropped (at most blockSize - 2 targets).
    this.count = Math.max(0, Math.floor((stream.length - 1) / (blockSize - 1)));
  }

  /** The ids of the given blocks, row after row: shape (indices.length, blockSize). */
  batch(indices: readonly number[]): Int32Array {
    const T = this.blockSize;
    const out = new Int32Array(indices.length * T);
    indices.forEach((b, r) => {
      out.set(this.stream.subarray(b * (T - 1), b * (T - 1) + T), r * T);
    });
    return out;
  }
}

/**
 * Seeded data order: epoch after epoch, a fresh permutation of the blocks (Fisher-Yates from the
 * repo's seeded generator), consumed `batchSize` at a time. Batches never straddle two epochs.
 */
export class BatchOrder {
  private readonly gen: Generator;
  private perm: number[] = [];
  private pos = 0;
  epoch = 0;
  constructor(
    readonly numBlocks: number,
    readonly batchSize: number,
    seed: number,
  ) {
    if (numBlocks < batchSize) throw new Error(`only ${numBlocks} training blocks for a batch of ${batchSize}`);
    this.gen = new Generator(seed);
  }
  next(): number[] {
    if (this.perm.length === 0 || this.pos + this.batchSize > this.perm.length) {
      if (this.perm.length > 0) this.epoch++;
      this.perm = this.gen.shuffle(Array.from({ length: this.numBlocks }, (_, i) => i));
      this.pos = 0;
    }
    const out = this.perm.slice(this.pos, this.pos + this.batchSize);
    this.pos += this.batchSize;
    return out;
  }
}
