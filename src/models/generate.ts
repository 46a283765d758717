/**
 * Causal generation with a KV cache, after HF `GenerationMixin`: greedy or sampling, with the logits
 * processors in HF's order (repetition penalty, then temperature, top-k, top-p), stop tokens,
 * seeded sampling through a `Generator` and a per-token callback for streaming.
 *
 * @example
 * ```ts
 * const model = await loadPretrained("./SmolLM2-135M");
 * const ids = model.tokenizer!.encode("Once upon a time").ids;
 * const out = generate(model, ids, { maxNewTokens: 30, doSample: true, topP: 0.9, seed: 1,
 *   onToken: (id) => process.stdout.write(model.tokenizer!.decode([id])) });
 * ```
 */
import { noGrad } from "../autograd/tape.ts";
import type { GenerationConfig } from "../formats/hf-config.ts";
import { select, slice } from "../ops/index.ts";
import { ValueError } from "../tensor/errors.ts";
import { Generator } from "../tensor/rng.ts";
import { type Tensor, tensor } from "../tensor/tensor.ts";
import { KVCache } from "./common.ts";
import type { DecoderLM } from "./heads.ts";

export interface GenerateOptions {
  /** New tokens to produce at most (default: generation config's max_new_tokens, else max_length 20 minus the prompt). */
  maxNewTokens?: number;
  /** Sample instead of greedy (default: generation config's do_sample, else false). */
  doSample?: boolean;
  /** Softmax temperature (> 0) when sampling; default 1. */
  temperature?: number;
  /** Keep the k most likely tokens when sampling (0 = off); default 50, as HF. */
  topK?: number;
  /** Nucleus sampling mass (1 = off); default 1. */
  topP?: number;
  /** HF repetition penalty (> 1 discourages repeats; 1 = off), applied in greedy mode too. */
  repetitionPenalty?: number;
  /** Stop after any of these ids (default: generation config's eos_token_id). Pass [] to never stop early. */
  eosTokenId?: number | readonly number[];
  /** Random source for sampling; `seed` builds one. */
  generator?: Generator;
  seed?: number;
  /** Called with every new token as it is chosen; return false to stop. */
  onToken?: (id: number, step: number) => boolean | undefined | void;
  /** Keep each step's processed scores (HF `output_scores`). */
  outputScores?: boolean;
  /** Defaults for the above (default: the `generationConfig` that `loadPretrained` attached). */
  generationConfig?: GenerationConfig;
}

export interface GenerateResult {
  /** Prompt followed by the new tokens. */
  ids: number[];
  newIds: number[];
  finishReason: "eos" | "length" | "stopped";
  /** Per step, the scores the token was chosen from (when `outputScores`). */
  scores?: Float32Array[];
}

interface Resolved {
  maxNew: number;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  penalty: number;
  eos: Set<number>;
}

function resolve(o: GenerateOptions, gen: GenerationConfig | undefined, promptLen: number): Resolved {
  const maxNew = o.maxNewTokens ?? gen?.maxNewTokens ?? Math.max(0, (gen?.maxLength ?? 20) - promptLen);
  const r: Resolved = {
    maxNew,
    doSample: o.doSample ?? gen?.doSample ?? false,
    temperature: o.temperature ?? gen?.temperature ?? 1,
    topK: o.topK ?? gen?.topK ?? 50,
    topP: o.topP ?? gen?.topP ?? 1,
    penalty: o.repetitionPenalty ?? gen?.repetitionPenalty ?? 1,
    eos: new Set(
      o.eosTokenId === undefined
        ? (gen?.eosTokenId ?? [])
        : typeof o.eosTokenId === "number"
          ? [o.eosTokenId]
          : o.eosTokenId,
    ),
  };
  if (!Number.isInteger(r.maxNew) || r.maxNew < 0)
    throw new ValueError(`generate: maxNewTokens must be an integer >= 0, got ${r.maxNew}`);
  if (r.doSample && !(r.temperature > 0))
    throw new ValueError(
      `generate: temperature must be > 0 when sampling, got ${r.temperature} (use doSample: false for greedy)`,
    );
  if (!(r.topP > 0 && r.topP <= 1)) throw new ValueError(`generate: topP must be in (0, 1], got ${r.topP}`);
  if (!(r.penalty > 0)) throw new ValueError(`generate: repetitionPenalty must be > 0, got ${r.penalty}`);
  if (!Number.isInteger(r.topK) || r.topK < 0)
    throw new ValueError(`generate: topK must be an integer >= 0, got ${r.topK}`);
  return r;
}

/** HF `RepetitionPenaltyLogitsProcessor`: divide positive / multiply negative scores of seen tokens. */
export function applyRepetitionPenalty(scores: Float64Array, seen: Iterable<number>, penalty: number): void {
  if (penalty === 1) return;
  for (const id of new Set(seen)) {
    const s = scores[id];
    scores[id] = s < 0 ? s * penalty : s / penalty;
  }
}

/** HF `TopKLogitsWarper`: -inf below the k-th largest score (ties with it are kept). */
export function applyTopK(scores: Float64Array, k: number): void {
  if (k <= 0 || k >= scores.length) return;
  const kth = Float64Array.from(scores).sort()[scores.length - k];
  for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = Number.NEGATIVE_INFINITY;
}

/** HF `TopPLogitsWarper`: drop the least likely tokens whose cumulative probability is <= 1 - p (keeps at least one). */
export function applyTopP(scores: Float64Array, p: number): void {
  if (p >= 1) return;
  const order = Array.from(scores.keys()).sort((a, b) => scores[a] - scores[b] || a - b);
  const probs = softmax64(Float64Array.from(order, (i) => scores[i]));
  let cum = 0;
  for (let r = 0; r < order.length - 1; r++) {
    cum += probs[r];
    if (cum <= 1 - p) scores[order[r]] = Number.NEGATIVE_INFINITY;
  }
}

function softmax64(x: Float64Array): Float64Array {
  let m = Number.NEGATIVE_INFINITY;
  for (const v of x) if (v > m) m = v;
  const e = Float64Array.from(x, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

function argmax(x: Float64Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

/** Draws an index from softmax(scores) with one uniform from `g`. */
export function sampleFrom(scores: Float64Array, g: Generator): number {
  const p = softmax64(scores);
  const u = g.random();
  let cum = 0;
  for (let i = 0; i < p.length; i++) {
    cum += p[i];
    if (u < cum && p[i] > 0) return i;
  }
  return argmax(scores); // rounding left u above the total
}

/** One decoding step's choice from the last position's logits. Exported for tests. */
export function chooseToken(
  logits: Float64Array,
  seen: readonly number[],
  r: Resolved,
  g: Generator,
): { id: number; scores: Float64Array } {
  const s = Float64Array.from(logits);
  applyRepetitionPenalty(s, seen, r.penalty);
  if (!r.doSample) return { id: argmax(s), scores: s };
  if (r.temperature !== 1) for (let i = 0; i < s.length; i++) s[i] /= r.temperature;
  applyTopK(s, r.topK);
  applyTopP(s, r.topP);
  return { id: sampleFrom(s, g), scores: s };
}

/**
 * Generates from one prompt (batch 1) with a KV cache: the prompt runs once, then one token per
 * step. Greedy by default; `doSample` with temperature/top-k/top-p draws from a seeded `Generator`.
 * Returns the ids and why it stopped; `onToken` streams each id as it is chosen.
 *
 * @example
 * ```ts
 * const { newIds } = generate(model, [50256, 464], { maxNewTokens: 8 });   // greedy, like HF
 * ```
 */
export function generate(
  model: DecoderLM & { generationConfig?: GenerationConfig },
  prompt: readonly number[] | Tensor,
  opts: GenerateOptions = {},
): GenerateResult {
  const promptIds = Array.isArray(prompt) ? [...prompt] : (prompt as Tensor).toList();
  if (!promptIds.length)
    throw new ValueError("generate: the prompt is empty (pass at least one token id, e.g. the BOS token)");
  const r = resolve(opts, opts.generationConfig ?? model.generationConfig, promptIds.length);
  const g = opts.generator ?? new Generator(opts.seed ?? 0);
  const ids = [...promptIds];
  const newIds: number[] = [];
  const scores: Float32Array[] = [];
  let finishReason: GenerateResult["finishReason"] = "length";
  noGrad(() => {
    const cache = new KVCache(model.numLayers);
    let input = promptIds;
    for (let step = 0; step < r.maxNew; step++) {
      const inputIds = tensor(Int32Array.from(input), { shape: [1, input.length] });
      const { logits } = model.forward({ inputIds, pastKeyValues: cache });
      const last = select(slice(logits, 1, logits.shape[1] - 1), 1, 0).toFloat64Array();
      const { id, scores: s } = chooseToken(last, ids, r, g);
      if (opts.outputScores) scores.push(Float32Array.from(s));
      ids.push(id);
      newIds.push(id);
      if (opts.onToken?.(id, step) === false) {
        finishReason = "stopped";
        break;
      }
      if (r.eos.has(id)) {
        finishReason = "eos";
        break;
      }
      input = [id];
    }
  });
  return { ids, newIds, finishReason, ...(opts.outputScores ? { scores } : {}) };
}
