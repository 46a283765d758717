/**
 * Seeded train/validation(/test) splits, stratified by label when labels are given (as
 * scikit-learn's `train_test_split(stratify=...)`): each class is shuffled on its own and cut in
 * the requested proportions, so every split keeps the class balance. The same seed gives the same
 * split on every run and machine.
 *
 * @example
 * ```ts
 * const { train, validation } = splitIndices(1000, { validation: 0.1, seed: 42, stratify: labels });
 * ```
 */
import { Generator } from "../tensor/rng.ts";
import { DataError } from "./errors.ts";

/** Options for {@link splitIndices}. Fractions are of the whole dataset. */
export interface SplitOptions {
  /** Fraction for validation, in (0, 1). Default 0.1. */
  validation?: number;
  /** Fraction for test, in [0, 1). Default 0. */
  test?: number;
  /** Default 42. */
  seed?: number;
  /** One key per example (class id, or any string/number); split per key. Omit for a plain seeded split. */
  stratify?: readonly (number | string)[];
}

/** Example indices of each split, ascending (file order; the data loader shuffles). */
export interface SplitIndices {
  train: number[];
  validation: number[];
  test: number[];
}

/**
 * Splits `n` examples into train/validation/test.
 *
 * Per class, counts follow largest remainders so the totals are exactly `round(n * fraction)`,
 * and a class with at least two examples always keeps one in train.
 */
export function splitIndices(n: number, options: SplitOptions = {}): SplitIndices {
  const fVal = options.validation ?? 0.1;
  const fTest = options.test ?? 0;
  const seed = options.seed ?? 42;
  if (!(fVal >= 0 && fTest >= 0 && fVal + fTest < 1)) {
    throw new DataError(
      "options",
      "bad_option",
      `split fractions must be >= 0 and sum to less than 1; got validation ${fVal}, test ${fTest}`,
      { key: "validation" },
    );
  }
  if (!Number.isSafeInteger(n) || n < 0) throw new DataError("options", "bad_option", `cannot split ${n} examples`);
  if (options.stratify && options.stratify.length !== n) {
    throw new DataError("options", "bad_option", `stratify has ${options.stratify.length} keys for ${n} examples`, {
      key: "stratify",
    });
  }
  const groups = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const key = options.stratify ? `${typeof options.stratify[i]}:${options.stratify[i]}` : "";
    const g = groups.get(key);
    if (g) g.push(i);
    else groups.set(key, [i]);
  }
  // Sorted keys and one generator: the split depends on the data and seed, not on row order of keys.
  const keys = [...groups.keys()].sort();
  const rng = new Generator(seed);
  for (const k of keys) rng.shuffle(groups.get(k)!);
  const sizes = keys.map((k) => groups.get(k)!.length);
  const nVal = allocate(
    sizes,
    Math.round(n * fVal),
    sizes.map(() => 0),
  );
  const nTest = allocate(sizes, Math.round(n * fTest), nVal);
  const out: SplitIndices = { train: [], validation: [], test: [] };
  keys.forEach((k, c) => {
    const g = groups.get(k)!;
    out.validation.push(...g.slice(0, nVal[c]));
    out.test.push(...g.slice(nVal[c], nVal[c]! + nTest[c]!));
    out.train.push(...g.slice(nVal[c]! + nTest[c]!));
  });
  for (const a of [out.train, out.validation, out.test]) a.sort((x, y) => x - y);
  return out;
}

/**
 * Splits `total` over classes of `sizes` proportionally (largest remainder, ties to the earlier
 * class), never taking a class's last example away from train (`taken` is already used).
 */
function allocate(sizes: number[], total: number, taken: number[]): number[] {
  const n = sizes.reduce((a, b) => a + b, 0);
  if (n === 0 || total === 0) return sizes.map(() => 0);
  const cap = sizes.map((s, c) => Math.max(0, s - 1 - taken[c]!));
  const exact = sizes.map((s) => (s * total) / n);
  const out = exact.map((e, c) => Math.min(Math.floor(e), cap[c]!));
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = exact
    .map((_, c) => c)
    .sort((a, b) => exact[b]! - Math.floor(exact[b]!) - (exact[a]! - Math.floor(exact[a]!)) || a - b);
  // Hand out the remainder by largest fraction, then round-robin while any class has room.
  while (left > 0) {
    let gave = false;
    for (const c of order) {
      if (left === 0) break;
      if (out[c]! < cap[c]!) {
        out[c]!++;
        left--;
        gave = true;
      }
    }
    if (!gave) break;
  }
  return out;
}

/**
 * Picks the examples at `indices` (a split) from a dataset-like object, keeping everything else.
 *
 * @example const val = subset(ds, split.validation);
 */
export function subset<D extends { examples: readonly unknown[] }>(ds: D, indices: readonly number[]): D {
  return { ...ds, examples: indices.map((i) => ds.examples[i]) };
}
