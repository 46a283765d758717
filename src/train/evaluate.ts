/**
 * One evaluation pass: the model in inference mode under `noGrad` over an {@link EvalSource},
 * losses summed by target count (so the mean is per example / per token exactly), then the task's
 * metrics, the confusion matrix and the most confident mistakes.
 *
 * @example
 * ```ts
 * const { metrics, confusion } = await evaluate(model, evalSource(data.validation, { batchSize: 32 }), "text-classification");
 * ```
 */
import { noGrad } from "../autograd/tape.ts";
import type { Module } from "../nn/module.ts";
import type { Mistake, PerClassMetrics } from "../report/types.ts";
import type { Tensor } from "../tensor/tensor.ts";
import type { TrainTask } from "./config.ts";
import type { EvalSource, SeparableHead, TrainBatch } from "./data.ts";
import { classificationMetrics, multiLabelMetrics, perplexity, regressionMetrics } from "./metrics.ts";

/** What `forward` returns for the trainer's purposes. */
export interface ForwardOutput {
  logits: Tensor;
  loss?: Tensor;
}

/** Runs the model on a batch: the head alone on cached features, else the whole forward with labels. */
export function forwardBatch(model: Module, b: TrainBatch): ForwardOutput {
  if (b.features) return (model as unknown as SeparableHead).classify(b.features, b.labels);
  const m = model as unknown as { forward(x: Record<string, unknown>): ForwardOutput };
  return m.forward({ ...b.inputs, labels: b.labels });
}

/** Class names from the model config (`id2label`), else LABEL_i. */
export function labelNames(model: Module, k: number): string[] {
  const cfg = (model as unknown as { config?: Record<string, unknown> }).config;
  const m = cfg?.id2label as Record<string, string> | undefined;
  return Array.from({ length: k }, (_, i) => m?.[String(i)] ?? `LABEL_${i}`);
}

/** Result of {@link evaluate}. */
export interface EvalResult {
  /** Flat numeric metrics (loss, accuracy, f1Macro, perplexity, ...): an eval row's fields. */
  metrics: Record<string, number>;
  labels?: string[];
  confusion?: number[][];
  perClass?: PerClassMetrics[];
  mistakes?: Mistake[];
  numExamples: number;
}

function softmaxRow(v: Float64Array, o: number, k: number): number[] {
  let mx = -Infinity;
  for (let j = 0; j < k; j++) mx = Math.max(mx, v[o + j]);
  const e = Array.from({ length: k }, (_, j) => Math.exp(v[o + j] - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** Evaluates `model` on `src` for `task`; restores the model's training mode afterwards. */
export async function evaluate(
  model: Module,
  src: EvalSource,
  task: TrainTask,
  opts: { maxMistakes?: number } = {},
): Promise<EvalResult> {
  const was = model.training;
  model.eval();
  let lossSum = 0;
  let targets = 0;
  const preds: number[] = [];
  const ys: number[] = [];
  const conf: number[] = [];
  const rows: number[] = [];
  const probsML: number[][] = [];
  const targML: number[][] = [];
  const regP: number[] = [];
  const regY: number[] = [];
  let K = 0;
  try {
    for await (const b of src.batches()) {
      const out = noGrad(() => forwardBatch(model, b));
      if (out.loss) {
        lossSum += out.loss.item() * b.numTargets;
        targets += b.numTargets;
      }
      if (task === "causal-lm") continue;
      const lg = out.logits.toFloat64Array();
      const y = b.labels.toFloat64Array();
      K = out.logits.shape[out.logits.ndim - 1];
      if (task === "regression") {
        regP.push(...lg);
        regY.push(...y);
      } else if (
        task === "multi-label" ||
        (b.labels.dtype !== "int32" && b.labels.ndim === 2 && task !== "image-classification")
      ) {
        for (let r = 0; r < b.numSamples; r++) {
          probsML.push(Array.from(lg.subarray(r * K, (r + 1) * K), (x) => 1 / (1 + Math.exp(-x))));
          targML.push(Array.from(y.subarray(r * K, (r + 1) * K)));
        }
      } else {
        // Class ids per row (classification) or per token (token classification, -100 ignored).
        const soft = b.labels.dtype !== "int32";
        const n = lg.length / K;
        for (let r = 0; r < n; r++) {
          let yr = soft ? argmax(y, r * K, K) : y[r];
          if (yr === -100) continue;
          const p = softmaxRow(lg, r * K, K);
          const pr = argmax(Float64Array.from(p), 0, K);
          preds.push(pr);
          yr = Math.round(yr);
          ys.push(yr);
          conf.push(p[pr]);
          rows.push(b.indices[Math.floor((r * b.numSamples) / n)] ?? r);
        }
      }
    }
  } finally {
    model.train(was);
  }
  const metrics: Record<string, number> = {};
  if (targets) metrics.loss = lossSum / targets;
  const res: EvalResult = { metrics, numExamples: src.numExamples };
  if (task === "causal-lm" && targets) metrics.perplexity = perplexity(metrics.loss);
  else if (task === "regression") Object.assign(metrics, regressionMetrics(regP, regY));
  else if (probsML.length) Object.assign(metrics, multiLabelMetrics(probsML, targML));
  else if (preds.length) {
    const names = labelNames(model, K);
    const c = classificationMetrics(preds, ys, names);
    Object.assign(metrics, {
      accuracy: c.accuracy,
      f1Macro: c.f1Macro,
      precisionMacro: c.precisionMacro,
      recallMacro: c.recallMacro,
    });
    res.labels = names;
    res.confusion = c.confusion;
    res.perClass = c.perClass;
    const wrong = preds.map((_p, i) => i).filter((i) => preds[i] !== ys[i]);
    wrong.sort((a, b) => conf[b] - conf[a] || a - b);
    res.mistakes = await Promise.all(
      wrong.slice(0, opts.maxMistakes ?? 10).map(async (i) => ({
        index: rows[i],
        label: names[ys[i]] ?? String(ys[i]),
        predicted: names[preds[i]],
        confidence: conf[i],
        ...((await src.describe?.(rows[i])) ?? {}),
      })),
    );
  }
  return res;
}

function argmax(v: ArrayLike<number>, o: number, k: number): number {
  let best = 0;
  for (let j = 1; j < k; j++) if (v[o + j] > v[o + best]) best = j;
  return best;
}
