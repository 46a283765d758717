/**
 * Qwen2 has no transformers fixture, so it is checked against what HF's `modeling_qwen2.py` says:
 * a Llama whose q/k/v projections have biases (o_proj and the MLP have none), biases added before
 * the rotary embedding.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ConfigError } from "../../src/formats/hf-config.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import { getArchitecture, type PretrainedModel } from "../../src/models/index.ts";
import { readLlamaConfig } from "../../src/models/llama.ts";
import { loadPretrained, saveModel } from "../../src/models/pretrained.ts";
import { QWEN2 } from "../../src/models/qwen2.ts";
import { mul } from "../../src/ops/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { randn, type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { maxRelDiff } from "../helpers.ts";

type LM = PretrainedModel & DecoderLM;
const BASE = {
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
  max_position_embeddings: 64,
  rope_theta: 1000,
  rms_norm_eps: 1e-6,
  initializer_range: 0.2,
  pad_token_id: 0,
};
const build = (model_type: string, extra: Record<string, unknown> = {}) =>
  getArchitecture(model_type).create({ model_type, ...BASE, ...extra }, "causal-lm") as LM;
const IDS = tensor(Int32Array.from([3, 17, 42, 8, 8, 29, 1, 11, 5, 40, 2, 33]), { shape: [2, 6] });
const logits = (m: LM) => m.forward({ inputIds: IDS }).logits.toFloat64Array();

/** Copies every shared parameter of `from` into `to`; returns `to`. */
function copyWeights<T extends LM>(from: LM, to: T): T {
  to.loadStateDict(new Map([...from.stateDict()].filter(([k]) => to.stateDict().has(k))), { strict: false });
  return to;
}
function param(m: LM, name: string): Tensor {
  return new Map(m.namedParameters()).get(name)!;
}
function setParam(m: LM, name: string, values: ArrayLike<number>): void {
  const p = param(m, name);
  p.data.set(values, p.offset);
}

describe("qwen2", () => {
  test("parameters as HF names them: q/k/v biases, none on o_proj or the MLP", () => {
    manualSeed(1);
    const names = [...build("qwen2").stateDict().keys()];
    for (const p of ["q_proj", "k_proj", "v_proj"]) assert.ok(names.includes(`model.layers.0.self_attn.${p}.bias`), p);
    assert.ok(!names.some((n) => n.includes("o_proj.bias") || (n.includes("mlp") && n.endsWith(".bias"))));
    assert.ok(names.includes("lm_head.weight"));
  });

  test("with zero q/k/v biases it is the same function as llama", () => {
    manualSeed(2);
    const llama = build("llama");
    const qwen = copyWeights(llama, build("qwen2"));
    for (let l = 0; l < 2; l++)
      for (const p of ["q_proj", "k_proj", "v_proj"]) param(qwen, `model.layers.${l}.self_attn.${p}.bias`).data.fill(0);
    assert.ok(maxRelDiff(logits(qwen), logits(llama)) < 1e-6);
  });

  test("a v_proj bias b equals llama with o_proj bias W_o b (attention rows sum to 1; GQA repeats b per query head)", () => {
    manualSeed(3);
    const qwen = build("qwen2");
    const llama = copyWeights(qwen, build("llama", { attention_bias: true }));
    const D = 8;
    const rep = 2;
    for (let l = 0; l < 2; l++) {
      const at = `model.layers.${l}.self_attn`;
      for (const p of ["q_proj", "k_proj"]) {
        param(qwen, `${at}.${p}.bias`).data.fill(0);
        param(llama, `${at}.${p}.bias`).data.fill(0);
      }
      const b = randn([16]).toFloat64Array();
      setParam(qwen, `${at}.v_proj.bias`, b);
      param(llama, `${at}.v_proj.bias`).data.fill(0);
      const bx = Float64Array.from({ length: 32 }, (_, j) => b[Math.floor(Math.floor(j / D) / rep) * D + (j % D)]);
      const wo = param(qwen, `${at}.o_proj.weight`).toFloat64Array();
      setParam(
        llama,
        `${at}.o_proj.bias`,
        Array.from({ length: 32 }, (_, i) => bx.reduce((s, v, j) => s + wo[i * 32 + j] * v, 0)),
      );
    }
    assert.ok(maxRelDiff(logits(qwen), logits(llama)) < 1e-5);
  });

  test("q/k biases enter before the rotary embedding (after it, a k bias would cancel in the softmax)", () => {
    manualSeed(4);
    const qwen = build("qwen2");
    for (let l = 0; l < 2; l++)
      for (const p of ["q_proj", "k_proj", "v_proj"]) param(qwen, `model.layers.${l}.self_attn.${p}.bias`).data.fill(0);
    const base = logits(qwen);
    setParam(qwen, "model.layers.0.self_attn.k_proj.bias", mul(randn([16]), 2).toFloat64Array());
    assert.ok(maxRelDiff(logits(qwen), base) > 1e-3, "a k bias must change the output");
  });

  test("save -> load round trip gives the same logits and an HF config", async () => {
    manualSeed(5);
    const qwen = build("qwen2");
    const dir = await mkdtemp(join(tmpdir(), "tk-qwen2-"));
    await saveModel(qwen, dir);
    const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["Qwen2ForCausalLM"]);
    assert.equal(cfg.model_type, "qwen2");
    assert.equal(cfg.torch_dtype, "float32");
    const back = (await loadPretrained(dir, { onWarning: assert.fail })) as unknown as LM;
    assert.deepEqual(logits(back), logits(qwen));
  });

  test("Qwen2Config defaults; sliding window is refused", () => {
    const c = readLlamaConfig({ raw: { model_type: "qwen2" }, file: "config.json" }, QWEN2);
    assert.equal(c.vocab_size, 151936);
    assert.equal(c.intermediate_size, 22016);
    assert.equal(c.num_key_value_heads, 32);
    assert.equal(c.rms_norm_eps, 1e-6);
    assert.equal(c.qkv_bias, true);
    assert.throws(() => readLlamaConfig({ raw: { use_sliding_window: true }, file: "c.json" }, QWEN2), ConfigError);
  });
});
