// PEFT adapter folders: exact key names and config fields as PEFT writes them, save -> load round
// trip with identical logits, a hand-made PEFT-written fixture, and typed errors for bad folders.
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import { parseSafetensors, type RawTensor, readSafetensors, writeSafetensors } from "../../src/formats/safetensors.ts";
import { rawToTensor } from "../../src/formats/tensors.ts";
import * as F from "../../src/ops/index.ts";
import { AdapterError, applyLora, LoRALinear, loadAdapter, saveAdapter } from "../../src/peft/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { randn, type Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, FIXTURES } from "../helpers.ts";
import { D, input, TinyClassifier } from "./tiny-model.ts";

setBackend(referenceBackend);

const TMP = mkdtempSync(join(tmpdir(), "tunekit-peft-"));
after(() => rmSync(TMP, { recursive: true, force: true }));
let n = 0;
const tmp = (name: string) => join(TMP, `${n++}-${name}`);
const PEFT_FIXTURE = join(FIXTURES, "peft", "peft-llama-style");

function randomizeLora(model: TinyClassifier, seed = 3): void {
  const g = new Generator(seed);
  for (const [name, p] of model.namedParameters())
    if (/lora_[AB]|^classifier\./.test(name)) p.data.set(F.mul(randn(p.shape, { generator: g }), 0.2).data);
}

function exactEqual(a: Tensor, b: Tensor, what: string): void {
  const x = a.toFloat64Array();
  const y = b.toFloat64Array();
  for (let i = 0; i < y.length; i++) if (x[i] !== y[i]) assert.fail(`${what}: element ${i}: ${x[i]} vs ${y[i]}`);
}

function fixtureTensors(dir = PEFT_FIXTURE): Map<string, RawTensor> {
  const f = join(dir, "adapter_model.safetensors");
  return parseSafetensors(new Uint8Array(readFileSync(f)), f).tensors;
}

/** A copy of the PEFT fixture with its tensors and/or config changed. */
async function badCopy(edit: {
  tensors?: (t: Map<string, RawTensor>) => void;
  config?: (c: Record<string, unknown>) => void;
}): Promise<string> {
  const dir = tmp("bad");
  cpSync(PEFT_FIXTURE, dir, { recursive: true });
  if (edit.tensors) {
    const t = new Map([...fixtureTensors()].map(([k, v]) => [k, { ...v, data: v.data.slice() }]));
    edit.tensors(t);
    await writeSafetensors(join(dir, "adapter_model.safetensors"), t, { format: "pt" });
  }
  if (edit.config) {
    const c = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    edit.config(c);
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(c));
  }
  return dir;
}

async function rejects(p: Promise<unknown>, code: string, file: string, text: RegExp): Promise<AdapterError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AdapterError, `expected AdapterError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.equal(e.code, code, e.message);
    assert.ok(e.file.endsWith(file), `error names ${e.file}, expected ${file}`);
    assert.match(e.message, text);
    return e;
  }
  assert.fail("expected a rejection");
}

describe("saveAdapter: PEFT's format", () => {
  test("key names as get_peft_model_state_dict writes them, adapter name stripped; modules_to_save in full", async () => {
    const m = new TinyClassifier();
    applyLora(m, { targets: ["q_proj", "v_proj"], rank: 4, alpha: 8, modulesToSave: ["classifier"] });
    const dir = tmp("keys");
    await saveAdapter(m, dir, { baseModelNameOrPath: "tiny-base", taskType: "SEQ_CLS" });
    const st = await readSafetensors(join(dir, "adapter_model.safetensors"));
    assert.deepEqual([...st.tensors.keys()].sort(), [
      "base_model.model.classifier.bias",
      "base_model.model.classifier.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight",
      "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight",
      "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
      "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
      "base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight",
    ]);
    assert.deepEqual(st.metadata, { format: "pt" });
    assert.deepEqual(st.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")?.shape, [4, D]);
    assert.deepEqual(st.tensors.get("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight")?.shape, [D, 4]);
    const text = readFileSync(join(dir, "adapter_config.json"), "utf8");
    const cfg = JSON.parse(text);
    assert.deepEqual(cfg, {
      alpha_pattern: {},
      auto_mapping: null,
      base_model_name_or_path: "tiny-base",
      bias: "none",
      fan_in_fan_out: false,
      inference_mode: true,
      init_lora_weights: true,
      layer_replication: null,
      layers_pattern: null,
      layers_to_transform: null,
      loftq_config: {},
      lora_alpha: 8,
      lora_dropout: 0,
      megatron_config: null,
      megatron_core: "megatron.core",
      modules_to_save: ["classifier"],
      peft_type: "LORA",
      r: 4,
      rank_pattern: {},
      revision: null,
      target_modules: ["q_proj", "v_proj"],
      task_type: "SEQ_CLS",
      use_dora: false,
      use_rslora: false,
    });
    assert.deepEqual(Object.keys(cfg), Object.keys(cfg).sort(), "keys sorted like json.dumps(sort_keys=True)");
    assert.match(text, /^\{\n {2}"alpha_pattern": \{\},\n/);
  });

  test("all-linear is recorded as the resolved module names; a regex string as given", async () => {
    const a = new TinyClassifier();
    applyLora(a, { targets: "all-linear", rank: 2 });
    const d1 = tmp("all-linear");
    await saveAdapter(a, d1);
    assert.deepEqual(JSON.parse(readFileSync(join(d1, "adapter_config.json"), "utf8")).target_modules, [
      "2",
      "k_proj",
      "mlp.0",
      "o_proj",
      "q_proj",
      "v_proj",
    ]);
    const b = new TinyClassifier();
    applyLora(b, { targets: ".*layers\\.1\\.self_attn\\.q_proj", rank: 2 });
    const d2 = tmp("regex");
    await saveAdapter(b, d2);
    assert.equal(
      JSON.parse(readFileSync(join(d2, "adapter_config.json"), "utf8")).target_modules,
      ".*layers\\.1\\.self_attn\\.q_proj",
    );
  });

  test("save -> load into a fresh copy of the base gives the same logits exactly", async () => {
    const m = new TinyClassifier(5);
    applyLora(m, {
      targets: "all-linear",
      rank: 4,
      alpha: 16,
      modulesToSave: ["classifier"],
      rankPattern: { o_proj: 2 },
      alphaPattern: { v_proj: 4 },
      useRslora: true,
    });
    randomizeLora(m);
    m.eval();
    const x = input();
    const want = m.forward(x);
    const dir = tmp("roundtrip");
    await saveAdapter(m, dir, { baseModelNameOrPath: "tiny" });
    const fresh = new TinyClassifier(5).eval();
    const lora = await loadAdapter(fresh, dir);
    exactEqual(fresh.forward(x), want, "reloaded logits");
    assert.equal(fresh.numParameters({ trainable: true }), 0, "loaded for inference (PEFT's default)");
    assert.equal((lora.layers.get("model.layers.0.self_attn.o_proj") as LoRALinear).rank, 2);
    assert.equal((lora.layers.get("model.layers.0.self_attn.v_proj") as LoRALinear).scaling, 4 / 2);
    const merged = lora.merge();
    assertClose(merged.forward(x), want, 1e-5, "merged reloaded logits");

    const trainable = await loadAdapter(new TinyClassifier(5), dir, { isTrainable: true });
    assert.ok(trainable.model.numParameters({ trainable: true }) > 0);
    await assert.rejects(
      saveAdapter(merged, tmp("merged")),
      (e: unknown) => e instanceof AdapterError && e.code === "not_lora",
    );
  });
});

describe("loadAdapter: a PEFT-written adapter", () => {
  test("hand-made PEFT 0.18 folder (rank/alpha patterns, SEQ_CLS head, extra fields) loads and applies", async () => {
    const m = new TinyClassifier(9).eval();
    const lora = await loadAdapter(m, PEFT_FIXTURE);
    const file = fixtureTensors();
    const t = (k: string) => rawToTensor(file.get(`base_model.model.${k}`) as RawTensor);
    const L = (p: string) => lora.layers.get(p) as LoRALinear;
    assert.deepEqual(
      [...lora.layers.keys()].sort(),
      ["0", "1"].flatMap((i) => ["q_proj", "v_proj"].map((p) => `model.layers.${i}.self_attn.${p}`)).sort(),
    );
    assert.deepEqual([L("model.layers.0.self_attn.q_proj").rank, L("model.layers.0.self_attn.v_proj").rank], [2, 4]);
    assert.equal(L("model.layers.0.self_attn.q_proj").scaling, 4 / 2);
    assert.equal(L("model.layers.1.self_attn.q_proj").scaling, 8 / 2, "alpha_pattern");
    assert.equal(L("model.layers.1.self_attn.v_proj").scaling, 4 / 4);
    assert.equal(L("model.layers.0.self_attn.q_proj").dropout, 0.05);
    exactEqual(m.classifier.weight, t("classifier.weight"), "classifier.weight");
    exactEqual(
      L("model.layers.1.self_attn.v_proj").lora_B.weight,
      t("model.layers.1.self_attn.v_proj.lora_B.weight"),
      "lora_B",
    );

    // The layer computes W x + b + s * B A x with the file's factors.
    const q = L("model.layers.1.self_attn.q_proj");
    const x = randn([3, D], { generator: new Generator(1) });
    const base = F.linear(x, q.weight, q.bias);
    const delta = F.mul(
      F.linear(
        F.linear(x, t("model.layers.1.self_attn.q_proj.lora_A.weight")),
        t("model.layers.1.self_attn.q_proj.lora_B.weight"),
      ),
      4,
    );
    assertClose(q.forward(x), F.add(base, delta), 1e-6, "q_proj with the PEFT adapter");

    // Saving it again reproduces PEFT's tensors bit for bit.
    const dir = tmp("resave");
    await saveAdapter(lora, dir, { taskType: "SEQ_CLS" });
    const again = fixtureTensors(dir);
    assert.deepEqual([...again.keys()].sort(), [...file.keys()].sort());
    for (const [k, v] of file) assert.ok(Buffer.from(v.data).equals(Buffer.from((again.get(k) as RawTensor).data)), k);
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
    assert.deepEqual(
      [cfg.r, cfg.lora_alpha, cfg.rank_pattern, cfg.alpha_pattern, cfg.modules_to_save],
      [2, 4, { v_proj: 4 }, { "model.layers.1.self_attn.q_proj": 8 }, ["classifier", "score"]],
    );
    assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj"]);
  });
});

describe("loadAdapter: bad folders give typed errors naming the file and key", () => {
  test("missing files", async () => {
    await rejects(
      loadAdapter(new TinyClassifier(), tmp("nothing-here")),
      "missing_file",
      "adapter_config.json",
      /file not found/,
    );
    const dir = tmp("config-only");
    cpSync(PEFT_FIXTURE, dir, { recursive: true });
    rmSync(join(dir, "adapter_model.safetensors"));
    await rejects(
      loadAdapter(new TinyClassifier(), dir),
      "missing_file",
      "adapter_model.safetensors",
      /file not found/,
    );
    writeFileSync(join(dir, "adapter_model.bin"), "x");
    await rejects(loadAdapter(new TinyClassifier(), dir), "unsupported", "adapter_model.bin", /safe_serialization/);
  });

  test("wrong shape, unknown module, missing tensor, DoRA weights", async () => {
    const key = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    const shape = await badCopy({
      tensors: (t) => t.set(key, { dtype: "F32", shape: [2, D + 1], data: new Uint8Array(4 * 2 * (D + 1)) }),
    });
    const e = await rejects(
      loadAdapter(new TinyClassifier(), shape),
      "bad_shape",
      "adapter_model.safetensors",
      /q_proj\.lora_A\.weight' has shape \[2,9\], the model needs \[2,8\]/,
    );
    assert.equal(e.key, key);

    const unknownKey = "base_model.model.model.layers.0.self_attn.x_proj.lora_A.weight";
    const unknown = await badCopy({ tensors: (t) => t.set(unknownKey, t.get(key) as RawTensor) });
    await rejects(
      loadAdapter(new TinyClassifier(), unknown),
      "unknown_module",
      "adapter_model.safetensors",
      /the model has no module 'model\.layers\.0\.self_attn\.x_proj'/,
    );

    const notTarget = await badCopy({
      tensors: (t) => t.set("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", t.get(key) as RawTensor),
    });
    await rejects(
      loadAdapter(new TinyClassifier(), notTarget),
      "unknown_module",
      "adapter_model.safetensors",
      /k_proj' \(Linear\) is not selected by target_modules/,
    );

    const missing = await badCopy({ tensors: (t) => t.delete(key) });
    const em = await rejects(
      loadAdapter(new TinyClassifier(), missing),
      "missing_key",
      "adapter_model.safetensors",
      /missing tensor\(s\): base_model\.model\.model\.layers\.0\.self_attn\.q_proj\.lora_A\.weight/,
    );
    assert.equal(em.key, key);

    const dora = await badCopy({
      tensors: (t) =>
        t.set("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", {
          dtype: "F32",
          shape: [D],
          data: new Uint8Array(4 * D),
        }),
    });
    await rejects(
      loadAdapter(new TinyClassifier(), dora),
      "unsupported",
      "adapter_model.safetensors",
      /lora_magnitude_vector/,
    );

    const noPrefix = await badCopy({
      tensors: (t) => t.set("model.layers.0.self_attn.q_proj.lora_A.weight", t.get(key) as RawTensor),
    });
    await rejects(
      loadAdapter(new TinyClassifier(), noPrefix),
      "bad_key",
      "adapter_model.safetensors",
      /does not start with 'base_model\.model\.'/,
    );
  });

  test("config: use_dora, other PEFT types, bad values, non-linear targets; the model is untouched on failure", async () => {
    const m = new TinyClassifier();
    const before = m.namedParameters().map(([k]) => k);
    const dora = await badCopy({ config: (c) => (c.use_dora = true) });
    const e = await rejects(
      loadAdapter(m, dora),
      "unsupported",
      "adapter_config.json",
      /'use_dora' = true is not supported/,
    );
    assert.equal(e.key, "use_dora");
    assert.deepEqual(
      m.namedParameters().map(([k]) => k),
      before,
      "model unchanged",
    );
    assert.ok(!(m.model.layers[0].self_attn.q_proj instanceof LoRALinear));

    await rejects(
      loadAdapter(m, await badCopy({ config: (c) => (c.peft_type = "IA3") })),
      "unsupported",
      "adapter_config.json",
      /only "LORA"/,
    );
    await rejects(
      loadAdapter(m, await badCopy({ config: (c) => (c.init_lora_weights = "pissa") })),
      "unsupported",
      "adapter_config.json",
      /init_lora_weights/,
    );
    await rejects(
      loadAdapter(m, await badCopy({ config: (c) => (c.bias = "all") })),
      "unsupported",
      "adapter_config.json",
      /'bias'/,
    );
    await rejects(
      loadAdapter(m, await badCopy({ config: (c) => (c.r = -1) })),
      "bad_config",
      "adapter_config.json",
      /'r' must be a positive integer/,
    );
    await rejects(
      loadAdapter(m, await badCopy({ config: (c) => (c.target_modules = ["self_attn"]) })),
      "unsupported",
      "adapter_config.json",
      /'model\.layers\.0\.self_attn' is a SelfAttention/,
    );
    await rejects(
      loadAdapter(m, await badCopy({ config: (c) => (c.target_modules = ["nope"]) })),
      "unknown_module",
      "adapter_config.json",
      /match no module/,
    );
    const broken = await badCopy({});
    writeFileSync(join(broken, "adapter_config.json"), "{ not json");
    await rejects(loadAdapter(m, broken), "bad_json", "adapter_config.json", /not valid JSON/);
    assert.deepEqual(
      m.namedParameters().map(([k]) => k),
      before,
      "model unchanged after every failure",
    );
  });
});
