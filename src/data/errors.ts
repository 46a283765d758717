/**
 * Typed errors for everything under `src/data/`.
 *
 * A {@link DataError} names the file, the line (or row) when there is one, the column (`key`)
 * when it is about one, a machine-readable `code` and the reason in words. The message always
 * starts with `file:line:` so that editors and terminals can jump to it.
 *
 * @example
 * ```ts
 * throw new DataError("train.jsonl", "bad_json", "not valid JSON: Unexpected token }", { line: 12 });
 * // DataError: train.jsonl:12: not valid JSON: Unexpected token } [bad_json]
 * ```
 */

/** Codes a {@link DataError} can carry. */
export type DataErrorCode =
  | "io" // the file could not be opened or read
  | "bad_format" // unknown file extension / format option
  | "bad_json" // a JSONL line is not valid JSON
  | "bad_csv" // a CSV/TSV record is malformed (unclosed quote, wrong number of fields)
  | "bad_parquet" // the Parquet file could not be decoded
  | "not_object" // a JSONL line is valid JSON but not an object
  | "missing_column" // a required column is absent from the file (or from one record)
  | "bad_value" // a value has the wrong type for its column
  | "unknown_label" // a label that is not in the label set (validation/test, or a given `labels` list)
  | "bad_labels" // the label set itself is unusable (duplicates, one class, non-contiguous ids)
  | "empty_dataset" // no usable examples
  | "empty_loss_mask" // an LM example has no token that contributes to the loss
  | "bad_option" // an option value that cannot work (fractions, batch size, block size)
  | "bad_state"; // a data-loader state that does not fit the dataset

/** One line skipped with `skipInvalid: true`, reported exactly. */
export interface SkippedLine {
  file: string;
  /** 1-based line (CSV/TSV/JSONL) or row (Parquet, 1-based) number. */
  line: number;
  reason: string;
}

/**
 * A dataset file, record or option was refused.
 *
 * @example
 * ```ts
 * try { await loadTextDataset("train.csv", { task: "text-classification" }); }
 * catch (e) { if (e instanceof DataError && e.code === "missing_column") console.error(e.message); }
 * ```
 */
export class DataError extends Error {
  /** The file the error is about (or `"options"` for a bad option). */
  readonly file: string;
  /** 1-based line (or Parquet row) when the error is about one record. */
  readonly line?: number;
  /** The column (or option) name when the error is about one. */
  readonly key?: string;
  /** Machine-readable reason, stable across releases. */
  readonly code: DataErrorCode;
  /** What is wrong, in words. */
  readonly reason: string;

  constructor(
    file: string,
    code: DataErrorCode,
    reason: string,
    options: { line?: number; key?: string; cause?: unknown } = {},
  ) {
    const where = options.line !== undefined ? `${file}:${options.line}` : file;
    super(`${where}: ${reason} [${code}]`, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = "DataError";
    this.file = file;
    if (options.line !== undefined) this.line = options.line;
    if (options.key !== undefined) this.key = options.key;
    this.code = code;
    this.reason = reason;
  }

  /** The `{file, line, reason}` record used in skip reports. */
  toSkipped(): SkippedLine {
    return { file: this.file, line: this.line ?? 0, reason: this.reason };
  }
}

/** Levenshtein distance, for "did you mean" suggestions. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/**
 * The candidate closest to `name` (case-insensitive edit distance), or undefined when none is
 * close enough to be a plausible typo (distance above max(2, a third of the name's length)).
 *
 * @example closestMatch("reviw", ["review", "label"]) // "review"
 */
export function closestMatch(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const c of candidates) {
    const d = editDistance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return bestD <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/** `"a", "b", "c"` (the first `max`, then "and N more"), for lists in messages. */
export function quoteList(items: readonly string[], max = 20): string {
  const shown = items.slice(0, max).map((s) => JSON.stringify(s));
  return items.length > max ? `${shown.join(", ")} and ${items.length - max} more` : shown.join(", ");
}
