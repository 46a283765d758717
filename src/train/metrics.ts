/**
 * Evaluation metrics (plain numbers in, plain numbers out) and early stopping.
 *
 * - single-label classification: accuracy, precision/recall/F1 per class and macro, confusion matrix;
 * - multi-label: exact-match accuracy, micro and macro F1 at threshold 0.5 on sigmoid(logits);
 * - regression: MSE, MAE, RMSE, R²;
 * - causal LM: perplexity = exp(token-mean loss).
 *
 * @example
 * ```ts
 * const m = classificationMetrics([0, 1, 1], [0, 1, 0], ["neg", "pos"]);
 * m.accuracy; // 0.667   m.confusion; // [[1, 1], [0, 1]]
 * const es = new EarlyStopping({ metric: "loss", patience: 2 });
 * if (es.update(evalLoss, step).stop) break;
 * ```
 */
import type { PerClassMetrics } from "../report/types.ts";
import { isHigherBetter } from "../report/types.ts";
import { ValueError } from "../tensor/errors.ts";
import type { EarlyStoppingConfig } from "./strategies.ts";

/** What {@link classificationMetrics} returns. */
export interface ClassificationMetrics {
  accuracy: number;
  precisionMacro: number;
  recallMacro: number;
  f1Macro: number;
  perClass: PerClassMetrics[];
  /** rows = true class, columns = predicted. */
  confusion: number[][];
}

/** Accuracy, per-class and macro precision/recall/F1 and the confusion matrix (sklearn's zero_division=0). */
export function classificationMetrics(
  predicted: readonly number[],
  labels: readonly number[],
  names: readonly string[],
): ClassificationMetrics {
  if (predicted.length !== labels.length)
    throw new ValueError(`metrics: ${predicted.length} predictions for ${labels.length} labels`);
  const K = names.length;
  const confusion = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  let correct = 0;
  labels.forEach((y, i) => {
    const p = predicted[i];
    if (y >= 0 && y < K && p >= 0 && p < K) confusion[y][p]++;
    if (y === p) correct++;
  });
  const perClass: PerClassMetrics[] = names.map((label, k) => {
    const tp = confusion[k][k];
    const support = confusion[k].reduce((a, b) => a + b, 0);
    const predictedK = confusion.reduce((a, row) => a + row[k], 0);
    const precision = predictedK ? tp / predictedK : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    return { label, precision, recall, f1, support };
  });
  const mean = (f: (c: PerClassMetrics) => number) => (K ? perClass.reduce((a, c) => a + f(c), 0) / K : 0);
  return {
    accuracy: labels.length ? correct / labels.length : 0,
    precisionMacro: mean((c) => c.precision),
    recallMacro: mean((c) => c.recall),
    f1Macro: mean((c) => c.f1),
    perClass,
    confusion,
  };
}

/** Multi-label metrics at `threshold` on probabilities (N rows of K). */
export function multiLabelMetrics(
  probs: readonly number[][],
  targets: readonly number[][],
  threshold = 0.5,
): { accuracy: number; f1Micro: number; f1Macro: number } {
  const K = targets[0]?.length ?? 0;
  let exact = 0;
  const tp = new Array<number>(K).fill(0);
  const fp = new Array<number>(K).fill(0);
  const fn = new Array<number>(K).fill(0);
  probs.forEach((row, i) => {
    let ok = true;
    for (let k = 0; k < K; k++) {
      const p = row[k] >= threshold;
      const t = targets[i][k] >= 0.5;
      if (p !== t) ok = false;
      if (p && t) tp[k]++;
      else if (p) fp[k]++;
      else if (t) fn[k]++;
    }
    if (ok) exact++;
  });
  const f1 = (a: number, b: number, c: number) => (2 * a + b + c ? (2 * a) / (2 * a + b + c) : 0);
  const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);
  const macro = K ? tp.reduce((a, _, k) => a + f1(tp[k], fp[k], fn[k]), 0) / K : 0;
  return { accuracy: probs.length ? exact / probs.length : 0, f1Micro: f1(sum(tp), sum(fp), sum(fn)), f1Macro: macro };
}

/** Regression metrics over flattened predictions and targets. */
export function regressionMetrics(
  pred: readonly number[],
  target: readonly number[],
): { mse: number; mae: number; rmse: number; r2: number } {
  const n = pred.length;
  if (n !== target.length) throw new ValueError(`metrics: ${n} predictions for ${target.length} targets`);
  let se = 0;
  let ae = 0;
  let mean = 0;
  for (const t of target) mean += t / (n || 1);
  let ss = 0;
  for (let i = 0; i < n; i++) {
    const d = pred[i] - target[i];
    se += d * d;
    ae += Math.abs(d);
    ss += (target[i] - mean) ** 2;
  }
  const mse = n ? se / n : 0;
  return { mse, mae: n ? ae / n : 0, rmse: Math.sqrt(mse), r2: ss > 0 ? 1 - se / ss : 0 };
}

/** exp(token-mean cross-entropy). */
export function perplexity(meanLoss: number): number {
  return Math.exp(meanLoss);
}

/** Serializable state of an {@link EarlyStopping}. */
export interface EarlyStoppingState {
  best: number | null;
  bestStep: number | null;
  bad: number;
}

/**
 * Stops after `patience` evaluations without an improvement of `metric` by more than `minDelta`.
 * `update` says whether this evaluation is the best so far (save/keep it) and whether to stop.
 */
export class EarlyStopping {
  readonly metric: string;
  readonly patience: number;
  readonly mode: "min" | "max";
  readonly minDelta: number;
  readonly restoreBest: boolean;
  best: number | null = null;
  bestStep: number | null = null;
  bad = 0;

  constructor(c: EarlyStoppingConfig = {}) {
    this.metric = c.metric ?? "loss";
    this.patience = c.patience ?? 3;
    this.mode = c.mode ?? (isHigherBetter(this.metric) ? "max" : "min");
    this.minDelta = c.minDelta ?? 0;
    this.restoreBest = c.restoreBest ?? true;
    if (!(Number.isInteger(this.patience) && this.patience >= 0))
      throw new ValueError(`earlyStopping.patience must be a non-negative integer, got ${c.patience}`);
  }

  /** True when `value` beats the best so far by more than minDelta. */
  isImprovement(value: number): boolean {
    if (!Number.isFinite(value)) return false;
    if (this.best === null) return true;
    return this.mode === "min" ? value < this.best - this.minDelta : value > this.best + this.minDelta;
  }

  /** Records an evaluation. */
  update(value: number, step: number): { improved: boolean; stop: boolean } {
    const improved = this.isImprovement(value);
    if (improved) {
      this.best = value;
      this.bestStep = step;
      this.bad = 0;
    } else this.bad++;
    return { improved, stop: !improved && this.bad >= this.patience };
  }

  state(): EarlyStoppingState {
    return { best: this.best, bestStep: this.bestStep, bad: this.bad };
  }

  load(s: EarlyStoppingState): void {
    this.best = s.best;
    this.bestStep = s.bestStep;
    this.bad = s.bad;
  }
}
