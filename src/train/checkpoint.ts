/**
 * Training checkpoints: a folder per checkpoint (`checkpoints/step-000120/`) with
 *
 * - `model.safetensors`: the trainable parameters and every buffer (LoRA: the adapter factors and
 *   modules to save; frozen base weights are not copied: the freeze audit guarantees they are the
 *   base model's),
 * - `optimizer.safetensors` + `optimizer.json`: optimiser state tensors, step counts, groups,
 * - `trainer_state.json`: step, epoch, phase, scheduler, every RNG stream, the data cursor, early
 *   stopping, the metrics.jsonl line count and the config hash,
 * - `manifest.json`, written LAST: SHA-256 and size of every other file. A folder without a
 *   manifest that verifies is incomplete and is skipped (with a warning) on resume.
 *
 * Every file goes to a temporary name, is fsynced and renamed; the folder is fsynced after.
 * `TUNEKIT_TEST_CKPT_PAUSE_MS` (tests only) sleeps after each file, widening the window in which a
 * SIGKILL leaves a half-written checkpoint.
 *
 * @example
 * ```ts
 * await saveCheckpoint(join(runDir, "checkpoints", checkpointName(120)), payload);
 * const latest = await findLatestCheckpoint(join(runDir, "checkpoints"), console.warn);
 * if (latest) payload = await loadCheckpoint(latest);
 * ```
 */
import { createHash, randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, rm, unlink } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { parseSafetensors, type RawTensor, serializeSafetensors } from "../formats/safetensors.ts";
import { rawToTensor, tensorToRaw } from "../formats/tensors.ts";
import type { OptimizerStateDict } from "../optim/optimizer.ts";
import { TunekitError } from "../tensor/errors.ts";
import { Tensor } from "../tensor/tensor.ts";

export const MANIFEST = "manifest.json";

/** A checkpoint folder failed verification or could not be read. */
export class CheckpointError extends TunekitError {
  constructor(
    readonly dir: string,
    readonly reason: string,
  ) {
    super(`${dir}: ${reason}`);
  }
}

/** Everything a checkpoint holds. */
export interface CheckpointPayload {
  model: Map<string, Tensor>;
  optimizer: OptimizerStateDict;
  /** JSON state: step, epoch, scheduler, rng, data cursor, ... (the trainer's own shape). */
  trainer: Record<string, unknown>;
}

/** Folder name of the checkpoint at `step` (zero-padded so names sort by step). */
export function checkpointName(step: number): string {
  return `step-${String(step).padStart(8, "0")}`;
}

/** The step a checkpoint folder name encodes, or null. */
export function checkpointStep(name: string): number | null {
  const m = /^step-(\d+)$/.exec(name);
  return m ? Number(m[1]) : null;
}

/** safetensors bytes in one buffer (data ordered by name: the checkpoint layout, kept byte for byte). */
function safetensorsBytes(
  file: string,
  tensors: Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Uint8Array {
  return Buffer.concat(serializeSafetensors(tensors, metadata, { file, order: "name" }));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Test hook: pause after each checkpoint file (see module doc). */
function pauseMs(): number {
  const v = Number(process.env.TUNEKIT_TEST_CKPT_PAUSE_MS ?? 0);
  return Number.isFinite(v) && v > 0 ? v : 0;
}

/** Writes `bytes` to a temp name in the same folder, fsyncs, renames. Half the bytes first when the pause hook is on. */
async function writeAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(4).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx");
  try {
    const pause = pauseMs();
    const cut = pause ? bytes.byteLength >> 1 : bytes.byteLength;
    let done = 0;
    while (done < cut) done += (await fh.write(bytes, done, cut - done)).bytesWritten;
    if (pause) await sleep(pause);
    while (done < bytes.byteLength) done += (await fh.write(bytes, done, bytes.byteLength - done)).bytesWritten;
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  if (pauseMs()) await sleep(pauseMs());
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r").catch(() => null);
  await fh?.sync().catch(() => {});
  await fh?.close();
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

/** Optimizer state -> tensors (`state.<i>.<name>`) + JSON (numbers, nulls, groups). */
function splitOptimizer(sd: OptimizerStateDict): { tensors: Map<string, RawTensor>; json: unknown } {
  const tensors = new Map<string, RawTensor>();
  const scalars: Record<string, Record<string, number | null | "tensor">> = {};
  for (const [i, st] of Object.entries(sd.state)) {
    scalars[i] = {};
    for (const [k, v] of Object.entries(st)) {
      if (v instanceof Tensor) {
        tensors.set(`state.${i}.${k}`, tensorToRaw(v));
        scalars[i][k] = "tensor";
      } else scalars[i][k] = v;
    }
  }
  return { tensors, json: { state: scalars, paramGroups: sd.paramGroups } };
}

function joinOptimizer(
  tensors: Map<string, RawTensor>,
  json: {
    state: Record<string, Record<string, number | null | "tensor">>;
    paramGroups: OptimizerStateDict["paramGroups"];
  },
  file: string,
): OptimizerStateDict {
  const state: OptimizerStateDict["state"] = {};
  for (const [i, st] of Object.entries(json.state)) {
    state[Number(i)] = {};
    for (const [k, v] of Object.entries(st)) {
      if (v === "tensor") {
        const raw = tensors.get(`state.${i}.${k}`);
        if (!raw) throw new CheckpointError(file, `optimizer tensor state.${i}.${k} is missing`);
        state[Number(i)][k] = rawToTensor(raw, k, file);
      } else state[Number(i)][k] = v;
    }
  }
  return { state, paramGroups: json.paramGroups };
}

/** JSON that keeps non-finite numbers (NaN/Infinity as strings). */
export function stringifyState(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "number" && !Number.isFinite(x) ? `__num:${x}` : x), 2);
}
export function parseState(s: string): unknown {
  return JSON.parse(s, (_k, x) => (typeof x === "string" && x.startsWith("__num:") ? Number(x.slice(6)) : x));
}

/** Writes a complete checkpoint folder: data files first, then the manifest. */
export async function saveCheckpoint(dir: string, p: CheckpointPayload): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  const model = new Map<string, RawTensor>();
  for (const [k, t] of p.model) model.set(k, tensorToRaw(t));
  const opt = splitOptimizer(p.optimizer);
  const files: [string, Uint8Array][] = [
    ["model.safetensors", safetensorsBytes(join(dir, "model.safetensors"), model, { format: "pt" })],
    ["optimizer.safetensors", safetensorsBytes(join(dir, "optimizer.safetensors"), opt.tensors)],
    ["optimizer.json", Buffer.from(stringifyState(opt.json))],
    ["trainer_state.json", Buffer.from(stringifyState(p.trainer))],
  ];
  const manifest: { version: 1; files: Record<string, { sha256: string; bytes: number }> } = { version: 1, files: {} };
  for (const [name, bytes] of files) {
    await writeAtomic(join(dir, name), bytes);
    manifest.files[name] = { sha256: sha256(bytes), bytes: bytes.byteLength };
  }
  await fsyncDir(dir);
  await writeAtomic(join(dir, MANIFEST), Buffer.from(JSON.stringify(manifest, null, 2)));
  await fsyncDir(dir);
}

/** Reads and checks a checkpoint folder against its manifest; returns the file bytes. Throws CheckpointError. */
export async function verifyCheckpoint(dir: string): Promise<Map<string, Uint8Array>> {
  let manifest: { files?: Record<string, { sha256: string; bytes: number }> };
  try {
    manifest = JSON.parse(await readFile(join(dir, MANIFEST), "utf8"));
  } catch (e) {
    throw new CheckpointError(dir, `no valid ${MANIFEST} (${(e as Error).message}): the checkpoint is incomplete`);
  }
  if (!manifest.files || typeof manifest.files !== "object")
    throw new CheckpointError(dir, `${MANIFEST} lists no files`);
  const out = new Map<string, Uint8Array>();
  for (const [name, want] of Object.entries(manifest.files)) {
    if (basename(name) !== name) throw new CheckpointError(dir, `${MANIFEST} names a path outside the folder: ${name}`);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(join(dir, name));
    } catch {
      throw new CheckpointError(dir, `${name} is missing`);
    }
    if (bytes.byteLength !== want.bytes)
      throw new CheckpointError(
        dir,
        `${name} has ${bytes.byteLength} bytes, the manifest says ${want.bytes} (truncated?)`,
      );
    if (sha256(bytes) !== want.sha256)
      throw new CheckpointError(dir, `${name} does not match its SHA-256 in the manifest (corrupted)`);
    out.set(name, bytes);
  }
  for (const need of ["model.safetensors", "optimizer.safetensors", "optimizer.json", "trainer_state.json"])
    if (!out.has(need)) throw new CheckpointError(dir, `${MANIFEST} does not list ${need}`);
  return out;
}

/** Loads a verified checkpoint folder. */
export async function loadCheckpoint(dir: string): Promise<CheckpointPayload> {
  const files = await verifyCheckpoint(dir);
  const m = parseSafetensors(files.get("model.safetensors") as Uint8Array, join(dir, "model.safetensors"));
  const model = new Map<string, Tensor>();
  for (const [k, raw] of m.tensors) model.set(k, rawToTensor(raw, k, dir));
  const o = parseSafetensors(files.get("optimizer.safetensors") as Uint8Array, join(dir, "optimizer.safetensors"));
  const dec = new TextDecoder();
  const optJson = parseState(dec.decode(files.get("optimizer.json"))) as Parameters<typeof joinOptimizer>[1];
  const optimizer = joinOptimizer(o.tensors, optJson, dir);
  const trainer = parseState(dec.decode(files.get("trainer_state.json"))) as Record<string, unknown>;
  return { model, optimizer, trainer };
}

/** Checkpoint folders under `root`, newest (highest step) first. */
export async function listCheckpoints(root: string): Promise<{ dir: string; step: number }[]> {
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return [];
  }
  return names
    .map((n) => ({ dir: join(root, n), step: checkpointStep(n) }))
    .filter((c): c is { dir: string; step: number } => c.step !== null)
    .sort((a, b) => b.step - a.step);
}

/** The newest checkpoint whose manifest verifies; each one skipped is reported through `warn`. */
export async function findLatestCheckpoint(
  root: string,
  warn: (m: string) => void = console.warn,
): Promise<string | null> {
  for (const c of await listCheckpoints(root)) {
    try {
      await verifyCheckpoint(c.dir);
      return c.dir;
    } catch (e) {
      warn(`resume: skipping checkpoint ${c.dir}: ${(e as CheckpointError).reason ?? (e as Error).message}`);
    }
  }
  return null;
}

/** Deletes checkpoints beyond the newest `keepLast` complete ones, sparing `keep` (the best) and incomplete ones newer than all. */
export async function pruneCheckpoints(
  root: string,
  keepLast: number,
  keep: ReadonlySet<string> = new Set(),
): Promise<void> {
  const all = await listCheckpoints(root);
  let kept = 0;
  for (const c of all) {
    if (keep.has(c.dir)) continue;
    if (kept < keepLast) {
      kept++;
      continue;
    }
    await rm(c.dir, { recursive: true, force: true });
  }
}
