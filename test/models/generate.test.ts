/** generate(): KV cache vs full forward, the logits processors as HF defines them, seeding, stop tokens, streaming. */
import assert from "node:assert/strict";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { noGrad } from "../../src/autograd/tape.ts";
import { KVCache } from "../../src/models/common.ts";
import { applyRepetitionPenalty, applyTopK, applyTopP, generate } from "../../src/models/generate.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import { type LoadedModel, loadPretrained } from "../../src/models/pretrained.ts";
import { tensor } from "../../src/tensor/tensor.ts";
import { FIXTURES, maxRelDiff } from "../helpers.ts";

type LM = LoadedModel & DecoderLM;
const PROMPT = [9, 82, 102, 74, 79, 75, 109];
let gpt2: LM;
let llama: LM;
before(async () => {
  gpt2 = (await loadPretrained(join(FIXTURES, "models", "gpt2"))) as LM;
  llama = (await loadPretrained(join(FIXTURES, "models", "llama"))) as LM;
});

describe("generate", () => {
  test("KV-cache steps give the full forward's logits (gpt2, llama)", () => {
    for (const m of [gpt2, llama]) {
      const seq = [...PROMPT, 5, 17, 33];
      const V = m.forward({ inputIds: tensor(Int32Array.from([1]), { shape: [1, 1] }) }).logits.shape[2];
      const full = m
        .forward({ inputIds: tensor(Int32Array.from(seq), { shape: [1, seq.length] }) })
        .logits.toFloat64Array();
      noGrad(() => {
        const cache = new KVCache(m.numLayers);
        m.forward({ inputIds: tensor(Int32Array.from(PROMPT), { shape: [1, PROMPT.length] }), pastKeyValues: cache });
        for (let t = PROMPT.length; t < seq.length; t++) {
          const step = m
            .forward({ inputIds: tensor(Int32Array.from([seq[t]]), { shape: [1, 1] }), pastKeyValues: cache })
            .logits.toFloat64Array();
          assert.ok(maxRelDiff(step, full.slice(t * V, (t + 1) * V)) < 1e-5, `${m.modelType} step ${t}`);
        }
        assert.equal(cache.length, seq.length);
      });
    }
  });

  test("processors follow HF: repetition penalty, top-k keeps ties, top-p keeps the nucleus", () => {
    const s = Float64Array.from([2, -2, 1, 0.5]);
    applyRepetitionPenalty(s, [0, 1, 1], 2);
    assert.deepEqual([...s], [1, -4, 1, 0.5]);
    const k = Float64Array.from([1, 3, 3, 2, 0]);
    applyTopK(k, 2);
    assert.deepEqual([...k], [-Infinity, 3, 3, -Infinity, -Infinity]);
    const k3 = Float64Array.from([1, 3, 3, 2, 0]);
    applyTopK(k3, 3);
    assert.deepEqual([...k3], [-Infinity, 3, 3, 2, -Infinity]);
    // probs 0.5, 0.3, 0.15, 0.05: top_p 0.75 keeps the two largest (cumulative from the small end: 0.05, 0.2 <= 0.25 removed).
    const p = Float64Array.from([0.5, 0.3, 0.15, 0.05].map(Math.log));
    applyTopP(p, 0.75);
    assert.deepEqual(
      [...p].map((v) => v === -Infinity),
      [false, false, true, true],
    );
  });

  test("seeded sampling is reproducible; top-k 1 is greedy", () => {
    const a = generate(llama, PROMPT, { maxNewTokens: 10, doSample: true, seed: 42, eosTokenId: [] });
    const b = generate(llama, PROMPT, { maxNewTokens: 10, doSample: true, seed: 42, eosTokenId: [] });
    const c = generate(llama, PROMPT, { maxNewTokens: 10, doSample: true, seed: 43, temperature: 1.5, eosTokenId: [] });
    assert.deepEqual(a.newIds, b.newIds);
    assert.notDeepEqual(a.newIds, c.newIds);
    const greedy = generate(llama, PROMPT, { maxNewTokens: 6, eosTokenId: [] });
    assert.deepEqual(
      generate(llama, PROMPT, { maxNewTokens: 6, doSample: true, topK: 1, seed: 9, eosTokenId: [] }).newIds,
      greedy.newIds,
    );
    assert.deepEqual(
      generate(llama, PROMPT, { maxNewTokens: 6, doSample: true, topP: 1e-6, seed: 9, eosTokenId: [] }).newIds,
      greedy.newIds,
    );
  });

  test("repetition penalty changes greedy output away from repeats", () => {
    const plain = generate(gpt2, PROMPT, { maxNewTokens: 8 }).newIds; // 39, 88, 88, 88, ...
    const pen = generate(gpt2, PROMPT, { maxNewTokens: 8, repetitionPenalty: 5 }).newIds;
    assert.ok(new Set(pen).size > new Set(plain).size, `${pen} vs ${plain}`);
  });

  test("stops at an eos id (included), streams each token, and a callback returning false stops", () => {
    const greedy = generate(gpt2, PROMPT, { maxNewTokens: 8 }).newIds;
    const eos = generate(gpt2, PROMPT, { maxNewTokens: 8, eosTokenId: greedy[1] });
    assert.deepEqual(eos.newIds, greedy.slice(0, 2));
    assert.equal(eos.finishReason, "eos");
    const seen: number[] = [];
    const r = generate(gpt2, PROMPT, {
      maxNewTokens: 8,
      onToken: (id, step) => {
        seen.push(id);
        return step < 2;
      },
    });
    assert.deepEqual(seen, greedy.slice(0, 3));
    assert.equal(r.finishReason, "stopped");
    assert.equal(generate(gpt2, PROMPT, { maxNewTokens: 3 }).finishReason, "length");
  });

  test("defaults come from generation_config.json (max_length 20 counts the prompt)", () => {
    assert.equal(generate(gpt2, PROMPT, { eosTokenId: [] }).newIds.length, 20 - PROMPT.length);
    assert.throws(() => generate(gpt2, [], {}), /prompt is empty/);
    assert.throws(() => generate(gpt2, PROMPT, { doSample: true, temperature: 0 }), /temperature/);
  });
});
