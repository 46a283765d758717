import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { SafetensorsError } from "../../src/formats/errors.ts";
import {
  DTYPE_SIZE,
  fromFloat32,
  INDEX_FILE,
  loadSafetensorsDir,
  parseSafetensors,
  type RawTensor,
  readSafetensors,
  readSafetensorsHeader,
  readSafetensorsIndex,
  type StDtype,
  toFloat32,
  typedView,
  writeSafetensors,
  writeSafetensorsSharded,
} from "../../src/formats/safetensors.ts";

const FIXTURES = join(import.meta.dirname, "..", "fixtures", "models");
let tmp: string;
before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "tunekit-st-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Assemble a safetensors file from a header (object or raw text/bytes) and a data section. */
function build(header: unknown, dataLen = 0, opts: { len?: bigint; raw?: Uint8Array } = {}): Uint8Array {
  const json = opts.raw ?? Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(opts.len ?? BigInt(json.length));
  return Buffer.concat([prefix, json, Buffer.alloc(dataLen)]);
}

const f32 = (shape: number[], begin: number, end: number) => ({ dtype: "F32", shape, data_offsets: [begin, end] });

function rand(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s >>> 24;
  }
  return out;
}

function expectCode(code: string, file: string) {
  return (e: unknown) => {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${e}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    assert.equal(e.file, file);
    assert.ok(e.message.includes(file) && e.message.includes(e.reason));
    return true;
  };
}

// Each case: [name, expected code, file bytes]. Every one must be refused by all three readers.
const MALFORMED: [string, string, Uint8Array][] = [
  ["empty file", "truncated", new Uint8Array(0)],
  ["5-byte file", "truncated", new Uint8Array(5)],
  ["header length past end of file", "truncated", build({}, 0, { len: 64n })],
  ["header length off by one", "truncated", build({}, 0, { len: 3n })],
  ["header length claims 2^40 bytes", "header_too_large", build({}, 0, { len: 2n ** 40n })],
  ["header length u64 max", "header_too_large", build({}, 0, { len: 2n ** 64n - 1n })],
  ["header length 100 MB + 1", "header_too_large", build({}, 0, { len: 100_000_001n })],
  ["invalid UTF-8 byte", "bad_utf8", build(null, 0, { raw: Buffer.from([0x7b, 0xff, 0x7d]) })],
  [
    "UTF-8 encoded surrogate",
    "bad_utf8",
    build(null, 0, { raw: Buffer.from([0x7b, 0x22, 0xed, 0xa0, 0x80, 0x22, 0x7d]) }),
  ],
  ["truncated JSON", "bad_json", build('{"a":')],
  ["JSON with trailing garbage", "bad_json", build("{} x")],
  ["JSON with NUL padding", "bad_json", build("{}\0\0\0\0\0\0")],
  ["header is an array", "not_object", build("[]")],
  ["header is null", "not_object", build("null")],
  ["header is a string", "not_object", build('"x"')],
  ["tensor entry is a number", "not_object", build({ a: 3 })],
  ["__proto__ at top level", "proto_key", build('{"__proto__":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}')],
  ["constructor in metadata", "proto_key", build('{"__metadata__":{"constructor":"x"}}')],
  [
    "prototype inside an entry",
    "proto_key",
    build('{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0],"prototype":1}}'),
  ],
  ["metadata value not a string", "bad_metadata", build({ __metadata__: { format: 1 } })],
  ["metadata is an array", "bad_metadata", build({ __metadata__: ["pt"] })],
  ["entry without dtype", "bad_entry", build({ a: { shape: [1], data_offsets: [0, 4] } }, 4)],
  ["entry with an extra key", "bad_entry", build({ a: { ...f32([1], 0, 4), extra: 1 } }, 4)],
  ["unknown dtype", "bad_dtype", build({ a: { dtype: "Q4_K", shape: [1], data_offsets: [0, 1] } }, 1)],
  ["lower-case dtype", "bad_dtype", build({ a: { dtype: "f32", shape: [1], data_offsets: [0, 4] } }, 4)],
  ["dtype is a number", "bad_dtype", build({ a: { dtype: 4, shape: [1], data_offsets: [0, 4] } }, 4)],
  ["negative dim", "bad_shape", build({ a: f32([-1], 0, 4) }, 4)],
  ["fractional dim", "bad_shape", build({ a: f32([1.5], 0, 6) }, 6)],
  ["huge dim 1e20", "bad_shape", build({ a: f32([1e20], 0, 4) }, 4)],
  ["dim as string", "bad_shape", build({ a: { dtype: "F32", shape: ["1"], data_offsets: [0, 4] } }, 4)],
  ["shape is not an array", "bad_shape", build({ a: { dtype: "F32", shape: 1, data_offsets: [0, 4] } }, 4)],
  ["element count overflows 2^53", "shape_overflow", build({ a: f32([2 ** 26, 2 ** 26, 2 ** 26], 0, 4) }, 4)],
  ["byte size overflows 2^53", "shape_overflow", build({ a: f32([2 ** 52], 0, 4) }, 4)],
  ["begin > end", "bad_offsets", build({ a: f32([1], 8, 4) }, 8)],
  ["negative offset", "bad_offsets", build({ a: f32([1], -4, 0) }, 4)],
  ["fractional offset", "bad_offsets", build({ a: f32([1], 0.5, 4.5) }, 5)],
  ["three offsets", "bad_offsets", build({ a: { dtype: "F32", shape: [1], data_offsets: [0, 4, 8] } }, 8)],
  ["offset beyond 2^53", "bad_offsets", build({ a: f32([1], 1e300, 1e300) }, 4)],
  ["offsets do not match shape", "size_mismatch", build({ a: f32([2], 0, 4) }, 4)],
  ["offsets past the data section", "out_of_bounds", build({ a: f32([4], 0, 16) }, 8)],
  ["no data section at all", "out_of_bounds", build({ a: f32([1e6, 1e6], 0, 4e12) })],
  ["overlapping tensors", "overlap", build({ a: f32([2], 0, 8), b: f32([2], 4, 12) }, 12)],
  ["empty tensor inside another", "overlap", build({ a: f32([2], 0, 8), z: f32([0], 4, 4) }, 8)],
  ["gap between tensors", "gap", build({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, 12)],
  ["gap at the start", "gap", build({ a: f32([1], 4, 8) }, 8)],
  ["trailing bytes", "trailing_bytes", build({ a: f32([1], 0, 4) }, 12)],
  ["trailing bytes, no tensors", "trailing_bytes", build({}, 1)],
];

describe("malformed safetensors files", () => {
  test("the corpus is large enough", () => assert.ok(MALFORMED.length >= 30));
  for (const [name, code, bytes] of MALFORMED) {
    test(`${name} -> ${code}`, async () => {
      const file = join(tmp, `bad-${name.replace(/\W+/g, "_")}.safetensors`);
      await writeFile(file, bytes);
      assert.throws(() => parseSafetensors(bytes, file), expectCode(code, file));
      await assert.rejects(readSafetensors(file), expectCode(code, file));
      await assert.rejects(readSafetensorsHeader(file), expectCode(code, file));
    });
  }

  test("__proto__ never reaches Object.prototype", () => {
    const bytes = build('{"__proto__":{"polluted":"yes"}}');
    assert.throws(() => parseSafetensors(bytes, "p.safetensors"), expectCode("proto_key", "p.safetensors"));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test("a large file with a bad header is refused before its size is allocated", async () => {
    const file = join(tmp, "big-bad.safetensors");
    await writeFile(file, build({ a: f32([1], 0, 4) }, 32 << 20)); // 32 MB of trailing bytes
    const before = process.memoryUsage().arrayBuffers;
    await assert.rejects(readSafetensors(file), expectCode("trailing_bytes", file));
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 1 << 20, `arrayBuffers grew by ${grown} bytes`);
  });

  test("a missing file is an io error naming it", async () => {
    const file = join(tmp, "does-not-exist.safetensors");
    await assert.rejects(readSafetensors(file), expectCode("io", file));
    await assert.rejects(readSafetensors(tmp), expectCode("io", tmp));
  });

  test("refusing files allocates nothing sized from the header", () => {
    // Files that claim terabytes must be refused from their header alone.
    const claims = [
      build({ a: f32([1e6, 1e6], 0, 4e12) }),
      build({ a: f32([2 ** 26, 2 ** 26, 2 ** 26], 0, 4) }, 4),
      build({}, 0, { len: 2n ** 40n }),
    ];
    const before = process.memoryUsage().arrayBuffers;
    for (let i = 0; i < 200; i++) for (const c of claims) assert.throws(() => parseSafetensors(c, "x"));
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown < 1 << 20, `arrayBuffers grew by ${grown} bytes`);
  });
});

const ALL_DTYPES: StDtype[] = ["F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"];

describe("round trip", () => {
  test("every dtype, odd shapes, scalars and empty tensors", async () => {
    const tensors = new Map<string, RawTensor>();
    ALL_DTYPES.forEach((dtype, i) => {
      const shape = [[3, 5], [7], [], [2, 0, 3], [1, 1, 3]][i % 5];
      const n = shape.reduce((a, b) => a * b, 1);
      let data = rand(n * DTYPE_SIZE[dtype], i + 1);
      if (dtype === "BOOL") data = data.map((b) => b & 1);
      tensors.set(`t.${dtype.toLowerCase()}`, { dtype, shape, data });
    });
    tensors.set("0", { dtype: "U8", shape: [1], data: new Uint8Array([7]) }); // integer-like name
    const file = join(tmp, "all.safetensors");
    await writeSafetensors(file, tensors, { format: "pt", note: "ü ✓" });
    const st = await readSafetensors(file);
    assert.deepEqual(st.metadata, { format: "pt", note: "ü ✓" });
    assert.deepEqual([...st.tensors.keys()].sort(), [...tensors.keys()].sort());
    for (const [name, t] of tensors) {
      const r = st.tensors.get(name) as RawTensor;
      assert.equal(r.dtype, t.dtype);
      assert.deepEqual(r.shape, t.shape);
      assert.deepEqual(r.data, t.data, name);
    }
    // Layout: header padded to 8, data ordered by descending alignment, every tensor aligned.
    const header = await readSafetensorsHeader(file);
    assert.equal(header.dataStart % 8, 0);
    const order = [...header.tensors].sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0]);
    for (let i = 1; i < order.length; i++)
      assert.ok(DTYPE_SIZE[order[i - 1][1].dtype] >= DTYPE_SIZE[order[i][1].dtype]);
    for (const [, t] of order) assert.equal((header.dataStart + t.dataOffsets[0]) % DTYPE_SIZE[t.dtype], 0);
    assert.deepEqual(await readdir(tmp).then((l) => l.filter((n) => n.endsWith(".tmp"))), []);
  });

  test("byte-exact with the reference implementation's test vectors", async () => {
    const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
    const file = join(tmp, "ref.safetensors");
    await writeSafetensors(file, { "attn.0": { dtype: "F32", shape: [1, 2, 3], data } });
    const header = '{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}';
    assert.deepEqual(await readFile(file), Buffer.concat([build(header), data]));
    await writeSafetensors(file, {}, { framework: "pt" });
    assert.deepEqual(await readFile(file), build('{"__metadata__":{"framework":"pt"}}     '));
    await writeSafetensors(file, {});
    assert.deepEqual([...(await readFile(file))], [8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
  });

  test("a real HF file is rewritten byte for byte", async () => {
    const src = join(FIXTURES, "gpt2", "model.safetensors");
    const st = await readSafetensors(src);
    const out = join(tmp, "gpt2-copy.safetensors");
    await writeSafetensors(out, st.tensors, st.metadata);
    assert.deepEqual(await readFile(out), await readFile(src));
  });

  test("the writer refuses what it could not read back", async () => {
    const file = join(tmp, "w.safetensors");
    const ok = { dtype: "F32", shape: [1], data: new Uint8Array(4) } as RawTensor;
    await assert.rejects(writeSafetensors(file, { a: { ...ok, shape: [2] } }), expectCode("size_mismatch", file));
    await assert.rejects(writeSafetensors(file, { __metadata__: ok }), expectCode("bad_name", file));
    await assert.rejects(
      writeSafetensors(file, { a: { ...ok, dtype: "F8" as StDtype } }),
      expectCode("bad_dtype", file),
    );
    await assert.rejects(
      writeSafetensors(file, { a: ok }, { n: 1 as unknown as string }),
      expectCode("bad_metadata", file),
    );
  });
});

describe("real fixtures", () => {
  for (const model of ["gpt2", "llama", "bert", "distilbert", "mobilenet_v2"]) {
    test(`${model}: reads, keys match the reference state dict, zero-copy views`, async () => {
      const file = join(FIXTURES, model, "model.safetensors");
      const bytes = await readFile(file);
      const ref = JSON.parse(await readFile(join(FIXTURES, model, "reference.json"), "utf8"));
      if (ref.model_safetensors_sha256)
        assert.equal(createHash("sha256").update(bytes).digest("hex"), ref.model_safetensors_sha256);
      const st = parseSafetensors(bytes, file);
      for (const key of st.tensors.keys()) assert.ok(ref.state_dict_keys.includes(key), key);
      for (const t of st.tensors.values()) {
        assert.equal(t.data.buffer, bytes.buffer, "tensor data must be a view of the file buffer");
        if (t.dtype === "F32") assert.equal(typedView(t).buffer, bytes.buffer, "aligned F32 view must not copy");
      }
    });
  }

  test("gpt2: known key, shape and metadata", async () => {
    const st = await readSafetensors(join(FIXTURES, "gpt2", "model.safetensors"));
    const w = st.tensors.get("transformer.h.0.attn.c_attn.weight") as RawTensor;
    assert.equal(w.dtype, "F32");
    assert.deepEqual(w.shape, [32, 96]);
    assert.equal(toFloat32(w).length, 32 * 96);
    assert.deepEqual(st.metadata, { format: "pt" });
    const h = await readSafetensorsHeader(join(FIXTURES, "gpt2", "model.safetensors"));
    assert.deepEqual(h.tensors.get("transformer.h.0.attn.c_attn.bias")?.dataOffsets, [0, 384]);
  });

  test("reading allocates about the file size, no per-tensor copies", async () => {
    // 16 MB of F32 in 64 tensors.
    const tensors: Record<string, RawTensor> = {};
    for (let i = 0; i < 64; i++)
      tensors[`layer.${i}`] = { dtype: "F32", shape: [256, 256], data: rand(256 * 256 * 4, i) };
    const file = join(tmp, "big.safetensors");
    await writeSafetensors(file, tensors);
    const size = (await readFile(file)).byteLength;
    const before = process.memoryUsage().arrayBuffers;
    const st = await readSafetensors(file);
    for (const t of st.tensors.values()) typedView(t);
    const grown = process.memoryUsage().arrayBuffers - before;
    assert.ok(grown <= size + (1 << 20), `grew ${grown} bytes for a ${size}-byte file`);
    assert.equal(st.tensors.size, 64);
  });
});

describe("float conversions", () => {
  const u16 = (t: RawTensor) => [...new Uint16Array(t.data.buffer, t.data.byteOffset, t.data.byteLength / 2)];
  const fromBits = (dtype: "F16" | "BF16", bits: number[]) =>
    toFloat32({ dtype, shape: [bits.length], data: new Uint8Array(new Uint16Array(bits).buffer) });
  const f32OfBits = (bits: number[]) => [...new Float32Array(new Uint32Array(bits).buffer)];

  test("f16 -> f32 by hand", () => {
    const got = fromBits("F16", [0x3c00, 0xc000, 0x7bff, 0x0001, 0x0400, 0x3555, 0x8000, 0x7c00, 0xfc00, 0x03ff]);
    assert.deepEqual(
      [...got],
      [1, -2, 65504, 2 ** -24, 2 ** -14, 0.333251953125, -0, Infinity, -Infinity, 1023 * 2 ** -24],
    );
    assert.ok(Number.isNaN(fromBits("F16", [0x7e00])[0]));
  });

  test("bf16 -> f32 by hand", () => {
    const got = fromBits("BF16", [0x3f80, 0xc040, 0x3eab, 0x7f7f, 0x0001, 0xff80]);
    assert.deepEqual([...got], [1, -3, 0.333984375, 3.3895313892515355e38, 2 ** -133, -Infinity]);
  });

  test("f32 -> f16 rounds to nearest even", () => {
    const vals = new Float32Array([
      1,
      1 / 3,
      65504,
      65519,
      65520,
      2 ** -24,
      2 ** -25,
      3 * 2 ** -26,
      -0,
      1 + 2 ** -11,
      1 + 3 * 2 ** -11,
      1e-10,
      NaN,
    ]);
    assert.deepEqual(
      u16(fromFloat32(vals, "F16", [vals.length])),
      [0x3c00, 0x3555, 0x7bff, 0x7bff, 0x7c00, 0x0001, 0x0000, 0x0001, 0x8000, 0x3c00, 0x3c02, 0x0000, 0x7e00],
    );
  });

  test("f32 -> bf16 rounds to nearest even", () => {
    const vals = new Float32Array(
      f32OfBits([0x3f800000, 0x3eaaaaab, 0x3f808000, 0x3f818000, 0x3f808001, 0x7f7fffff, 0x80000000, 0x7fc00000]),
    );
    assert.deepEqual(
      u16(fromFloat32(vals, "BF16", [2, 4])),
      [0x3f80, 0x3eab, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0x8000, 0x7fc0],
    );
  });

  test("f16/bf16 round trip every finite value exactly", () => {
    for (const dtype of ["F16", "BF16"] as const) {
      const bits = new Uint16Array(65536).map((_, i) => i);
      const wide = toFloat32({ dtype, shape: [65536], data: new Uint8Array(bits.buffer) });
      const back = u16(fromFloat32(wide, dtype, [65536]));
      for (let i = 0; i < 65536; i++)
        if (!Number.isNaN(wide[i])) assert.equal(back[i], i, `${dtype} 0x${i.toString(16)}`);
    }
  });

  test("ints and f64 widen with one rounding", () => {
    const i64 = new BigInt64Array([0n, -5n, 2n ** 53n + 1n, 2n ** 24n + 1n, 2n ** 60n + 2n ** 36n, -(2n ** 63n)]);
    const got = toFloat32({ dtype: "I64", shape: [6], data: new Uint8Array(i64.buffer) });
    // 2^60 + 2^36 is exactly halfway between two floats whose even neighbour is 2^60.
    assert.deepEqual([...got], [0, -5, 2 ** 53, 2 ** 24, 2 ** 60, -(2 ** 63)]);
    const f64 = new Float64Array([0.1, 1e300, -2.5]);
    assert.deepEqual(
      [...toFloat32({ dtype: "F64", shape: [3], data: new Uint8Array(f64.buffer) })],
      [Math.fround(0.1), Infinity, -2.5],
    );
    const i8 = new Int8Array([-128, 127, 0]);
    assert.deepEqual([...toFloat32({ dtype: "I8", shape: [3], data: new Uint8Array(i8.buffer) })], [-128, 127, 0]);
  });

  test("typedView copies when the data is misaligned", () => {
    const buf = new Uint8Array(9);
    new DataView(buf.buffer).setFloat32(1, 1.5, true);
    new DataView(buf.buffer).setFloat32(5, -2, true);
    const v = typedView({ dtype: "F32", shape: [2], data: buf.subarray(1) });
    assert.deepEqual([...v], [1.5, -2]);
  });

  test("fromFloat32 refuses a shape that does not fit", () => {
    assert.throws(() => fromFloat32(new Float32Array(3), "F16", [2, 2]), SafetensorsError);
  });
});

describe("sharded folders", () => {
  async function fixtureDir(name: string, index: unknown, shards: Record<string, Record<string, RawTensor>> = {}) {
    const dir = join(tmp, name);
    await mkdir(dir, { recursive: true });
    for (const [f, t] of Object.entries(shards)) await writeSafetensors(join(dir, f), t);
    await writeFile(join(dir, INDEX_FILE), typeof index === "string" ? index : JSON.stringify(index));
    return dir;
  }
  const one = { a: { dtype: "F32", shape: [1], data: new Uint8Array(4) } as RawTensor };

  test("write shards + index, load them back, rewrite as one file", async () => {
    const dir = join(tmp, "sharded");
    await mkdir(dir);
    const tensors = new Map<string, RawTensor>();
    for (let i = 0; i < 5; i++) tensors.set(`l.${i}.w`, { dtype: "F32", shape: [16], data: rand(64, i) });
    tensors.set("big", { dtype: "F32", shape: [64], data: rand(256, 9) });
    const { files } = await writeSafetensorsSharded(dir, tensors, { maxShardBytes: 150 });
    assert.deepEqual(files.sort(), [
      "model-00001-of-00004.safetensors",
      "model-00002-of-00004.safetensors",
      "model-00003-of-00004.safetensors",
      "model-00004-of-00004.safetensors",
      INDEX_FILE,
    ]);
    const idx = await readSafetensorsIndex(dir);
    assert.equal(idx.weightMap.get("big"), "model-00004-of-00004.safetensors");
    assert.deepEqual(idx.metadata, { total_size: 5 * 64 + 256 });
    const loaded = await loadSafetensorsDir(dir);
    assert.deepEqual([...loaded.keys()].sort(), [...tensors.keys()].sort());
    for (const [k, t] of tensors) assert.deepEqual(loaded.get(k)?.data, t.data);

    await writeSafetensorsSharded(dir, tensors, { maxShardBytes: 1e9 });
    assert.deepEqual(await readdir(dir), ["model.safetensors"]);
    assert.equal((await loadSafetensorsDir(dir)).size, 6);
  });

  test("loadSafetensorsDir reads a plain HF folder", async () => {
    assert.ok((await loadSafetensorsDir(join(FIXTURES, "llama"))).size > 0);
  });

  const INDEX_CASES: [string, string, unknown][] = [
    ["dotdot", "path_escape", { weight_map: { a: "../outside.safetensors" } }],
    ["nested dotdot", "path_escape", { weight_map: { a: "sub/../../x.safetensors" } }],
    ["absolute", "path_escape", { weight_map: { a: "/etc/passwd" } }],
    ["drive", "path_escape", { weight_map: { a: "C:\\x.safetensors" } }],
    ["backslash dotdot", "path_escape", { weight_map: { a: "..\\x.safetensors" } }],
    ["empty name", "path_escape", { weight_map: { a: "" } }],
    ["missing shard", "missing_shard", { weight_map: { a: "model-00001-of-00002.safetensors" } }],
    ["no weight_map", "bad_index", { metadata: {} }],
    ["weight_map value not a string", "bad_index", { weight_map: { a: 1 } }],
    ["metadata not an object", "bad_index", { metadata: 3, weight_map: {} }],
    ["bad json", "bad_json", "{weight_map"],
    ["proto key", "proto_key", '{"weight_map":{"__proto__":"x.safetensors"}}'],
  ];
  for (const [name, code, index] of INDEX_CASES) {
    test(`index: ${name} -> ${code}`, async () => {
      const dir = await fixtureDir(`idx-${name.replace(/\W+/g, "_")}`, index);
      await assert.rejects(readSafetensorsIndex(dir), expectCode(code, join(dir, INDEX_FILE)));
      await assert.rejects(loadSafetensorsDir(dir), expectCode(code, join(dir, INDEX_FILE)));
    });
  }

  test("index: a symlinked shard pointing outside the folder -> path_escape", async () => {
    const outside = join(tmp, "outside.safetensors");
    await writeSafetensors(outside, one);
    const dir = await fixtureDir("idx-symlink", { weight_map: { a: "model-00001-of-00001.safetensors" } });
    await symlink(outside, join(dir, "model-00001-of-00001.safetensors"));
    await assert.rejects(readSafetensorsIndex(dir), expectCode("path_escape", join(dir, INDEX_FILE)));
  });

  test("index: a symlink inside the folder is fine", async () => {
    const dir = await fixtureDir(
      "idx-symlink-ok",
      { weight_map: { a: "link.safetensors" } },
      { "real.safetensors": one },
    );
    await symlink(join(dir, "real.safetensors"), join(dir, "link.safetensors"));
    assert.equal((await loadSafetensorsDir(dir)).size, 1);
  });

  test("index: tensor missing from its shard -> missing_tensor", async () => {
    const dir = await fixtureDir(
      "idx-missing-tensor",
      { weight_map: { a: "s1.safetensors", b: "s1.safetensors" } },
      { "s1.safetensors": one },
    );
    await assert.rejects(loadSafetensorsDir(dir), expectCode("missing_tensor", join(dir, INDEX_FILE)));
  });

  test("index: same tensor in two shards -> duplicate_tensor", async () => {
    const dir = await fixtureDir(
      "idx-dup",
      { weight_map: { a: "s1.safetensors", b: "s2.safetensors" } },
      {
        "s1.safetensors": one,
        "s2.safetensors": { ...one, b: one.a },
      },
    );
    await assert.rejects(loadSafetensorsDir(dir), expectCode("duplicate_tensor", join(dir, "s2.safetensors")));
  });

  test("index: a malformed shard is reported with the shard's own file name", async () => {
    const dir = await fixtureDir("idx-bad-shard", { weight_map: { a: "s1.safetensors" } });
    await writeFile(join(dir, "s1.safetensors"), build({ a: f32([1], 0, 4) }, 12));
    await assert.rejects(loadSafetensorsDir(dir), expectCode("trailing_bytes", join(dir, "s1.safetensors")));
  });

  test("a folder with neither file -> missing_file", async () => {
    const dir = join(tmp, "empty-model");
    await mkdir(dir);
    await assert.rejects(loadSafetensorsDir(dir), expectCode("missing_file", dir));
  });
});
