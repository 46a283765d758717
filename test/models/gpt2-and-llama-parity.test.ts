/**
 * Whole-model parity against `transformers` 4.40 (fixtures in test/fixtures/models/{gpt2,llama}):
 * logits, loss, hidden states, every parameter's gradient norm, three full gradients and greedy
 * generation, all in float32 on the active backend.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { generate } from "../../src/models/generate.ts";
import type { DecoderLM, ModelOutput } from "../../src/models/heads.ts";
import { type LoadedModel, loadPretrained } from "../../src/models/pretrained.ts";
import { type Tensor, tensor } from "../../src/tensor/tensor.ts";
import { FIXTURES, loadJson } from "../helpers.ts";

interface Reference {
  inputs: { input_ids: number[][]; attention_mask: number[][] };
  labels: number[][];
  logits: number[][][];
  loss: number;
  hidden_states: number[][][][];
  grad_norms: Record<string, number>;
  full_grads: Record<string, { shape: number[]; grad: unknown }>;
  generate: { input_ids: number[][]; output_ids: number[][]; scores: number[][][]; eos_token_id: number };
}

const ids2 = (rows: number[][]) => tensor(Int32Array.from(rows.flat()), { shape: [rows.length, rows[0].length] });

/** max |a - b|, printing the first values when over `tol`. */
function assertMaxAbs(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): number {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let m = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  const head = (x: ArrayLike<number>) =>
    Array.from(x)
      .slice(0, 5)
      .map((v) => v.toPrecision(7))
      .join(", ");
  assert.ok(
    m <= tol,
    `${what}: max abs diff ${m.toExponential(3)} > ${tol}\n  actual:   ${head(actual)}\n  expected: ${head(expected)}`,
  );
  return m;
}

const relDiff = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

for (const name of ["gpt2", "llama"]) {
  describe(`${name} parity with transformers`, () => {
    const dir = join(FIXTURES, "models", name);
    const ref = loadJson<Reference>(`models/${name}/reference.json`);
    let model: LoadedModel & DecoderLM;
    let out: ModelOutput;

    test("loads without missing or unexpected keys", async () => {
      model = (await loadPretrained(dir, { onWarning: (w) => assert.fail(w) })) as LoadedModel & DecoderLM;
      assert.deepEqual(model.loadReport.newlyInitialized, []);
      assert.deepEqual(model.loadReport.unexpected, []);
      assert.equal(model.task, "causal-lm");
    });

    test("logits within 1e-4 and loss within 1e-5 relative", () => {
      out = model.forward({
        inputIds: ids2(ref.inputs.input_ids),
        attentionMask: ids2(ref.inputs.attention_mask),
        labels: ids2(ref.labels),
        outputHiddenStates: true,
      });
      assert.deepEqual([...out.logits.shape], [2, 7, ref.logits[0][0].length]);
      const d = assertMaxAbs(out.logits.toFloat64Array(), ref.logits.flat(2), 1e-4, "logits");
      const l = out.loss!.item();
      assert.ok(relDiff(l, ref.loss) <= 1e-5, `loss ${l} vs ${ref.loss}`);
      console.log(
        `${name}: logits max abs diff ${d.toExponential(2)}, loss rel diff ${relDiff(l, ref.loss).toExponential(2)}`,
      );
    });

    test("hidden states as output_hidden_states=True", () => {
      assert.equal(out.hiddenStates!.length, ref.hidden_states.length);
      for (const [i, h] of (out.hiddenStates ?? []).entries()) {
        assertMaxAbs(h.toFloat64Array(), ref.hidden_states[i].flat(2), 1e-4, `hidden_states[${i}]`);
      }
    });

    test("every parameter's gradient norm within 1e-4 relative, full gradients elementwise", () => {
      out.loss!.backward();
      const params = new Map<string, Tensor>(model.namedParameters());
      assert.deepEqual([...params.keys()].sort(), Object.keys(ref.grad_norms).sort());
      let worst = 0;
      for (const [k, p] of params) {
        const g = p.grad!.toFloat64Array();
        const n = Math.sqrt(g.reduce((a, b) => a + b * b, 0));
        const r = relDiff(n, ref.grad_norms[k]);
        assert.ok(r <= 1e-4, `${k}: grad norm ${n} vs ${ref.grad_norms[k]} (rel ${r.toExponential(2)})`);
        worst = Math.max(worst, r);
      }
      let worstFull = 0;
      for (const [k, { shape, grad }] of Object.entries(ref.full_grads)) {
        const g = params.get(k)!.grad!;
        assert.deepEqual([...g.shape], shape, `${k} shape`);
        worstFull = Math.max(
          worstFull,
          assertMaxAbs(g.toFloat64Array(), (grad as number[]).flat?.(2) ?? grad, 1e-5, `${k} grad`),
        );
      }
      console.log(
        `${name}: worst grad-norm rel diff ${worst.toExponential(2)}, full grads max abs ${worstFull.toExponential(2)}`,
      );
    });

    test("greedy generation gives transformers' ids and scores", () => {
      const g = ref.generate;
      const res = generate(model, g.input_ids[0], { maxNewTokens: 8, outputScores: true });
      assert.deepEqual(res.ids, g.output_ids[0]);
      const d = Math.max(...res.scores!.map((s, i) => assertMaxAbs(s, g.scores[i][0], 1e-4, `scores[${i}]`)));
      console.log(`${name}: generate ids equal, scores max abs diff ${d.toExponential(2)}`);
    });
  });
}
