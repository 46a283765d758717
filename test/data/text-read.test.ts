import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { DataError, type SkippedLine } from "../../src/data/errors.ts";
import { detectFormat, readRecords } from "../../src/data/text/read.ts";
import { REVIEWS_COLUMNS, REVIEWS_ROWS, writeParquet } from "../fixtures/data/text/make-parquet.ts";
import { FIXTURES } from "../helpers.ts";

const DIR = join(FIXTURES, "data", "text");
const f = (name: string) => join(DIR, name);

async function all(path: string, opts: Parameters<typeof readRecords>[1] = {}) {
  const out = [];
  for await (const r of readRecords(path, opts)) out.push(r);
  return out;
}

async function rejectsWith(p: Promise<unknown>, code: string, re: RegExp): Promise<DataError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DataError, `expected a DataError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, re);
  return caught;
}

describe("readers", () => {
  test("format from extension or option", () => {
    assert.equal(detectFormat("a/b.CSV"), "csv");
    assert.equal(detectFormat("x.tsv"), "tsv");
    assert.equal(detectFormat("x.ndjson"), "jsonl");
    assert.equal(detectFormat("x.parquet"), "parquet");
    assert.equal(detectFormat("x.txt", "jsonl"), "jsonl");
    assert.throws(() => detectFormat("x.txt"), /cannot tell the format .*"\.txt"/);
    assert.throws(() => detectFormat("x.csv", "xml"), /unknown format "xml"/);
  });

  test("CSV: header, quoted commas, multi-line fields, escaped quotes, start lines", async () => {
    const rows = await all(f("reviews.csv"));
    assert.equal(rows.length, 12);
    assert.deepEqual(rows[0], {
      file: f("reviews.csv"),
      line: 2,
      values: { review: "A great film, I loved it", sentiment: "positive", stars: "5" },
    });
    assert.equal(rows[3]!.values.review, "Wonderful\nfrom start to finish");
    assert.equal(rows[3]!.line, 5);
    assert.equal(rows[4]!.line, 7, "line numbers count the multi-line record's lines");
    assert.equal(rows[9]!.values.review, 'The "twist" was brilliant');
  });

  test("CSV line numbers hold with CRLF, a BOM, empty lines and multi-line fields", async () => {
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(join(tmpdir(), "tk-csv-"));
    const body = 'text,label\n\na,b\n\n\nc,d\n"x\n\ny",z\nbad,line,here\n\ne,f';
    for (const [name, text] of [
      ["lf.csv", body],
      ["crlf.csv", `\uFEFF${body.replace(/\n/g, "\r\n")}`],
    ] as const) {
      const p = join(dir, name);
      await writeFile(p, text);
      const skipped: SkippedLine[] = [];
      const rows = await all(p, { skipInvalid: true, onSkip: (s) => skipped.push(s) });
      // CRLF inside a quoted field reads as LF.
      assert.deepEqual(
        rows.map((r) => [r.line, r.values.text]),
        [
          [3, "a"],
          [6, "c"],
          [7, "x\n\ny"],
          [12, "e"],
        ],
        name,
      );
      assert.deepEqual(
        skipped.map((s) => s.line),
        [10],
        name,
      );
      await rejectsWith(all(p), "bad_csv", new RegExp(`${name}:10: expected 2 fields`));
    }
  });

  test("TSV: tab separated, quotes inside unquoted fields kept", async () => {
    const rows = await all(f("reviews.tsv"));
    assert.deepEqual(
      rows.map((r) => [r.line, r.values.review, r.values.sentiment]),
      [
        [2, "A great film, I loved it", "positive"],
        [3, "Terrible acting", "negative"],
        [4, 'It was "fine"', "neutral"],
        [5, "Wonderful", "positive"],
      ],
    );
  });

  test("JSONL: blank lines skipped, line numbers are the file's", async () => {
    const rows = await all(f("reviews.jsonl"));
    assert.deepEqual(
      rows.map((r) => r.line),
      [1, 2, 4, 5],
    );
    assert.equal(rows[2]!.values.text, "It was fine");
  });

  test("Parquet: committed fixture is what make-parquet.ts writes, read across row groups", async () => {
    assert.deepEqual(
      new Uint8Array(readFileSync(f("reviews.parquet"))),
      writeParquet(REVIEWS_COLUMNS, REVIEWS_ROWS, 3),
    );
    const rows = await all(f("reviews.parquet"));
    assert.deepEqual(
      rows.map((r) => r.line),
      [1, 2, 3, 4, 5, 6, 7],
    );
    assert.deepEqual(
      rows.map((r) => r.values),
      REVIEWS_ROWS,
      "int64 ids come back as numbers, nulls as null",
    );
  });

  test("Parquet: a truncated file is a DataError", async () => {
    const { mkdtemp, writeFile } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const dir = await mkdtemp(join(tmpdir(), "tk-pq-"));
    const bad = join(dir, "bad.parquet");
    await writeFile(bad, readFileSync(f("reviews.parquet")).subarray(0, 100));
    await rejectsWith(all(bad), "bad_parquet", /bad\.parquet: not a readable Parquet file/);
  });

  test("missing file is an io DataError naming it", async () => {
    await rejectsWith(all(f("nope.csv")), "io", /nope\.csv: cannot read/);
  });

  test("malformed JSONL stops at file:line with the reason", async () => {
    const e = await rejectsWith(all(f("malformed.jsonl")), "bad_json", /malformed\.jsonl:3: not valid JSON/);
    assert.equal(e.line, 3);
    assert.equal(e.file, f("malformed.jsonl"));
  });

  test("malformed JSONL with skipInvalid: the rest is read, skipped lines reported exactly", async () => {
    const skipped: SkippedLine[] = [];
    const rows = await all(f("malformed.jsonl"), { skipInvalid: true, onSkip: (s) => skipped.push(s) });
    assert.deepEqual(
      rows.map((r) => r.line),
      [1, 2, 4, 6, 7, 8],
    );
    assert.deepEqual(
      skipped.map((s) => [s.line, s.reason.split(":")[0]]),
      [
        [3, "not valid JSON"],
        [5, "expected a JSON object, got an array"],
      ],
    );
    assert.ok(skipped.every((s) => s.file === f("malformed.jsonl")));
  });

  test("malformed CSV stops at file:line with the reason", async () => {
    await rejectsWith(all(f("malformed.csv")), "bad_csv", /malformed\.csv:4: expected 2 fields \(text, label\), got 3/);
  });

  test("malformed CSV with skipInvalid reports the wrong field count and the unclosed quote at its first line", async () => {
    const skipped: SkippedLine[] = [];
    const rows = await all(f("malformed.csv"), { skipInvalid: true, onSkip: (s) => skipped.push(s) });
    assert.deepEqual(
      rows.map((r) => r.line),
      [2, 3, 5],
    );
    assert.deepEqual(skipped, [
      { file: f("malformed.csv"), line: 4, reason: "expected 2 fields (text, label), got 3" },
      { file: f("malformed.csv"), line: 6, reason: "a quoted field is not closed before the end of the file" },
    ]);
  });
});
