import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  ConfigError,
  type ConfigSource,
  getBool,
  getEnum,
  getIdList,
  getLabels,
  getNumber,
  getString,
  loadConfig,
  loadGenerationConfig,
  parseJsonText,
  readJsonFile,
} from "../../src/formats/hf-config.ts";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "tunekit-cfg-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function sub(name: string, files: Record<string, string>): Promise<string> {
  const d = join(dir, name);
  await import("node:fs/promises").then((fs) => fs.mkdir(d, { recursive: true }));
  for (const [f, text] of Object.entries(files)) await writeFile(join(d, f), text);
  return d;
}

const isConfigError = (file: string, key?: string) => (e: unknown) =>
  e instanceof ConfigError && e.file.endsWith(file) && e.key === key;

describe("readJsonFile", () => {
  test("parse errors carry line and column", async () => {
    const d = await sub("bad-json", { "config.json": '{\n  "a": 1,\n  "b": ]\n}' });
    await assert.rejects(readJsonFile(join(d, "config.json")), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.match(e.message, /config\.json: invalid JSON at line 3, column \d+/);
      return true;
    });
  });

  test("positions for trailing commas, truncation, bad escapes", () => {
    const at = (text: string) => {
      try {
        parseJsonText(text, "t.json");
      } catch (e) {
        return /at line (\d+), column (\d+)/
          .exec((e as Error).message)
          ?.slice(1)
          .map(Number);
      }
      return undefined;
    };
    assert.deepEqual(at('{"a": 1,}'), [1, 9]);
    assert.deepEqual(at('{\n "a": [1, 2'), [2, 12]);
    assert.deepEqual(at('{"a": "x\\q"}'), [1, 10]);
    assert.deepEqual(at('{"a": 01}'), [1, 8]);
    assert.equal(at('{"a": [1, {"b": null}], "c": -1.5e3}'), undefined);
  });

  test("size cap, missing file, __proto__ rejected (nested too)", async () => {
    const d = await sub("caps", {
      "big.json": JSON.stringify({ x: "y".repeat(2000) }),
      "proto.json": '{"a": {"__proto__": {"polluted": true}}}',
      "ok.json": '{"text": "mentions __proto__ in a value"}',
    });
    await assert.rejects(readJsonFile(join(d, "big.json"), { maxBytes: 1000 }), /over the 1000-byte limit/);
    await assert.rejects(readJsonFile(join(d, "missing.json")), isConfigError("missing.json"));
    await assert.rejects(readJsonFile(join(d, "proto.json")), isConfigError("proto.json", "__proto__"));
    assert.deepEqual(await readJsonFile(join(d, "ok.json")), { text: "mentions __proto__ in a value" });
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

describe("loadConfig and typed getters", () => {
  test("model_type is required", async () => {
    const d = await sub("no-type", { "config.json": '{"hidden_size": 8}' });
    await assert.rejects(loadConfig(d), isConfigError("config.json", "model_type"));
    await assert.rejects(loadConfig(await sub("array", { "config.json": "[1]" })), /expected a JSON object/);
  });

  test("getNumber / getString / getBool / getEnum name file, key and expectation", async () => {
    const d = await sub("llama", {
      "config.json": JSON.stringify({
        model_type: "llama",
        hidden_size: 576,
        rms_norm_eps: 1e-5,
        num_hidden_layers: 2.5,
        vocab_size: -1,
        hidden_act: "silu",
        tie_word_embeddings: true,
        sliding_window: null,
        torch_dtype: 7,
        attention_bias: "no",
      }),
    });
    const cfg = await loadConfig(d);
    assert.equal(cfg.modelType, "llama");
    assert.equal(getNumber(cfg, "hidden_size", undefined, { min: 1, integer: true }), 576);
    assert.equal(getNumber(cfg, "rms_norm_eps", 1e-6, { min: 0 }), 1e-5);
    assert.equal(getNumber(cfg, "sliding_window", 4096), 4096, "null means default");
    assert.equal(getNumber(cfg, "rope_theta", 10000), 10000);
    assert.throws(
      () => getNumber(cfg, "num_hidden_layers", undefined, { integer: true }),
      (e: unknown) => {
        assert.ok(isConfigError("config.json", "num_hidden_layers")(e));
        assert.match((e as Error).message, /expected an integer, got 2.5/);
        return true;
      },
    );
    assert.throws(
      () => getNumber(cfg, "vocab_size", undefined, { min: 1, max: 1e7, integer: true }),
      /vocab_size: expected an integer in \[1, 10000000\], got -1/,
    );
    assert.throws(() => getNumber(cfg, "intermediate_size"), /intermediate_size: required number is missing/);
    assert.throws(() => getNumber(cfg, "hidden_act"), /expected a number, got string "silu"/);
    assert.equal(getEnum(cfg, "hidden_act", ["gelu", "silu"] as const), "silu");
    assert.throws(
      () => getEnum(cfg, "hidden_act", ["gelu", "relu"] as const),
      isConfigError("config.json", "hidden_act"),
    );
    assert.equal(getEnum(cfg, "position_embedding_type", ["absolute", "rotary"] as const, "absolute"), "absolute");
    assert.equal(getBool(cfg, "tie_word_embeddings"), true);
    assert.equal(getBool(cfg, "use_cache", true), true);
    assert.throws(() => getBool(cfg, "attention_bias", false), /attention_bias: expected true or false/);
    assert.equal(getString(cfg, "model_type"), "llama");
    assert.throws(() => getString(cfg, "torch_dtype", "float32"), isConfigError("config.json", "torch_dtype"));
  });

  test("getIdList accepts number or number[]", () => {
    const src: ConfigSource = { file: "x.json", raw: { a: 2, b: [1, 2], c: [1, -1], d: null } };
    assert.deepEqual(getIdList(src, "a"), [2]);
    assert.deepEqual(getIdList(src, "b"), [1, 2]);
    assert.deepEqual(getIdList(src, "d"), []);
    assert.throws(() => getIdList(src, "c"), isConfigError("x.json", "c[1]"));
  });
});

describe("getLabels", () => {
  const src = (raw: Record<string, unknown>): ConfigSource => ({ file: "config.json", raw });

  test("string keys become numbers; label2id checked", () => {
    const l = getLabels(src({ id2label: { "1": "POS", "0": "NEG" }, label2id: { NEG: 0, POS: 1 } }));
    assert.deepEqual(l.id2label, ["NEG", "POS"]);
    assert.equal(l.label2id.POS, 1);
    assert.equal(l.numLabels, 2);
  });

  test("defaults: 2 labels, or num_labels generated LABEL_i", () => {
    assert.deepEqual(getLabels(src({})).id2label, ["LABEL_0", "LABEL_1"]);
    assert.deepEqual(getLabels(src({ num_labels: 3 })).id2label, ["LABEL_0", "LABEL_1", "LABEL_2"]);
  });

  test("inconsistencies are errors naming the key", () => {
    assert.throws(
      () => getLabels(src({ id2label: { "0": "A", "2": "B" } })),
      isConfigError("config.json", "id2label.2"),
    );
    assert.throws(() => getLabels(src({ id2label: { "01": "A" } })), isConfigError("config.json", "id2label.01"));
    assert.throws(() => getLabels(src({ id2label: { "0": 5 } })), isConfigError("config.json", "id2label.0"));
    assert.throws(
      () => getLabels(src({ id2label: { "0": "A", "1": "B" }, label2id: { A: 1, B: 0 } })),
      isConfigError("config.json", "label2id.A"),
    );
    assert.throws(
      () => getLabels(src({ id2label: { "0": "A", "1": "B" }, label2id: { A: 0 } })),
      isConfigError("config.json", "label2id"),
    );
    assert.throws(
      () => getLabels(src({ id2label: { "0": "A" }, num_labels: 3 })),
      isConfigError("config.json", "num_labels"),
    );
    assert.throws(() => getLabels(src({ num_labels: 0 })), isConfigError("config.json", "num_labels"));
  });
});

describe("loadGenerationConfig", () => {
  test("HF defaults and eos list", async () => {
    const d = await sub("gen", {
      "generation_config.json": '{"eos_token_id": [2, 7], "bos_token_id": 1, "do_sample": true, "temperature": 0.7}',
    });
    const g = await loadGenerationConfig(d);
    assert.deepEqual(
      { ...g, raw: undefined, file: undefined },
      {
        maxLength: 20,
        maxNewTokens: undefined,
        doSample: true,
        temperature: 0.7,
        topK: 50,
        topP: 1,
        repetitionPenalty: 1,
        eosTokenId: [2, 7],
        bosTokenId: 1,
        padTokenId: undefined,
        raw: undefined,
        file: undefined,
      },
    );
  });

  test("without the file: ids from config.json, else nothing", async () => {
    const d = await sub("gen-fallback", {
      "config.json": '{"model_type": "gpt2", "eos_token_id": 50256, "bos_token_id": 50256}',
    });
    const g = await loadGenerationConfig(d);
    assert.deepEqual(g.eosTokenId, [50256]);
    assert.equal(g.bosTokenId, 50256);
    assert.equal(g.maxLength, 20);
    const empty = await loadGenerationConfig(await sub("gen-empty", {}));
    assert.deepEqual(empty.eosTokenId, []);
  });

  test("invalid values name generation_config.json and the key", async () => {
    const bad = async (name: string, body: string, key: string) =>
      assert.rejects(
        loadGenerationConfig(await sub(name, { "generation_config.json": body })),
        isConfigError("generation_config.json", key),
      );
    await bad("g1", '{"top_p": 1.5}', "top_p");
    await bad("g2", '{"top_k": 2.5}', "top_k");
    await bad("g3", '{"eos_token_id": "2"}', "eos_token_id");
    await bad("g4", '{"repetition_penalty": 0}', "repetition_penalty");
    await bad("g5", '{"do_sample": "yes"}', "do_sample");
    await bad("g6", '{"max_new_tokens": -3}', "max_new_tokens");
    await assert.rejects(loadGenerationConfig(await sub("g7", { "generation_config.json": "{" })), /invalid JSON/);
  });
});
