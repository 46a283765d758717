/**
 * A byte-level BPE trainer producing a tokenizer.json object that loads through
 * `Tokenizer.fromJSON` (and in Hugging Face `tokenizers`).
 *
 * Algorithm (as in `tokenizers`' `BpeTrainer`): split texts with GPT-2's pattern, map UTF-8 bytes
 * to GPT-2's printable characters, count distinct words, then merge the most frequent adjacent
 * pair until the vocabulary is full. Pair counts are kept incrementally: each merge only touches
 * the words containing the pair (an index pair -> words), and a max-heap with lazy invalidation
 * finds the next best pair, so no step re-counts the corpus.
 *
 * Ids: special tokens first (in the order given), then the 256 byte characters sorted by code
 * point, then one id per merge. Ties between pairs of equal count go to the smaller
 * (left id, right id) pair, which makes training deterministic for a given input order.
 *
 * @example
 * ```ts
 * const json = trainByteLevelBPE(lines, { vocabSize: 4096, specialTokens: ["<|endoftext|>"] });
 * const tok = Tokenizer.fromJSON(json, { eos_token: "<|endoftext|>" });
 * ```
 */

import {
  BYTE_TO_CHAR,
  type ByteLevelBpeJson,
  byteLevelBpeJson,
  GPT2_SPLIT_PATTERN,
  specialAddedToken,
  toByteChars,
} from "./byte-level.ts";
import { TokenizerError } from "./errors.ts";

/** Options for {@link trainByteLevelBPE}. */
export interface TrainBpeOptions {
  /** Final vocabulary size including special tokens and the 256 byte tokens. */
  vocabSize: number;
  /** Added as special tokens with ids 0..n-1. */
  specialTokens?: string[];
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
}

/** Max-heap entries: [count, left, right]. */
type Entry = [number, number, number];

/** Is `a` a better merge than `b`? Higher count, then smaller (left, right). */
function better(a: Entry, b: Entry): boolean {
  if (a[0] !== b[0]) return a[0] > b[0];
  if (a[1] !== b[1]) return a[1] < b[1];
  return a[2] < b[2];
}

class PairHeap {
  private items: Entry[] = [];
  get size(): number {
    return this.items.length;
  }
  push(e: Entry): void {
    const h = this.items;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }
  pop(): Entry | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last !== undefined) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && better(h[l]!, h[m]!)) m = l;
        if (r < h.length && better(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

// Pair key: ids stay below 2^26 (vocabSize is capped), so left * 2^26 + right is an exact double.
const SHIFT = 2 ** 26;
const key = (a: number, b: number) => a * SHIFT + b;

/** Counts distinct pre-tokenized words (as byte-character strings). */
function countWords(texts: Iterable<string>): Map<string, number> {
  const counts = new Map<string, number>();
  for (const text of texts) {
    for (const m of text.matchAll(GPT2_SPLIT_PATTERN)) {
      const w = toByteChars(m[0]);
      counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  return counts;
}

/**
 * Trains a byte-level BPE tokenizer. See the module comment for the id layout and tie rule.
 * Throws {@link TokenizerError} when `vocabSize` cannot hold the specials plus 256 bytes.
 */
export function trainByteLevelBPE(texts: Iterable<string>, options: TrainBpeOptions): ByteLevelBpeJson {
  const specials = options.specialTokens ?? [];
  const minFrequency = options.minFrequency ?? 2;
  const { vocabSize } = options;
  if (new Set(specials).size !== specials.length)
    throw new TokenizerError("input", "specialTokens", "contains duplicates");
  if (!Number.isSafeInteger(vocabSize) || vocabSize < specials.length + 256 || vocabSize >= SHIFT) {
    throw new TokenizerError("input", "vocabSize", `must be an integer in [${specials.length + 256}, ${SHIFT})`);
  }

  // id -> token string; vocab token -> id.
  const idToToken: string[] = [...specials, ...[...BYTE_TO_CHAR].sort((a, b) => a.charCodeAt(0) - b.charCodeAt(0))];
  const tokenToId = new Map(idToToken.map((t, i) => [t, i]));

  const wordCounts = countWords(texts);
  const words: number[][] = [];
  const freqs: number[] = [];
  for (const [w, c] of wordCounts) {
    words.push(Array.from(w, (ch) => tokenToId.get(ch)!));
    freqs.push(c);
  }

  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, Set<number>>();
  const addPair = (a: number, b: number, wi: number, delta: number) => {
    const k = key(a, b);
    pairCount.set(k, (pairCount.get(k) ?? 0) + delta);
    if (delta > 0) {
      const s = pairWords.get(k);
      if (s) s.add(wi);
      else pairWords.set(k, new Set([wi]));
    }
  };
  for (let wi = 0; wi < words.length; wi++) {
    const w = words[wi]!;
    for (let i = 0; i + 1 < w.length; i++) addPair(w[i]!, w[i + 1]!, wi, freqs[wi]!);
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push([c, Math.floor(k / SHIFT), k % SHIFT]);

  const merges: [string, string][] = [];
  while (idToToken.length < vocabSize && heap.size > 0) {
    const top = heap.pop()!;
    const [count, a, b] = top;
    const k = key(a, b);
    const current = pairCount.get(k) ?? 0;
    if (current !== count) {
      // Stale entry: existing pairs only lose counts, so re-queue with the true count.
      if (current > 0) heap.push([current, a, b]);
      continue;
    }
    if (count < minFrequency) break;
    const merged = idToToken[a]! + idToToken[b]!;
    const z = idToToken.length;
    idToToken.push(merged);
    tokenToId.set(merged, z);
    merges.push([idToToken[a]!, idToToken[b]!]);
    const touched = new Set<number>();
    for (const wi of pairWords.get(k) ?? []) mergeWord(words, wi, freqs[wi]!, a, b, z, addPair, touched);
    pairWords.delete(k);
    pairCount.delete(k);
    for (const tk of touched) {
      const c = pairCount.get(tk) ?? 0;
      if (c > 0) heap.push([c, Math.floor(tk / SHIFT), tk % SHIFT]);
    }
  }

  const vocab: Record<string, number> = {};
  for (let i = specials.length; i < idToToken.length; i++) vocab[idToToken[i]!] = i;
  return byteLevelBpeJson(
    vocab,
    merges,
    specials.map((s, i) => specialAddedToken(i, s)),
  );
}

/**
 * Replaces each non-overlapping (a, b) in word `wi` (left to right) by `z`, moving the counts of
 * the neighbouring pairs. New pairs (all contain `z`) are collected in `touched` for the heap.
 */
function mergeWord(
  words: number[][],
  wi: number,
  freq: number,
  a: number,
  b: number,
  z: number,
  addPair: (a: number, b: number, wi: number, delta: number) => void,
  touched: Set<number>,
): void {
  const w = words[wi]!;
  const out: number[] = [];
  let i = 0;
  while (i < w.length) {
    if (i + 1 < w.length && w[i] === a && w[i + 1] === b) {
      const prev = out.length > 0 ? out[out.length - 1]! : -1;
      const next = i + 2 < w.length ? w[i + 2]! : -1;
      if (prev >= 0) {
        // The left neighbour pair (prev, a) — or (z, a) if prev was just merged — goes away.
        addPair(prev, a, wi, -freq);
        addPair(prev, z, wi, freq);
        touched.add(key(prev, z));
      }
      if (next >= 0) {
        addPair(b, next, wi, -freq);
        // If the next pair is merged too, this (z, a) is removed again on the next match.
        addPair(z, next, wi, freq);
        touched.add(key(z, next));
      }
      out.push(z);
      i += 2;
    } else {
      out.push(w[i]!);
      i += 1;
    }
  }
  words[wi] = out;
}
