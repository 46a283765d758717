/**
 * Image datasets as an index: file paths and integer labels, built by listing folders or reading a
 * `path,label` list, without opening a single image (headers are checked at load time, or up front
 * with `validateImages`). A 50,000-image folder costs one `readdir` per folder and one small object
 * per image.
 *
 * @example
 * ```ts
 * const ds = await indexImageFolder("./photos");       // photos/<class>/<image>
 * console.log(ds.classes, ds.classCounts, ds.warnings);
 * const { train, validation } = stratifiedSplit(ds, { validationFraction: 0.2, seed: 0 });
 * ```
 */
import { readdir, readFile } from "node:fs/promises";
import { dirname, extname, isAbsolute, join, relative, resolve, sep } from "node:path";
import { parse as parseCsv } from "csv-parse/sync";
import { Generator } from "../../tensor/rng.ts";
import { ImageDataError } from "./errors.ts";

/** One image: an absolute path and a class index into `ImageDataset.classes`. */
export interface ImageItem {
  path: string;
  label: number;
}

/** An indexed image dataset (no pixels loaded). */
export interface ImageDataset {
  /** The folder (or list file's folder) the paths live under. */
  root: string;
  /** Class names; `label` indexes this array. */
  classes: string[];
  items: ImageItem[];
  /** Images per class, in `classes` order. */
  classCounts: number[];
  /** Human-readable warnings (class imbalance, ignored files). */
  warnings: string[];
}

/** File extensions indexed by default (lower case); what `decodeImage` supports. */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png", ".webp", ".gif"];

export interface IndexOptions {
  /** Extensions to keep (lower case, with the dot). Default {@link IMAGE_EXTENSIONS}. */
  extensions?: readonly string[];
  /** Warn when the largest class is more than this many times the smallest. Default 3. */
  imbalanceRatio?: number;
}

/**
 * Indexes a folder with one sub-folder per class (torchvision `ImageFolder`, Keras
 * `image_dataset_from_directory`): classes are the sorted sub-folder names, images are found
 * recursively inside each (symbolic links are not followed), files with other extensions are
 * ignored and counted in a warning. Nothing but directory listings is read.
 *
 * @example
 * ```ts
 * const ds = await indexImageFolder("./digits");  // digits/0/*.png ... digits/9/*.png
 * ```
 */
export async function indexImageFolder(dir: string, opts: IndexOptions = {}): Promise<ImageDataset> {
  const root = resolve(dir);
  const exts = new Set(opts.extensions ?? IMAGE_EXTENSIONS);
  const entries = await listDir(root);
  const classDirs = entries.filter((e) => e.isDirectory() && !e.name.startsWith(".")).map((e) => e.name);
  classDirs.sort(compareStrings);
  const classes: string[] = [];
  const items: ImageItem[] = [];
  let ignored = 0;
  const empty: string[] = [];
  for (const name of classDirs) {
    const files: string[] = [];
    ignored += await walk(join(root, name), exts, files);
    if (files.length === 0) {
      empty.push(name);
      continue;
    }
    files.sort(compareStrings);
    const label = classes.length;
    classes.push(name);
    for (const f of files) items.push({ path: f, label });
  }
  if (classes.length === 0)
    throw new ImageDataError(root, "no_classes", "no class sub-folder with images (expected <dir>/<class>/<image>)");
  const ds = finish(root, classes, items, opts);
  if (ignored > 0) ds.warnings.push(`${ignored} file(s) with extensions other than ${[...exts].join(", ")} ignored`);
  if (empty.length > 0) ds.warnings.push(`sub-folder(s) without images skipped: ${empty.join(", ")}`);
  return ds;
}

async function listDir(dir: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (e) {
    throw new ImageDataError(dir, "io", `cannot list folder (${(e as Error).message})`, { cause: e });
  }
}

/** Collects image files under `dir` into `out`; returns how many other files were ignored. */
async function walk(dir: string, exts: Set<string>, out: string[]): Promise<number> {
  let ignored = 0;
  for (const e of await listDir(dir)) {
    if (e.name.startsWith(".")) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) ignored += await walk(p, exts, out);
    else if (e.isFile() && exts.has(extname(e.name).toLowerCase())) out.push(p);
    else if (e.isFile()) ignored++;
  }
  return ignored;
}

/**
 * Indexes a CSV (`path,label` header; `image`/`file` also accepted for the path column) or JSONL
 * (`{"path": ..., "label": ...}` per line) list. Paths are relative to the list's folder and must
 * stay inside it. Classes are the distinct labels sorted: numerically when every label is a
 * non-negative integer (so "10" comes after "9"), as strings otherwise.
 *
 * @example
 * ```ts
 * const ds = await indexImageList("./data/train.csv");
 * ```
 */
export async function indexImageList(file: string, opts: IndexOptions = {}): Promise<ImageDataset> {
  const listFile = resolve(file);
  const root = dirname(listFile);
  let text: string;
  try {
    text = await readFile(listFile, "utf8");
  } catch (e) {
    throw new ImageDataError(listFile, "io", `cannot read list (${(e as Error).message})`, { cause: e });
  }
  const rows = extname(listFile).toLowerCase() === ".jsonl" ? parseJsonl(listFile, text) : parseCsvRows(listFile, text);
  if (rows.length === 0) throw new ImageDataError(listFile, "no_classes", "the list holds no images");
  const names = [...new Set(rows.map((r) => r.label))];
  const numeric = names.every((n) => /^\d+$/.test(n));
  names.sort(numeric ? (a, b) => Number(a) - Number(b) : compareStrings);
  const labelOf = new Map(names.map((n, i) => [n, i]));
  const items = rows.map((r) => ({
    path: insideRoot(listFile, root, r.path, r.line),
    label: labelOf.get(r.label) as number,
  }));
  return finish(root, names, items, opts);
}

interface ListRow {
  path: string;
  label: string;
  line: number;
}

function parseCsvRows(file: string, text: string): ListRow[] {
  let records: Record<string, string>[];
  try {
    records = parseCsv(text, {
      columns: (h: string[]) => h.map((c) => c.trim().toLowerCase()),
      skip_empty_lines: true,
      trim: true,
    });
  } catch (e) {
    throw new ImageDataError(file, "bad_list", `not valid CSV (${(e as Error).message})`, { cause: e });
  }
  return records.map((r, i) => {
    const path = r.path ?? r.image ?? r.file;
    const label = r.label;
    if (!path || label === undefined || label === "") {
      throw new ImageDataError(`${file}:${i + 2}`, "bad_list", "row needs a path (column path/image/file) and a label");
    }
    return { path, label, line: i + 2 };
  });
}

function parseJsonl(file: string, text: string): ListRow[] {
  const rows: ListRow[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      throw new ImageDataError(`${file}:${i + 1}`, "bad_list", "not valid JSON");
    }
    const r = o as { path?: unknown; image?: unknown; file?: unknown; label?: unknown };
    const path = r?.path ?? r?.image ?? r?.file;
    if (typeof path !== "string" || path === "" || (typeof r.label !== "string" && typeof r.label !== "number")) {
      throw new ImageDataError(
        `${file}:${i + 1}`,
        "bad_list",
        'line needs "path" (string) and "label" (string or number)',
      );
    }
    rows.push({ path, label: String(r.label), line: i + 1 });
  });
  return rows;
}

/** Resolves a list path against `root`, refusing absolute paths and `..` escapes. */
function insideRoot(file: string, root: string, p: string, line: number): string {
  const full = resolve(root, p);
  const rel = relative(root, full);
  if (isAbsolute(p) || rel === "" || rel === ".." || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new ImageDataError(
      `${file}:${line}`,
      "path_escape",
      `path ${JSON.stringify(p)} is absolute or leaves the list's folder`,
    );
  }
  return full;
}

function finish(root: string, classes: string[], items: ImageItem[], opts: IndexOptions): ImageDataset {
  const ds: ImageDataset = { root, classes, items, classCounts: countClasses(items, classes.length), warnings: [] };
  const w = imbalanceWarning(ds, opts.imbalanceRatio ?? 3);
  if (w) ds.warnings.push(w);
  return ds;
}

/** Images per class index. */
export function countClasses(items: readonly ImageItem[], numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (const it of items) counts[it.label]++;
  return counts;
}

/**
 * A warning when the largest class has more than `ratio` times the images of the smallest
 * (a class with none counts as infinitely imbalanced), or `null`.
 */
export function imbalanceWarning(ds: Pick<ImageDataset, "classes" | "classCounts">, ratio = 3): string | null {
  if (ds.classCounts.length < 2) return null;
  let lo = 0;
  let hi = 0;
  ds.classCounts.forEach((c, i) => {
    if (c < ds.classCounts[lo]) lo = i;
    if (c > ds.classCounts[hi]) hi = i;
  });
  const max = ds.classCounts[hi];
  const min = ds.classCounts[lo];
  if (min > 0 && max / min <= ratio) return null;
  return (
    `class imbalance: "${ds.classes[hi]}" has ${max} images, "${ds.classes[lo]}" has ${min}` +
    ` (ratio ${min > 0 ? (max / min).toFixed(1) : "inf"} > ${ratio}); consider class weights or resampling`
  );
}

/** A one-line-per-class table of counts, for logs and reports. */
export function formatClassCounts(ds: Pick<ImageDataset, "classes" | "classCounts">): string {
  const w = Math.max(5, ...ds.classes.map((c) => c.length));
  return ds.classes.map((c, i) => `${c.padEnd(w)}  ${ds.classCounts[i]}`).join("\n");
}

export interface SplitOptions {
  /** Fraction of each class held out for validation, in [0, 1). */
  validationFraction: number;
  seed?: number;
}

/**
 * Seeded stratified train/validation split: each class is shuffled with one generator (classes in
 * order) and `round(n * fraction)` of its images go to validation (at least one when the class has
 * two or more images and the fraction is above 0). Both halves keep the dataset's order.
 *
 * @example
 * ```ts
 * const { train, validation } = stratifiedSplit(ds, { validationFraction: 0.1, seed: 42 });
 * ```
 */
export function stratifiedSplit(
  ds: ImageDataset,
  opts: SplitOptions,
): { train: ImageDataset; validation: ImageDataset } {
  const f = opts.validationFraction;
  if (!(f >= 0 && f < 1))
    throw new ImageDataError(ds.root, "bad_config", `validationFraction must be in [0, 1), got ${f}`);
  const byClass: number[][] = ds.classes.map(() => []);
  ds.items.forEach((it, i) => {
    byClass[it.label].push(i);
  });
  const g = new Generator(opts.seed ?? 0);
  const isVal = new Uint8Array(ds.items.length);
  for (const idx of byClass) {
    g.shuffle(idx);
    let nVal = Math.round(idx.length * f);
    if (f > 0 && nVal === 0 && idx.length >= 2) nVal = 1;
    if (nVal >= idx.length && idx.length > 0) nVal = idx.length - 1;
    for (let k = 0; k < nVal; k++) isVal[idx[k]] = 1;
  }
  const part = (v: number): ImageDataset => {
    const items = ds.items.filter((_, i) => isVal[i] === v);
    return {
      root: ds.root,
      classes: ds.classes,
      items,
      classCounts: countClasses(items, ds.classes.length),
      warnings: [...ds.warnings],
    };
  };
  return { train: part(0), validation: part(1) };
}

/** Code-unit order, so the class order does not depend on the machine's locale. */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
