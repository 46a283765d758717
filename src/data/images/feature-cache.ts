/**
 * `FeatureCache`: one float32 vector per image on disk, so head-only training without augmentation
 * computes backbone features once and each later epoch costs only the head.
 *
 * Keyed by sha256 of the image file's bytes (renaming or moving a file keeps its entry; editing it
 * does not) under one model key: a string the caller builds from everything that changes the
 * features (model weights hash, layer, preprocessing). Opening the folder with another model key
 * invalidates it: the old shards are deleted.
 *
 * Layout: `<dir>/index.json` (`{ version, modelKey, dim, shards: [{ file, keys }] }`) and shards
 * `<dir>/features-00001.safetensors`, each one F32 tensor `features` (N, dim) whose row i belongs
 * to `keys[i]`. `flush()` writes a new shard, then the index, each atomically (temp name, fsync,
 * rename), so a crash leaves the previous index and at worst an unreferenced shard (removed on
 * the next open).
 *
 * @example
 * ```ts
 * const cache = await FeatureCache.open("./.cache/features", `resnet18:${weightsHash}:eval224`);
 * const key = await hashImageFile(path);
 * let f = await cache.get(key);
 * if (!f) { f = backboneFeatures(path); cache.put(key, f); }
 * await cache.flush();
 * ```
 */
import { createHash } from "node:crypto";
import { mkdir, readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { readSafetensors, writeFileAtomic, writeSafetensors } from "../../formats/safetensors.ts";
import { ImageDataError } from "./errors.ts";

const INDEX = "index.json";
const SHARD_RE = /^features-\d{5}\.safetensors$/;
const KEY_RE = /^[0-9a-f]{64}$/;
const MAX_DIM = 1 << 20;

interface CacheIndex {
  version: 1;
  modelKey: string;
  dim: number;
  shards: { file: string; keys: string[] }[];
}

/** sha256 (hex) of bytes: the image key. */
export function hashBytes(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** sha256 (hex) of a file's bytes. */
export async function hashImageFile(path: string): Promise<string> {
  try {
    return hashBytes(await readFile(path));
  } catch (e) {
    throw new ImageDataError(path, "io", `cannot read (${(e as Error).message})`, { cause: e });
  }
}

export class FeatureCache {
  /** True when `open` found a cache for another model key (or an unreadable one) and cleared it. */
  readonly invalidated: boolean;
  private readonly where = new Map<string, { shard: number; row: number }>();
  private readonly loaded = new Map<number, Float32Array>();
  private readonly pending = new Map<string, Float32Array>();

  private constructor(
    readonly dir: string,
    readonly modelKey: string,
    private dim: number | null,
    private readonly index: CacheIndex,
    invalidated: boolean,
  ) {
    this.invalidated = invalidated;
    index.shards.forEach((s, shard) => {
      for (const [row, k] of s.keys.entries()) this.where.set(k, { shard, row });
    });
  }

  /** Opens (creating) a cache folder for `modelKey`; a cache for another key is cleared. */
  static async open(dir: string, modelKey: string): Promise<FeatureCache> {
    if (typeof modelKey !== "string" || modelKey === "")
      throw new ImageDataError(dir, "bad_config", "modelKey must be a non-empty string");
    await mkdir(dir, { recursive: true });
    let index: CacheIndex | null = null;
    let invalidated = false;
    try {
      index = parseIndex(join(dir, INDEX), await readFile(join(dir, INDEX), "utf8"));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") invalidated = true; // unreadable index: start over
    }
    if (index && index.modelKey !== modelKey) {
      index = null;
      invalidated = true;
    }
    index ??= { version: 1, modelKey, dim: 0, shards: [] };
    // Remove shards the index does not reference (another model's, or a crash between writes).
    const keep = new Set(index.shards.map((s) => s.file));
    for (const f of await readdir(dir))
      if (SHARD_RE.test(f) && !keep.has(f)) await unlink(join(dir, f)).catch(() => {});
    if (invalidated) await writeFileAtomic(join(dir, INDEX), [Buffer.from(JSON.stringify(index))]);
    return new FeatureCache(dir, modelKey, index.dim || null, index, invalidated);
  }

  /** Number of cached vectors (flushed and pending). */
  get size(): number {
    let n = this.where.size;
    for (const k of this.pending.keys()) if (!this.where.has(k)) n++;
    return n;
  }

  has(imageHash: string): boolean {
    return this.pending.has(imageHash) || this.where.has(imageHash);
  }

  /** The vector for an image hash, or undefined (loads its shard on first use). */
  async get(imageHash: string): Promise<Float32Array | undefined> {
    const p = this.pending.get(imageHash);
    if (p) return p;
    const w = this.where.get(imageHash);
    if (!w) return undefined;
    const dim = this.dim as number;
    return (await this.shard(w.shard)).subarray(w.row * dim, (w.row + 1) * dim);
  }

  /** Adds a vector (kept in memory until `flush`). All vectors share one length. */
  put(imageHash: string, vec: Float32Array): void {
    if (!KEY_RE.test(imageHash))
      throw new ImageDataError(
        this.dir,
        "bad_config",
        `image key must be a sha256 hex digest, got ${JSON.stringify(imageHash)}`,
      );
    if (this.dim === null) {
      if (!(vec.length > 0 && vec.length <= MAX_DIM))
        throw new ImageDataError(this.dir, "bad_config", `feature length ${vec.length} out of range`);
      this.dim = vec.length;
    }
    if (vec.length !== this.dim)
      throw new ImageDataError(
        this.dir,
        "bad_config",
        `feature length ${vec.length}, the cache holds length ${this.dim}`,
      );
    this.pending.set(imageHash, Float32Array.from(vec));
  }

  /** Writes pending vectors as a new shard, then the index (both atomically). */
  async flush(): Promise<void> {
    if (this.pending.size === 0) return;
    const dim = this.dim as number;
    const keys = [...this.pending.keys()];
    const data = new Float32Array(keys.length * dim);
    for (const [i, k] of keys.entries()) data.set(this.pending.get(k) as Float32Array, i * dim);
    const shard = this.index.shards.length;
    const file = `features-${String(shard + 1).padStart(5, "0")}.safetensors`;
    await writeSafetensors(
      join(this.dir, file),
      { features: { dtype: "F32", shape: [keys.length, dim], data: new Uint8Array(data.buffer) } },
      { model_key: this.modelKey },
    );
    this.index.shards.push({ file, keys });
    this.index.dim = dim;
    await writeFileAtomic(join(this.dir, INDEX), [Buffer.from(JSON.stringify(this.index))]);
    for (const [row, k] of keys.entries()) this.where.set(k, { shard, row });
    this.loaded.set(shard, data);
    this.pending.clear();
  }

  private async shard(i: number): Promise<Float32Array> {
    const got = this.loaded.get(i);
    if (got) return got;
    const { file, keys } = this.index.shards[i];
    const path = join(this.dir, file);
    const st = await readSafetensors(path).catch((e) => {
      throw new ImageDataError(path, "cache", `cannot read shard (${(e as Error).message})`, { cause: e });
    });
    const t = st.tensors.get("features");
    if (t?.dtype !== "F32" || t.shape.length !== 2 || t.shape[0] !== keys.length || t.shape[1] !== this.dim) {
      throw new ImageDataError(path, "cache", `expected F32 features [${keys.length}, ${this.dim}]`);
    }
    const arr = new Float32Array(t.data.slice().buffer);
    this.loaded.set(i, arr);
    return arr;
  }
}

function parseIndex(file: string, text: string): CacheIndex {
  const bad = (why: string): never => {
    throw new ImageDataError(file, "cache", why);
  };
  const o = JSON.parse(text) as CacheIndex;
  if (o?.version !== 1 || typeof o.modelKey !== "string") bad("not a feature-cache index (version 1)");
  if (!(Number.isInteger(o.dim) && o.dim >= 0 && o.dim <= MAX_DIM)) bad(`bad dim ${o.dim}`);
  if (!Array.isArray(o.shards)) bad("shards must be a list");
  for (const s of o.shards) {
    if (typeof s?.file !== "string" || !SHARD_RE.test(s.file)) bad(`bad shard file name ${JSON.stringify(s?.file)}`);
    if (!Array.isArray(s.keys) || !s.keys.every((k) => typeof k === "string" && KEY_RE.test(k)))
      bad(`bad keys in ${s.file}`);
  }
  return o;
}
