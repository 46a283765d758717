/**
 * Streaming record readers for CSV, TSV, JSONL and Parquet. Each yields one {@link DataRecord}
 * at a time (with its 1-based line, or row for Parquet), so a file is never held in memory as one
 * string: CSV/TSV go through `csv-parse`'s stream, JSONL through `node:readline`, Parquet one row
 * group at a time through `hyparquet`.
 *
 * Malformed records stop the read with a {@link DataError} naming `file:line` and the reason; with
 * `skipInvalid: true` they are passed to `onSkip` instead and reading goes on.
 *
 * @example
 * ```ts
 * for await (const rec of readRecords("train.jsonl")) console.log(rec.line, rec.values.text);
 * ```
 */
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { extname } from "node:path";
import { createInterface } from "node:readline";
import { Transform } from "node:stream";
import { type CsvError, parse } from "csv-parse";
import { asyncBufferFromFile, parquetMetadataAsync, parquetReadObjects } from "hyparquet";
import { compressors } from "hyparquet-compressors";
import { DataError, type SkippedLine } from "../errors.ts";

/** File formats the readers understand. */
export type DataFormat = "csv" | "tsv" | "jsonl" | "parquet";

/** One record of a dataset file: its column values and where it came from. */
export interface DataRecord {
  file: string;
  /** 1-based line of the record's first character (CSV/TSV/JSONL) or 1-based row (Parquet). */
  line: number;
  values: Record<string, unknown>;
}

/** Options for {@link readRecords}. */
export interface ReadOptions {
  /** Overrides the format implied by the extension. */
  format?: DataFormat;
  /** Skip malformed records (reported through `onSkip`) instead of stopping. Default false. */
  skipInvalid?: boolean;
  /** Called once per skipped record when `skipInvalid` is set. */
  onSkip?: (skipped: SkippedLine) => void;
}

const EXTENSIONS: Record<string, DataFormat> = {
  ".csv": "csv",
  ".tsv": "tsv",
  ".tab": "tsv",
  ".jsonl": "jsonl",
  ".ndjson": "jsonl",
  ".json": "jsonl",
  ".parquet": "parquet",
  ".pq": "parquet",
};

/**
 * The format of `path` from `format` or its extension.
 *
 * @example detectFormat("data/train.tsv") // "tsv"
 */
export function detectFormat(path: string, format?: string): DataFormat {
  if (format !== undefined) {
    if (format === "csv" || format === "tsv" || format === "jsonl" || format === "parquet") return format;
    throw new DataError(
      path,
      "bad_format",
      `unknown format ${JSON.stringify(format)}; use csv, tsv, jsonl or parquet`,
      {
        key: "format",
      },
    );
  }
  const f = EXTENSIONS[extname(path).toLowerCase()];
  if (f === undefined) {
    throw new DataError(
      path,
      "bad_format",
      `cannot tell the format from the extension ${JSON.stringify(extname(path))}; use .csv, .tsv, .jsonl or .parquet, or pass a format`,
    );
  }
  return f;
}

/**
 * Reads the records of a CSV, TSV, JSONL or Parquet file, streamed.
 *
 * @example
 * ```ts
 * const skipped: SkippedLine[] = [];
 * for await (const r of readRecords("x.csv", { skipInvalid: true, onSkip: (s) => skipped.push(s) })) use(r);
 * ```
 */
export async function* readRecords(path: string, options: ReadOptions = {}): AsyncGenerator<DataRecord> {
  const format = detectFormat(path, options.format);
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new Error("not a regular file");
  } catch (err) {
    throw new DataError(path, "io", `cannot read: ${(err as Error).message}`, { cause: err });
  }
  if (format === "jsonl") yield* readJsonl(path, options);
  else if (format === "parquet") yield* readParquet(path);
  else yield* readDelimited(path, format === "tsv" ? "\t" : ",", options);
}

/** Hands a record-level error to `onSkip` or throws it. */
function reject(err: DataError, options: ReadOptions): void {
  if (!options.skipInvalid) throw err;
  options.onSkip?.(err.toSkipped());
}

async function* readJsonl(path: string, options: ReadOptions): AsyncGenerator<DataRecord> {
  const lines = createInterface({
    input: createReadStream(path, { encoding: "utf8" }),
    crlfDelay: Number.POSITIVE_INFINITY,
  });
  let n = 0;
  try {
    for await (const raw of lines) {
      n++;
      const text = n === 1 ? raw.replace(/^\uFEFF/, "") : raw;
      if (text.trim() === "") continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        reject(new DataError(path, "bad_json", `not valid JSON: ${(err as Error).message}`, { line: n }), options);
        continue;
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        const what = value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
        reject(new DataError(path, "not_object", `expected a JSON object, got ${what}`, { line: n }), options);
        continue;
      }
      yield { file: path, line: n, values: value as Record<string, unknown> };
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw new DataError(path, "io", `read failed after line ${n}: ${(err as Error).message}`, { cause: err });
  } finally {
    lines.close();
  }
}

/**
 * First line of a csv-parse record from its `lines` counter (the record's last line) and raw
 * text. `raw` ends with the record's LF and starts with the empty lines skipped before it, which
 * are not part of the record. Input is normalised to LF first: csv-parse counts CRLF
 * inconsistently.
 */
function startLine(lines: number, raw: string | undefined): number {
  if (!raw) return lines;
  const body = raw.replace(/^\n+/, "");
  const newlines = body.split("\n").length - 1;
  return lines - newlines + (body.endsWith("\n") ? 1 : 0);
}

/** CRLF -> LF, streaming (a CR at the end of a chunk waits for the next one). */
function crlfToLf(): Transform {
  let pendingCr = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      let s = (pendingCr ? "\r" : "") + chunk.toString("latin1");
      pendingCr = s.endsWith("\r");
      if (pendingCr) s = s.slice(0, -1);
      // latin1 maps bytes 1:1, so multi-byte UTF-8 split across chunks survives untouched.
      done(null, Buffer.from(s.replace(/\r\n/g, "\n"), "latin1"));
    },
    flush(done) {
      done(null, pendingCr ? Buffer.from("\r") : null);
    },
  });
}

function csvReason(err: CsvError): string {
  const cols = err.columns as { name: string }[] | undefined | false;
  switch (err.code) {
    case "CSV_RECORD_INCONSISTENT_COLUMNS":
    case "CSV_RECORD_INCONSISTENT_FIELDS_LENGTH": {
      const got = Array.isArray(err.record) ? err.record.length : "a different number of";
      const want = Array.isArray(cols)
        ? `${cols.length} fields (${cols.map((c) => c.name).join(", ")})`
        : "the header's field count";
      return `expected ${want}, got ${got}`;
    }
    case "CSV_QUOTE_NOT_CLOSED":
      return "a quoted field is not closed before the end of the file";
    default:
      return err.message.replace(/ (at|on) line \d+\.?$/, "");
  }
}

async function* readDelimited(path: string, delimiter: string, options: ReadOptions): AsyncGenerator<DataRecord> {
  const toError = (err: CsvError) =>
    new DataError(path, "bad_csv", csvReason(err), {
      line: startLine(err.lines as number, err.raw as string | undefined),
    });
  const parser = createReadStream(path)
    .pipe(crlfToLf())
    .pipe(
      parse({
        delimiter,
        columns: (header: string[]) => {
          const seen = new Set<string>();
          for (const h of header) {
            if (h === "") throw new DataError(path, "bad_csv", "the header has an empty column name", { line: 1 });
            if (seen.has(h))
              throw new DataError(path, "bad_csv", `the header names column ${JSON.stringify(h)} twice`, { line: 1 });
            seen.add(h);
          }
          return header;
        },
        bom: true,
        info: true,
        raw: true,
        relax_quotes: true,
        skip_empty_lines: true,
        skip_records_with_error: options.skipInvalid ?? false,
        on_skip: (err) => {
          if (err) options.onSkip?.(toError(err).toSkipped());
          return undefined;
        },
      }),
    );
  try {
    for await (const rec of parser as AsyncIterable<{
      record: Record<string, string>;
      info: { lines: number };
      raw: string;
    }>) {
      yield { file: path, line: startLine(rec.info.lines, rec.raw), values: rec.record };
    }
  } catch (err) {
    if (err instanceof DataError) throw err;
    const e = err as CsvError;
    if (typeof e.code === "string" && e.code.startsWith("CSV_")) throw toError(e);
    if (typeof e.code === "string" && e.code === "INVALID_OPENING_QUOTE") throw toError(e);
    throw new DataError(path, "io", `read failed: ${e.message}`, { cause: err });
  } finally {
    parser.destroy();
  }
}

/** Parquet INT64 columns decode to BigInt; numbers are what the rest of the pipeline expects. */
function normalise(v: unknown): unknown {
  if (typeof v === "bigint") return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  if (Array.isArray(v)) return v.map(normalise);
  if (v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !(v instanceof Date)) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  }
  return v;
}

async function* readParquet(path: string): AsyncGenerator<DataRecord> {
  let file: Awaited<ReturnType<typeof asyncBufferFromFile>>;
  let metadata: Awaited<ReturnType<typeof parquetMetadataAsync>>;
  try {
    file = await asyncBufferFromFile(path);
    metadata = await parquetMetadataAsync(file);
  } catch (err) {
    throw new DataError(path, "bad_parquet", `not a readable Parquet file: ${(err as Error).message}`, { cause: err });
  }
  let rowStart = 0;
  for (const group of metadata.row_groups) {
    const rowEnd = rowStart + Number(group.num_rows);
    let rows: Record<string, unknown>[];
    try {
      // One row group at a time: memory is bounded by the largest group, not the file.
      rows = await parquetReadObjects({ file, metadata, rowStart, rowEnd, compressors });
    } catch (err) {
      throw new DataError(
        path,
        "bad_parquet",
        `cannot decode rows ${rowStart + 1}..${rowEnd}: ${(err as Error).message}`,
        {
          line: rowStart + 1,
          cause: err,
        },
      );
    }
    for (let i = 0; i < rows.length; i++) {
      yield { file: path, line: rowStart + i + 1, values: normalise(rows[i]) as Record<string, unknown> };
    }
    rowStart = rowEnd;
  }
}
