/**
 * Mistral has no transformers fixture; checked against HF's `modeling_mistral.py` rules: a Llama
 * without biases whose queries see keys j with i - sliding_window < j <= i.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { noGrad } from "../../src/autograd/tape.ts";
import { KVCache } from "../../src/models/common.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import { getArchitecture, type PretrainedModel } from "../../src/models/index.ts";
import { readLlamaConfig } from "../../src/models/llama.ts";
import { MISTRAL } from "../../src/models/mistral.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { tensor } from "../../src/tensor/tensor.ts";
import { maxRelDiff } from "../helpers.ts";

type LM = PretrainedModel & DecoderLM;
const BASE = {
  hidden_size: 32,
  intermediate_size: 48,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 50,
  max_position_embeddings: 64,
  rope_theta: 1000,
  initializer_range: 0.3,
};
const build = (model_type: string, extra: Record<string, unknown> = {}) =>
  getArchitecture(model_type).create({ model_type, ...BASE, ...extra }, "causal-lm") as LM;
const SEQ = [3, 17, 42, 8, 9, 29, 1, 11, 5, 40];
const ids = (xs: number[]) => tensor(Int32Array.from(xs), { shape: [1, xs.length] });
const V = 50;
/** Logits row of position t. */
const at = (l: Float64Array, t: number) => l.slice(t * V, (t + 1) * V);

describe("mistral", () => {
  test("state dict as HF names it (no biases) and MistralConfig defaults", () => {
    manualSeed(1);
    const names = [...build("mistral").stateDict().keys()];
    assert.ok(names.includes("model.layers.0.self_attn.k_proj.weight") && !names.some((n) => n.endsWith(".bias")));
    const c = readLlamaConfig({ raw: {}, file: "config.json" }, MISTRAL);
    assert.equal(c.num_key_value_heads, 8);
    assert.equal(c.sliding_window, 4096);
    assert.equal(c.intermediate_size, 14336);
    assert.equal(readLlamaConfig({ raw: { sliding_window: null }, file: "c" }, MISTRAL).sliding_window, null);
  });

  test("with a window at least the sequence length it is llama", () => {
    manualSeed(2);
    const m = build("mistral", { sliding_window: SEQ.length });
    const l = build("llama");
    l.loadStateDict(m.stateDict());
    assert.ok(
      maxRelDiff(
        m.forward({ inputIds: ids(SEQ) }).logits.toFloat64Array(),
        l.forward({ inputIds: ids(SEQ) }).logits.toFloat64Array(),
      ) < 1e-6,
    );
  });

  test("sliding window W=3: position t ignores token t-3 and sees token t-2 (one layer)", () => {
    manualSeed(3);
    const m = build("mistral", { sliding_window: 3 });
    const t = 8;
    const base = m.forward({ inputIds: ids(SEQ) }).logits.toFloat64Array();
    const far = [...SEQ];
    far[t - 3] = (far[t - 3] + 7) % V;
    const near = [...SEQ];
    near[t - 2] = (near[t - 2] + 7) % V;
    const lf = m.forward({ inputIds: ids(far) }).logits.toFloat64Array();
    const ln = m.forward({ inputIds: ids(near) }).logits.toFloat64Array();
    assert.ok(maxRelDiff(at(lf, t), at(base, t)) < 1e-6, "token t-3 is outside the window");
    assert.ok(maxRelDiff(at(ln, t), at(base, t)) > 1e-4, "token t-2 is inside the window");
    // Full attention (no window) does see t-3.
    const full = build("mistral", { sliding_window: null });
    full.loadStateDict(m.stateDict());
    assert.ok(
      maxRelDiff(
        at(full.forward({ inputIds: ids(far) }).logits.toFloat64Array(), t),
        at(full.forward({ inputIds: ids(SEQ) }).logits.toFloat64Array(), t),
      ) > 1e-4,
    );
  });

  test("KV-cache decoding past the window matches the full forward", () => {
    manualSeed(4);
    const m = build("mistral", { sliding_window: 4, num_hidden_layers: 2 });
    const full = m.forward({ inputIds: ids(SEQ) }).logits.toFloat64Array();
    noGrad(() => {
      const cache = new KVCache(m.numLayers);
      const first = m.forward({ inputIds: ids(SEQ.slice(0, 3)), pastKeyValues: cache }).logits.toFloat64Array();
      assert.ok(maxRelDiff(first, full.slice(0, 3 * V)) < 1e-5);
      for (let t = 3; t < SEQ.length; t++) {
        const step = m.forward({ inputIds: ids([SEQ[t]]), pastKeyValues: cache }).logits.toFloat64Array();
        assert.ok(maxRelDiff(step, at(full, t)) < 1e-5, `step ${t}`);
      }
    });
  });
});
