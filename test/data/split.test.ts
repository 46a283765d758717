import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { DataError } from "../../src/data/errors.ts";
import { splitIndices, subset } from "../../src/data/split.ts";

/** 1000 examples: class 0 x600, class 1 x300, class 2 x90, class 3 x10, interleaved. */
function labels(): number[] {
  const out: number[] = [];
  for (let i = 0; i < 1000; i++) out.push(i % 100 < 60 ? 0 : i % 100 < 90 ? 1 : i % 100 < 99 ? 2 : 3);
  return out;
}

const count = (idx: number[], ls: number[], c: number) => idx.filter((i) => ls[i] === c).length;

describe("splitIndices", () => {
  test("stratified: every class keeps its proportion in every split", () => {
    const ls = labels();
    const s = splitIndices(ls.length, { validation: 0.1, test: 0.2, seed: 7, stratify: ls });
    assert.equal(s.validation.length, 100);
    assert.equal(s.test.length, 200);
    assert.equal(s.train.length, 700);
    for (const [c, n] of [
      [0, 600],
      [1, 300],
      [2, 90],
      [3, 10],
    ] as const) {
      assert.equal(count(s.validation, ls, c), Math.round(n * 0.1), `class ${c} in validation`);
      assert.equal(count(s.test, ls, c), Math.round(n * 0.2), `class ${c} in test`);
      assert.equal(count(s.train, ls, c), Math.round(n * 0.7), `class ${c} in train`);
    }
  });

  test("a partition: disjoint, complete, ascending", () => {
    const ls = labels();
    const s = splitIndices(ls.length, { validation: 0.15, seed: 1, stratify: ls });
    const all = [...s.train, ...s.validation, ...s.test].sort((a, b) => a - b);
    assert.deepEqual(
      all,
      Array.from({ length: 1000 }, (_, i) => i),
    );
    for (const part of [s.train, s.validation])
      assert.deepEqual(
        part,
        [...part].sort((a, b) => a - b),
      );
    assert.equal(s.validation.length, 150);
  });

  test("deterministic for a seed; another seed gives another split", () => {
    const ls = labels();
    const a = splitIndices(1000, { validation: 0.1, seed: 42, stratify: ls });
    const b = splitIndices(1000, { validation: 0.1, seed: 42, stratify: [...ls] });
    assert.deepEqual(a, b);
    // Pinned: the split must not change across releases or machines.
    assert.deepEqual(a.validation.slice(0, 8), [44, 76, 96, 118, 132, 147, 156, 167]);
    const c = splitIndices(1000, { validation: 0.1, seed: 43, stratify: ls });
    assert.notDeepEqual(a.validation, c.validation);
  });

  test("rounding: totals are round(n * fraction) with uneven classes", () => {
    const ls = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2];
    const s = splitIndices(ls.length, { validation: 0.25, seed: 0, stratify: ls });
    assert.equal(s.validation.length, Math.round(13 * 0.25));
    for (const c of [0, 1, 2]) assert.ok(count(s.train, ls, c) >= 1, `class ${c} keeps a train example`);
  });

  test("singleton classes stay in train", () => {
    const ls = [0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const s = splitIndices(10, { validation: 0.5, seed: 3, stratify: ls });
    assert.ok(s.train.includes(9));
    assert.equal(s.validation.length, 5);
  });

  test("plain seeded split (LM)", () => {
    const s = splitIndices(50, { validation: 0.2, seed: 5 });
    assert.equal(s.validation.length, 10);
    assert.equal(s.train.length, 40);
    assert.deepEqual(s, splitIndices(50, { validation: 0.2, seed: 5 }));
    assert.notDeepEqual(
      s.validation,
      Array.from({ length: 10 }, (_, i) => 40 + i),
      "shuffled, not the tail",
    );
  });

  test("bad fractions are DataErrors", () => {
    assert.throws(() => splitIndices(10, { validation: 0.6, test: 0.5 }), DataError);
    assert.throws(() => splitIndices(10, { validation: -0.1 }), /split fractions/);
    assert.throws(() => splitIndices(3, { stratify: [0, 1] }), /stratify has 2 keys for 3 examples/);
  });

  test("subset keeps the dataset's other fields", () => {
    const ds = { file: "x", examples: ["a", "b", "c"] };
    assert.deepEqual(subset(ds, [2, 0]), { file: "x", examples: ["c", "a"] });
  });
});
