import assert from "node:assert/strict";
import { once } from "node:events";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { type Batch, DataLoader, type EncodedExample, epochSeed } from "../../src/data/batch.ts";
import { DataError } from "../../src/data/errors.ts";
import { readRecords } from "../../src/data/text/read.ts";

/** 23 examples of lengths 1..5 with class labels. */
function examples(n = 23): EncodedExample[] {
  return Array.from({ length: n }, (_, i) => ({
    inputIds: Array.from({ length: 1 + (i % 5) }, (_, k) => 10 + i + k),
    label: i % 3,
    origins: [i],
  }));
}

const OPTS = { batchSize: 4, seed: 1234, padTokenId: 0 };
const sig = (b: Batch) =>
  JSON.stringify([
    b.indices,
    [...b.inputIds.shape],
    [...b.inputIds.toFloat64Array()],
    [...b.attentionMask.toFloat64Array()],
    [...b.labels.toFloat64Array()],
  ]);

describe("DataLoader", () => {
  test("one epoch covers every example once; batch count with and without dropLast", () => {
    const l = new DataLoader(examples(), OPTS);
    assert.equal(l.length, 6);
    const seen = [...l].flatMap((b) => b.indices);
    assert.deepEqual(
      [...seen].sort((a, b) => a - b),
      Array.from({ length: 23 }, (_, i) => i),
    );
    assert.deepEqual(l.state(), { epoch: 1, position: 0, seed: 1234 });
    const d = new DataLoader(examples(), { ...OPTS, dropLast: true });
    assert.equal(d.length, 5);
    const batches = [...d];
    assert.equal(batches.length, 5);
    assert.ok(batches.every((b) => b.indices.length === 4));
  });

  test("seeded: same seed same order, epochs differ, another seed differs", () => {
    const a = new DataLoader(examples(), OPTS);
    const b = new DataLoader(examples(), OPTS);
    const e0a = [...a].map(sig);
    assert.deepEqual([...b].map(sig), e0a);
    const e1a = [...a].map(sig);
    assert.notDeepEqual(e1a, e0a, "a new shuffle each epoch");
    assert.deepEqual(a.order(1), new DataLoader(examples(), OPTS).order(1));
    assert.notDeepEqual(new DataLoader(examples(), { ...OPTS, seed: 99 }).order(0), a.order(0));
    assert.equal(epochSeed(1234, 0), epochSeed(1234, 0));
    assert.notEqual(epochSeed(1234, 0), epochSeed(1234, 1));
    assert.deepEqual(
      new DataLoader(examples(), { ...OPTS, shuffle: false }).order(3),
      Array.from({ length: 23 }, (_, i) => i),
    );
  });

  test("resume from state() sees exactly the same batches as an uninterrupted run", () => {
    const ref = new DataLoader(examples(), OPTS);
    const stream: string[] = [];
    for (let i = 0; i < 17; i++) stream.push(sig(ref.nextBatch()));
    for (const stopAt of [0, 3, 6, 7, 11, 12]) {
      const first = new DataLoader(examples(), OPTS);
      const got: string[] = [];
      for (let i = 0; i < stopAt; i++) got.push(sig(first.nextBatch()));
      const saved = JSON.parse(JSON.stringify(first.state()));
      const resumed = DataLoader.fromState(examples(), { ...OPTS, seed: 0 }, saved);
      while (got.length < 17) got.push(sig(resumed.nextBatch()));
      assert.deepEqual(got, stream, `stopped after ${stopAt} batches`);
    }
  });

  test("dynamic padding per batch: T is the batch's longest", () => {
    const l = new DataLoader(examples(), OPTS);
    for (const b of l) {
      const longest = Math.max(...b.indices.map((i) => 1 + (i % 5)));
      assert.equal(b.inputIds.shape[1], longest);
      assert.equal(b.numTargets, b.indices.length);
    }
  });

  test("bad options and states are DataErrors", () => {
    assert.throws(() => new DataLoader(examples(), { ...OPTS, batchSize: 0 }), DataError);
    assert.throws(() => new DataLoader([], OPTS), /no examples/);
    assert.throws(() => new DataLoader(examples(3), { ...OPTS, dropLast: true }), /leaves no batch/);
    const l = new DataLoader(examples(), OPTS);
    assert.throws(() => l.loadState({ epoch: 0, position: 6, seed: 1234 }), /position 6 does not fit 6 batches/);
    assert.throws(() => l.loadState({ epoch: 0, position: 0, seed: 1 }), /seed 1234 differs from the saved 1/);
  });
});

describe("streaming", () => {
  test("a 200k-line JSONL is read incrementally, never as one string", async () => {
    const dir = await mkdtemp(join(tmpdir(), "tk-stream-"));
    const path = join(dir, "big.jsonl");
    try {
      const out = createWriteStream(path);
      const pad = "x".repeat(200);
      for (let i = 0; i < 200_000; i++) {
        if (!out.write(`{"text": "line ${i} ${pad}", "label": "${i % 2 ? "pos" : "neg"}"}\n`)) await once(out, "drain");
      }
      out.end();
      await once(out, "finish");
      const size = (await stat(path)).size;
      assert.ok(size > 40e6, `file is ${size} bytes`);

      const it = readRecords(path);
      assert.equal(typeof it[Symbol.asyncIterator], "function", "an async iterator");
      const first = await it.next();
      assert.equal(first.done, false);
      assert.equal((first.value as { line: number }).line, 1);
      await it.return(undefined);

      // Measure what the reader retains, not garbage waiting for the young-generation collector.
      setFlagsFromString("--expose-gc");
      const gc = runInNewContext("gc") as () => void;
      gc();
      const base = process.memoryUsage();
      let peak = 0;
      let n = 0;
      for await (const r of readRecords(path)) {
        n++;
        if (n % 20_000 === 0) {
          gc();
          const m = process.memoryUsage();
          peak = Math.max(
            peak,
            m.heapUsed + m.external + m.arrayBuffers - (base.heapUsed + base.external + base.arrayBuffers),
          );
        }
        if (n === 200_000) assert.equal(r.line, 200_000);
      }
      assert.equal(n, 200_000);
      assert.ok(
        peak < size / 10,
        `memory grew by ${(peak / 1e6).toFixed(1)} MB while reading a ${(size / 1e6).toFixed(1)} MB file`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
