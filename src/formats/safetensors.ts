/**
 * The safetensors format: read, validate, write, and sharded folders.
 *
 * Layout: 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON (the header), then the data
 * section. The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` (offsets
 * relative to the data section) plus an optional `__metadata__` string map.
 *
 * Files are untrusted: every number in the header is validated before anything is sized from it,
 * and every rejection is a {@link SafetensorsError} naming the file and the reason.
 */
import { randomBytes } from "node:crypto";
import { open, readdir, readFile, realpath, rename, stat, unlink } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, relative, sep } from "node:path";
import { SafetensorsError, type SafetensorsErrorCode } from "./errors.ts";

/** Element types tunekit reads and writes (names as in the safetensors spec). */
export type StDtype = "F32" | "F16" | "BF16" | "F64" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** One tensor as plain data: little-endian, C-contiguous bytes. */
export interface RawTensor {
  dtype: StDtype;
  shape: number[];
  /** The tensor's bytes; after a read, a zero-copy view into the file buffer. */
  data: Uint8Array;
}

/** A parsed safetensors file. */
export interface SafetensorsFile {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
  file: string;
}

/** What {@link readSafetensorsHeader} returns: everything but the data. */
export interface SafetensorsHeader {
  tensors: Map<string, { dtype: StDtype; shape: number[]; dataOffsets: [number, number] }>;
  metadata: Record<string, string>;
  /** Byte offset of the data section in the file (8 + header length). */
  dataStart: number;
  file: string;
}

/** Bytes per element. */
export const DTYPE_SIZE: Readonly<Record<StDtype, number>> = {
  F64: 8,
  I64: 8,
  F32: 4,
  I32: 4,
  F16: 2,
  BF16: 2,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/**
 * Rank used to order tensors in the data section, as the reference implementation does:
 * descending dtype (its enum is in increasing alignment order), then by name. With the header
 * padded to 8 bytes this keeps every tensor aligned to its element size.
 */
const DTYPE_RANK: Readonly<Record<StDtype, number>> = {
  BOOL: 0,
  U8: 1,
  I8: 2,
  I16: 5,
  F16: 7,
  BF16: 8,
  I32: 9,
  F32: 11,
  F64: 12,
  I64: 13,
};

/** Header cap, as in the reference implementation. */
export const MAX_HEADER_BYTES = 100_000_000;
const FORBIDDEN_KEYS = new Set(["__proto__", "constructor", "prototype"]);
const ENTRY_KEYS = new Set(["dtype", "shape", "data_offsets"]);

function fail(file: string, code: SafetensorsErrorCode, reason: string, cause?: unknown): never {
  throw new SafetensorsError(file, code, reason, cause === undefined ? undefined : { cause });
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Element count of `shape`, or an error code when a dim is invalid or the count overflows 2^53. */
function checkedNumel(shape: unknown): number | "bad_shape" | "shape_overflow" {
  if (!Array.isArray(shape)) return "bad_shape";
  let n = 1;
  for (const d of shape) if (!Number.isSafeInteger(d) || d < 0) return "bad_shape";
  if (shape.includes(0)) return 0;
  for (const d of shape as number[]) {
    if (n > Number.MAX_SAFE_INTEGER / d) return "shape_overflow";
    n *= d;
  }
  return n;
}

/** Number of bytes `shape` x `dtype` occupies, throwing a typed error when invalid. */
function byteSize(file: string, name: string, dtype: StDtype, shape: unknown): number {
  const n = checkedNumel(shape);
  if (n === "bad_shape") fail(file, n, `tensor "${name}": shape must be an array of non-negative safe integers`);
  if (n === "shape_overflow" || n > Number.MAX_SAFE_INTEGER / DTYPE_SIZE[dtype]) {
    fail(file, "shape_overflow", `tensor "${name}": shape ${JSON.stringify(shape)} overflows`);
  }
  return n * DTYPE_SIZE[dtype];
}

/**
 * Parse and validate the JSON header bytes. `dataLen` is the size of the data section, so the
 * offsets can be checked against it. Nothing is allocated from a number in the header.
 */
function parseHeader(bytes: Uint8Array, dataLen: number, file: string): Omit<SafetensorsHeader, "dataStart"> {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch (e) {
    fail(file, "bad_utf8", "header is not valid UTF-8", e);
  }
  let json: unknown;
  try {
    // The reviver sees every key at every depth; refusing the prototype keys here means they never
    // reach an object we later copy from.
    json = JSON.parse(text, (key, value) => {
      if (FORBIDDEN_KEYS.has(key))
        throw new SafetensorsError(file, "proto_key", `header uses the forbidden key "${key}"`);
      return value;
    });
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    fail(file, "bad_json", `header is not valid JSON (${(e as Error).message})`, e);
  }
  if (!isPlainObject(json)) fail(file, "not_object", "header must be a JSON object");

  const metadata: Record<string, string> = {};
  const tensors: SafetensorsHeader["tensors"] = new Map();
  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(entry)) fail(file, "bad_metadata", "__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(entry)) {
        if (typeof v !== "string") fail(file, "bad_metadata", `__metadata__["${k}"] must be a string`);
        metadata[k] = v;
      }
      continue;
    }
    if (!isPlainObject(entry)) fail(file, "not_object", `tensor "${name}": entry must be an object`);
    for (const k of Object.keys(entry))
      if (!ENTRY_KEYS.has(k)) fail(file, "bad_entry", `tensor "${name}": unexpected key "${k}"`);
    const { dtype, shape, data_offsets: offs } = entry;
    if (dtype === undefined || shape === undefined || offs === undefined) {
      fail(file, "bad_entry", `tensor "${name}": needs dtype, shape and data_offsets`);
    }
    if (typeof dtype !== "string" || !Object.hasOwn(DTYPE_SIZE, dtype)) {
      fail(file, "bad_dtype", `tensor "${name}": unsupported dtype ${JSON.stringify(dtype)}`);
    }
    const size = byteSize(file, name, dtype as StDtype, shape);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(file, "bad_offsets", `tensor "${name}": data_offsets must be two non-negative safe integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(file, "bad_offsets", `tensor "${name}": data_offsets begin ${begin} > end ${end}`);
    if (end - begin !== size) {
      fail(
        file,
        "size_mismatch",
        `tensor "${name}": ${end - begin} bytes for ${dtype} ${JSON.stringify(shape)} (needs ${size})`,
      );
    }
    if (end > dataLen)
      fail(
        file,
        "out_of_bounds",
        `tensor "${name}": data_offsets [${begin}, ${end}] past the data section (${dataLen} bytes)`,
      );
    tensors.set(name, { dtype: dtype as StDtype, shape: [...(shape as number[])], dataOffsets: [begin, end] });
  }
  checkCoverage(tensors, dataLen, file);
  return { tensors, metadata, file };
}

/** Sorted by offset, the tensors must tile the data section exactly. */
function checkCoverage(tensors: SafetensorsHeader["tensors"], dataLen: number, file: string): void {
  const spans = [...tensors].sort(
    (a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1],
  );
  let pos = 0;
  let prev = "";
  for (const [
    name,
    {
      dataOffsets: [begin, end],
    },
  ] of spans) {
    if (begin < pos) fail(file, "overlap", `tensor "${name}" [${begin}, ${end}] overlaps "${prev}" (ends at ${pos})`);
    if (begin > pos)
      fail(file, "gap", `bytes ${pos}..${begin} of the data section belong to no tensor (before "${name}")`);
    pos = end;
    prev = name;
  }
  if (pos !== dataLen) fail(file, "trailing_bytes", `${dataLen - pos} bytes after the last tensor belong to no tensor`);
}

/** Validate the 8-byte prefix against the file size; returns the header length. */
function headerLength(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) fail(file, "truncated", `file is ${fileSize} bytes, shorter than the 8-byte header length`);
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_BYTES))
    fail(file, "header_too_large", `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte cap`);
  if (Number(n) > fileSize - 8)
    fail(file, "truncated", `header length ${n} runs past the end of the ${fileSize}-byte file`);
  return Number(n);
}

/** Tensor views into the whole-file buffer `buf`, whose data section starts at `dataStart`. */
function viewsOf(entries: SafetensorsHeader["tensors"], buf: Uint8Array, dataStart: number): Map<string, RawTensor> {
  const tensors = new Map<string, RawTensor>();
  for (const [name, { dtype, shape, dataOffsets }] of entries) {
    const [b, e] = dataOffsets;
    // A plain Uint8Array view (not a Buffer slice) so callers see one type whatever `buf` was.
    tensors.set(name, { dtype, shape, data: new Uint8Array(buf.buffer, buf.byteOffset + dataStart + b, e - b) });
  }
  return tensors;
}

/**
 * Parse a whole safetensors file held in memory. Tensor data are zero-copy views into `buf`.
 *
 * @example
 * ```ts
 * const st = parseSafetensors(await fs.readFile("model.safetensors"), "model.safetensors");
 * st.tensors.get("wte.weight")?.shape; // [50257, 768]
 * ```
 */
export function parseSafetensors(buf: Uint8Array, file: string): SafetensorsFile {
  const n = headerLength(buf, buf.byteLength, file);
  const dataStart = 8 + n;
  const header = parseHeader(buf.subarray(8, dataStart), buf.byteLength - dataStart, file);
  return { tensors: viewsOf(header.tensors, buf, dataStart), metadata: header.metadata, file };
}

/**
 * Read and validate a safetensors file. The header is validated first; then the file is read into
 * one buffer and tensors are views into it, so memory use is the file size plus the header.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = await readSafetensors("gpt2/model.safetensors");
 * ```
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return withFile(path, async (fh, size) => {
    // Validate the header before allocating the file's size, then read the whole file into one
    // buffer so tensors keep the alignment they have in the file.
    const header = await readHeaderFrom(fh, size, path);
    const buf = Buffer.allocUnsafeSlow(size);
    await readFully(fh, buf, 0, path);
    if (!buf.subarray(8, header.dataStart).equals(header.bytes)) fail(path, "io", "file changed while being read");
    return { tensors: viewsOf(header.tensors, buf, header.dataStart), metadata: header.metadata, file: path };
  });
}

/**
 * Read and validate only the header (the first 8 + N bytes), e.g. to list tensors and shapes of a
 * large checkpoint without loading it.
 *
 * @example
 * ```ts
 * const h = await readSafetensorsHeader("model.safetensors");
 * for (const [name, t] of h.tensors) console.log(name, t.dtype, t.shape);
 * ```
 */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  return withFile(path, async (fh, size) => {
    const { bytes: _, ...header } = await readHeaderFrom(fh, size, path);
    return header;
  });
}

type FileHandle = Awaited<ReturnType<typeof open>>;

async function withFile<T>(path: string, body: (fh: FileHandle, size: number) => Promise<T>): Promise<T> {
  let fh: FileHandle;
  try {
    fh = await open(path, "r");
  } catch (e) {
    fail(path, "io", `cannot open (${(e as Error).message})`, e);
  }
  try {
    return await body(fh, (await fh.stat()).size);
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    fail(path, "io", `cannot read (${(e as Error).message})`, e);
  } finally {
    await fh.close();
  }
}

/** Fill `buf` from file position `pos` (reads may come back short). */
async function readFully(fh: FileHandle, buf: Uint8Array, pos: number, path: string): Promise<void> {
  for (let done = 0; done < buf.byteLength; ) {
    const chunk = Math.min(buf.byteLength - done, 1 << 30);
    const { bytesRead } = await fh.read(buf, done, chunk, pos + done);
    if (bytesRead === 0) fail(path, "truncated", `file ended after ${pos + done} bytes`);
    done += bytesRead;
  }
}

/** Read and validate the 8-byte prefix and the header of an open file of `size` bytes. */
async function readHeaderFrom(fh: FileHandle, size: number, path: string) {
  const prefix = new Uint8Array(8);
  if (size >= 8) await readFully(fh, prefix, 0, path);
  const n = headerLength(prefix, size, path);
  const bytes = new Uint8Array(n);
  await readFully(fh, bytes, 8, path);
  return { ...parseHeader(bytes, size - 8 - n, path), dataStart: 8 + n, bytes };
}

/** Validate a tensor about to be written; returns its byte size. */
function checkWritable(file: string, name: string, t: RawTensor): number {
  if (name === "" || name === "__metadata__" || FORBIDDEN_KEYS.has(name))
    fail(file, "bad_name", `cannot write a tensor named "${name}"`);
  if (!Object.hasOwn(DTYPE_SIZE, t.dtype))
    fail(file, "bad_dtype", `tensor "${name}": unsupported dtype ${JSON.stringify(t.dtype)}`);
  const size = byteSize(file, name, t.dtype, t.shape);
  if (t.data.byteLength !== size) {
    fail(
      file,
      "size_mismatch",
      `tensor "${name}": ${t.data.byteLength} bytes for ${t.dtype} ${JSON.stringify(t.shape)} (needs ${size})`,
    );
  }
  return size;
}

/** Build the padded header bytes and the write order (by default the reference implementation's). */
function layout(
  file: string,
  tensors: Iterable<[string, RawTensor]>,
  metadata?: Record<string, string>,
  order: "dtype" | "name" = "dtype",
) {
  const byName = (an: string, bn: string) => (an < bn ? -1 : an > bn ? 1 : 0);
  const entries = [...tensors].sort(([an, a], [bn, b]) =>
    order === "name" ? byName(an, bn) : DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || byName(an, bn),
  );
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== "string" || FORBIDDEN_KEYS.has(k))
        fail(file, "bad_metadata", `__metadata__["${k}"] must be a string under an ordinary key`);
    }
    parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  }
  let offset = 0;
  for (const [name, t] of entries) {
    const size = checkWritable(file, name, t);
    // Built by hand: JSON.stringify of an object would move integer-like names ("0") first.
    parts.push(
      `${JSON.stringify(name)}:{"dtype":"${t.dtype}","shape":${JSON.stringify(t.shape)},"data_offsets":[${offset},${offset + size}]}`,
    );
    offset += size;
  }
  const json = Buffer.from(`{${parts.join(",")}}`, "utf8");
  const padded = Buffer.alloc(Math.ceil(json.length / 8) * 8, 0x20);
  json.copy(padded);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(padded.length));
  return { head: Buffer.concat([prefix, padded]), entries };
}

/**
 * A safetensors file's bytes as chunks, the tensors' data not copied: 8-byte header length, the
 * header padded with spaces to a multiple of 8, then each tensor's data. Data is ordered by
 * descending dtype then name, as the reference implementation does; `order: "name"` orders by
 * name alone (the layout of the training checkpoints). `file` names the target in errors.
 *
 * @example
 * ```ts
 * const bytes = Buffer.concat(serializeSafetensors(new Map([["w", raw]]), { format: "pt" }));
 * ```
 */
export function serializeSafetensors(
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
  opts: { file?: string; order?: "dtype" | "name" } = {},
): Uint8Array[] {
  const entries = tensors instanceof Map ? tensors : Object.entries(tensors);
  const { head, entries: ordered } = layout(opts.file ?? "<memory>", entries, metadata, opts.order);
  return [head, ...ordered.map(([, t]) => t.data)];
}

/**
 * Write `data` to `path` atomically: a temp name in the same folder, fsync, rename, fsync the folder.
 * `chunks` are written in order without being concatenated.
 */
export async function writeFileAtomic(path: string, chunks: Iterable<Uint8Array>): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  const fh = await open(tmp, "wx");
  try {
    for (const c of chunks) {
      let done = 0;
      while (done < c.byteLength) done += (await fh.write(c, done, c.byteLength - done)).bytesWritten;
    }
    await fh.sync();
    await fh.close();
    await rename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  // Persist the rename itself; not every platform lets us open a folder, so best effort.
  const dir = await open(dirname(path), "r").catch(() => null);
  await dir?.sync().catch(() => {});
  await dir?.close();
}

/**
 * Write a safetensors file atomically (temp name in the same folder, fsync, rename). The layout
 * matches the reference implementation: data ordered by descending dtype then name, header padded
 * with spaces to a multiple of 8 bytes.
 *
 * @example
 * ```ts
 * await writeSafetensors("out/model.safetensors",
 *   { "lm_head.weight": fromFloat32(w, "BF16", [vocab, dim]) }, { format: "pt" });
 * ```
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const chunks = serializeSafetensors(tensors, metadata, { file: path });
  try {
    await writeFileAtomic(path, chunks);
  } catch (e) {
    fail(path, "io", `cannot write (${(e as Error).message})`, e);
  }
}

// ---------------------------------------------------------------------------------------------
// Typed views and float conversions
// ---------------------------------------------------------------------------------------------

type TypedView =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | Uint16Array
  | Int16Array
  | Int8Array
  | Uint8Array;
const VIEW_CTOR = {
  F32: Float32Array,
  F64: Float64Array,
  I64: BigInt64Array,
  I32: Int32Array,
  I16: Int16Array,
  F16: Uint16Array,
  BF16: Uint16Array,
  I8: Int8Array,
  U8: Uint8Array,
  BOOL: Uint8Array,
} as const;

/**
 * The tensor's elements as a typed array (F16/BF16 as raw `Uint16Array` bits). Zero-copy when
 * `data` is aligned to the element size, a copy otherwise. Assumes a little-endian host.
 *
 * @example
 * ```ts
 * const w = typedView(st.tensors.get("wte.weight")!) as Float32Array;
 * ```
 */
export function typedView(t: RawTensor): TypedView {
  const Ctor = VIEW_CTOR[t.dtype];
  const n = t.data.byteLength / DTYPE_SIZE[t.dtype];
  const src = t.data.byteOffset % DTYPE_SIZE[t.dtype] === 0 ? t.data : t.data.slice();
  return new Ctor(src.buffer as ArrayBuffer, src.byteOffset, n);
}

/**
 * Widen a tensor to float32 (F16/BF16 bit-exact, F64 and 64-bit ints rounded once to nearest).
 * An aligned F32 tensor comes back as a zero-copy view of its bytes.
 *
 * @example
 * ```ts
 * const x = toFloat32({ dtype: "BF16", shape: [1], data: new Uint8Array([0x80, 0x3f]) }); // [1]
 * ```
 */
export function toFloat32(t: RawTensor): Float32Array {
  const v = typedView(t);
  if (t.dtype === "F32") return v as Float32Array;
  const out = new Float32Array(v.length);
  const bits = new Uint32Array(out.buffer);
  if (t.dtype === "BF16") {
    for (let i = 0; i < v.length; i++) bits[i] = (v as Uint16Array)[i] << 16;
  } else if (t.dtype === "F16") {
    for (let i = 0; i < v.length; i++) bits[i] = f16ToF32Bits((v as Uint16Array)[i]);
  } else if (t.dtype === "I64") {
    for (let i = 0; i < v.length; i++) out[i] = bigintToF32((v as BigInt64Array)[i]);
  } else {
    // F64 and <=32-bit ints: one rounding step (ints are exact as doubles).
    for (let i = 0; i < v.length; i++) out[i] = (v as Float64Array)[i];
  }
  return out;
}

/** IEEE half bits -> float32 bits. */
function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal half: normalise into a float32 normal.
  let e = 113;
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** int64 -> nearest float32 with a single rounding (avoids double rounding via float64). */
function bigintToF32(x: bigint): number {
  const neg = x < 0n;
  let a = neg ? -x : x;
  if (a < 2n ** 53n) return neg ? -Number(a) : Number(a);
  // Keep 26 significant bits (24 + guard + round) with the dropped bits ORed into the last one:
  // exact as a double, and the float32 store then rounds exactly once.
  const shift = BigInt(a.toString(2).length - 26);
  const sticky = (a & ((1n << shift) - 1n)) !== 0n ? 1n : 0n;
  a = (a >> shift) | sticky;
  const r = Number(a) * 2 ** Number(shift);
  return neg ? -r : r;
}

/** float32 bits -> IEEE half bits, round to nearest even. */
function f32BitsToF16(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    const m = mant | 0x800000;
    const shift = 14 - e;
    let h = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1) === 1)) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1) === 1)) h++; // a carry into the exponent is correct
  return sign | h;
}

/** float32 bits -> bfloat16 bits, round to nearest even; NaN stays a (quiet) NaN. */
function f32BitsToBf16(b: number): number {
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Make a tensor from float32 values, narrowing to F16/BF16 with round-to-nearest-even. Always
 * copies, so the result does not alias `data`.
 *
 * @example
 * ```ts
 * const t = fromFloat32(new Float32Array([1, 2, 3, 4]), "BF16", [2, 2]);
 * ```
 */
export function fromFloat32(data: Float32Array, dtype: "F32" | "F16" | "BF16", shape: number[]): RawTensor {
  const n = checkedNumel(shape);
  if (typeof n !== "number" || n !== data.length) {
    throw new SafetensorsError(
      "<memory>",
      "size_mismatch",
      `${data.length} values do not fill shape ${JSON.stringify(shape)}`,
    );
  }
  if (dtype === "F32") return { dtype, shape: [...shape], data: new Uint8Array(data.slice().buffer) };
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  const out = new Uint16Array(data.length);
  const conv = dtype === "F16" ? f32BitsToF16 : f32BitsToBf16;
  for (let i = 0; i < out.length; i++) out[i] = conv(bits[i]);
  return { dtype, shape: [...shape], data: new Uint8Array(out.buffer) };
}

// ---------------------------------------------------------------------------------------------
// Sharded folders (model.safetensors.index.json)
// ---------------------------------------------------------------------------------------------

/** Name of the single-file checkpoint and of the shard index in a HF model folder. */
export const SINGLE_FILE = "model.safetensors";
export const INDEX_FILE = "model.safetensors.index.json";
const MAX_INDEX_BYTES = 100_000_000;

/** A validated `model.safetensors.index.json`. */
export interface SafetensorsIndex {
  /** tensor name -> shard file name (as written in the index). */
  weightMap: Map<string, string>;
  /** shard file name -> absolute, realpath-checked path inside the folder. */
  shards: Map<string, string>;
  metadata: Record<string, unknown>;
  file: string;
}

/** Refuse shard names that are empty, absolute, drive/UNC-anchored or that use `..`. */
function checkShardName(file: string, name: string): void {
  const segments = name.split(/[\\/]/);
  if (
    name === "" ||
    name.includes("\0") ||
    isAbsolute(name) ||
    /^[a-zA-Z]:/.test(name) ||
    name.startsWith("\\") ||
    segments.some((s) => s === ".." || s === "." || s === "")
  ) {
    fail(file, "path_escape", `shard path ${JSON.stringify(name)} must be a plain relative name inside the folder`);
  }
}

/**
 * Read and validate `dir/model.safetensors.index.json`: `weight_map` must map tensor names to
 * shard names that stay inside `dir` (no `..`, no absolute path, no symlink out) and exist.
 *
 * @example
 * ```ts
 * const idx = await readSafetensorsIndex("llama-7b");
 * idx.weightMap.get("lm_head.weight"); // "model-00002-of-00002.safetensors"
 * ```
 */
export async function readSafetensorsIndex(dir: string): Promise<SafetensorsIndex> {
  const file = join(dir, INDEX_FILE);
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    fail(file, "io", `cannot read (${(e as Error).message})`, e);
  }
  if (size > MAX_INDEX_BYTES) fail(file, "bad_index", `index is ${size} bytes, over the ${MAX_INDEX_BYTES}-byte cap`);
  const text = await readFile(file, "utf8");
  let json: unknown;
  try {
    json = JSON.parse(text, (key, value) => {
      if (FORBIDDEN_KEYS.has(key))
        throw new SafetensorsError(file, "proto_key", `index uses the forbidden key "${key}"`);
      return value;
    });
  } catch (e) {
    if (e instanceof SafetensorsError) throw e;
    fail(file, "bad_json", `index is not valid JSON (${(e as Error).message})`, e);
  }
  if (!isPlainObject(json) || !isPlainObject(json.weight_map))
    fail(file, "bad_index", "index needs a weight_map object");
  if (json.metadata !== undefined && !isPlainObject(json.metadata))
    fail(file, "bad_index", "index metadata must be an object");

  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of Object.entries(json.weight_map)) {
    if (typeof shard !== "string") fail(file, "bad_index", `weight_map["${tensor}"] must be a string`);
    checkShardName(file, shard);
    weightMap.set(tensor, shard);
  }
  const root = await realpath(dir);
  const shards = new Map<string, string>();
  for (const shard of new Set(weightMap.values())) {
    let real: string;
    try {
      real = await realpath(join(dir, shard));
    } catch (e) {
      fail(file, "missing_shard", `shard ${JSON.stringify(shard)} does not exist`, e);
    }
    const rel = relative(root, real);
    if (rel === "" || rel.startsWith(`..${sep}`) || rel === ".." || isAbsolute(rel)) {
      fail(file, "path_escape", `shard ${JSON.stringify(shard)} resolves outside the folder (${real})`);
    }
    shards.set(shard, real);
  }
  return { weightMap, shards, metadata: (json.metadata as Record<string, unknown>) ?? {}, file };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Load every tensor of a HF model folder, from `model.safetensors` or from the shards listed in
 * `model.safetensors.index.json`, into one map.
 *
 * @example
 * ```ts
 * const weights = await loadSafetensorsDir("./smollm-135m");
 * weights.get("model.embed_tokens.weight")?.shape;
 * ```
 */
export async function loadSafetensorsDir(dir: string): Promise<Map<string, RawTensor>> {
  const single = join(dir, SINGLE_FILE);
  if (await exists(single)) return (await readSafetensors(single)).tensors;
  if (!(await exists(join(dir, INDEX_FILE))))
    fail(dir, "missing_file", `no ${SINGLE_FILE} or ${INDEX_FILE} in the folder`);
  const index = await readSafetensorsIndex(dir);
  const merged = new Map<string, RawTensor>();
  for (const [shard, path] of index.shards) {
    const st = await readSafetensors(path);
    for (const [name, t] of st.tensors) {
      if (merged.has(name)) fail(path, "duplicate_tensor", `tensor "${name}" also appears in another shard`);
      merged.set(name, t);
    }
    for (const [name, s] of index.weightMap) {
      if (s === shard && !st.tensors.has(name))
        fail(index.file, "missing_tensor", `tensor "${name}" is not in shard ${shard}`);
    }
  }
  return merged;
}

/** HF shard file name, e.g. `model-00001-of-00003.safetensors`. */
export function shardName(i: number, count: number): string {
  return `model-${String(i + 1).padStart(5, "0")}-of-${String(count).padStart(5, "0")}.safetensors`;
}

/**
 * Write tensors as a HF-style sharded checkpoint: `model-0000i-of-0000n.safetensors` files of at
 * most `maxShardBytes` each (a larger tensor gets a shard of its own) plus
 * `model.safetensors.index.json`. A single shard is written as plain `model.safetensors` with no
 * index, as `transformers` does. Stale shards from an earlier save are removed.
 *
 * @example
 * ```ts
 * await writeSafetensorsSharded("out", weights, { maxShardBytes: 5e9 });
 * ```
 */
export async function writeSafetensorsSharded(
  dir: string,
  tensors: Record<string, RawTensor> | Map<string, RawTensor>,
  opts: { maxShardBytes: number; metadata?: Record<string, string> },
): Promise<{ files: string[] }> {
  const entries = [...(tensors instanceof Map ? tensors : Object.entries(tensors))];
  const metadata = opts.metadata ?? { format: "pt" };
  const groups: [string, RawTensor][][] = [];
  let current: [string, RawTensor][] = [];
  let currentBytes = 0;
  let total = 0;
  for (const [name, t] of entries) {
    const size = checkWritable(dir, name, t);
    if (current.length > 0 && currentBytes + size > opts.maxShardBytes) {
      groups.push(current);
      current = [];
      currentBytes = 0;
    }
    current.push([name, t]);
    currentBytes += size;
    total += size;
  }
  if (current.length > 0 || groups.length === 0) groups.push(current);

  const files = groups.length === 1 ? [SINGLE_FILE] : groups.map((_, i) => shardName(i, groups.length));
  for (let i = 0; i < groups.length; i++) await writeSafetensors(join(dir, files[i]), new Map(groups[i]), metadata);
  if (groups.length > 1) {
    const shardOf = new Map(groups.flatMap((g, i) => g.map(([name]) => [name, files[i]] as const)));
    const weightMap: Record<string, string> = {};
    for (const name of [...shardOf.keys()].sort()) weightMap[name] = shardOf.get(name) as string;
    const index = JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2);
    await writeFileAtomic(join(dir, INDEX_FILE), [Buffer.from(`${index}\n`)]);
  }
  // Remove what an earlier save with a different shard count left behind.
  const keep = new Set(groups.length > 1 ? [...files, INDEX_FILE] : files);
  for (const name of await readdir(dir)) {
    if (
      (/^model-\d{5}-of-\d{5}\.safetensors$/.test(name) || name === INDEX_FILE || name === SINGLE_FILE) &&
      !keep.has(name)
    ) {
      await unlink(join(dir, name));
    }
  }
  return { files: [...keep] };
}
