/**
 * What the HTML and text reports compute from a {@link RunRecord}: metric series, final and best
 * evaluation, the baseline comparison and per-class metrics derived from a confusion matrix.
 *
 * @example
 * ```ts
 * const best = bestEval(run, "accuracy");        // { value: 0.92, step: 900 }
 * for (const g of compareBaselines(run)) console.log(g.metric, g.gain);
 * ```
 */
import { isNum } from "./format.ts";
import type { Baseline, MetricRow, PerClassMetrics, RunRecord } from "./types.ts";
import { isHigherBetter } from "./types.ts";

const NOT_METRICS = new Set(["step", "epoch", "split", "lr"]);
const ORDER = ["loss", "accuracy", "f1Macro", "perplexity"];

/** Rows with a finite step and a known split, sorted by step (stable). */
export function validRows(run: RunRecord): MetricRow[] {
  const rows = Array.isArray(run.metrics) ? run.metrics : [];
  return rows
    .filter((r) => r && isNum(r.step) && (r.split === "train" || r.split === "eval"))
    .sort((a, b) => a.step - b.step);
}

/** Numeric metric keys present in the rows (loss first, then accuracy, F1, perplexity, then A–Z). */
export function metricKeys(rows: readonly MetricRow[], split?: "train" | "eval"): string[] {
  const keys = new Set<string>();
  for (const r of rows) {
    if (split && r.split !== split) continue;
    for (const [k, v] of Object.entries(r)) if (!NOT_METRICS.has(k) && typeof v === "number") keys.add(k);
  }
  const rank = (k: string) => (ORDER.includes(k) ? ORDER.indexOf(k) : ORDER.length);
  return [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

/** `[step, value]` points of `key` on `split`, non-finite values kept (charts count and drop them). */
export function series(rows: readonly MetricRow[], split: "train" | "eval", key: string): [number, number][] {
  const out: [number, number][] = [];
  for (const r of rows) {
    const v = r[key];
    if (r.split === split && (typeof v === "number" || v === null)) out.push([r.step, v ?? Number.NaN]);
  }
  return out;
}

/** The last evaluation row, if any. */
export function finalEval(run: RunRecord): MetricRow | undefined {
  return validRows(run)
    .filter((r) => r.split === "eval")
    .at(-1);
}

/** Best finite value of `key` over evaluation rows (direction from the metric name), with its step. */
export function bestEval(run: RunRecord, key: string): { value: number; step: number } | undefined {
  const up = isHigherBetter(key);
  let best: { value: number; step: number } | undefined;
  for (const r of validRows(run)) {
    const v = r[key];
    if (r.split !== "eval" || !isNum(v)) continue;
    if (!best || (up ? v > best.value : v < best.value)) best = { value: v, step: r.step };
  }
  return best;
}

/** The metric a summary leads with: accuracy, then F1, perplexity, loss, or the first one logged. */
export function primaryMetric(run: RunRecord): string | undefined {
  const keys = metricKeys(validRows(run), "eval");
  return ["accuracy", "f1Macro", "perplexity", "loss"].find((k) => keys.includes(k)) ?? keys[0];
}

/** One metric of the baseline comparison. */
export interface BaselineGroup {
  metric: string;
  higherIsBetter: boolean;
  ours: Baseline;
  others: Baseline[];
  /** The best of `others`, and `ours - best` (positive = ours better for higher-is-better). */
  bestOther?: Baseline;
  /** True when `ours` beats every other entry. */
  oursWins: boolean;
}

/** Groups baselines by metric, picking "ours" (marked, or first) and the strongest alternative. */
export function compareBaselines(run: RunRecord): BaselineGroup[] {
  const groups = new Map<string, Baseline[]>();
  for (const b of run.baselines ?? []) {
    if (!b || !isNum(b.value) || typeof b.metric !== "string") continue;
    groups.set(b.metric, [...(groups.get(b.metric) ?? []), b]);
  }
  return [...groups].map(([metric, list]) => {
    const ours = list.find((b) => b.ours) ?? list[0];
    const others = list.filter((b) => b !== ours);
    const up = ours.higherIsBetter ?? isHigherBetter(metric);
    const better = (a: Baseline, b: Baseline) => (up ? a.value > b.value : a.value < b.value);
    const bestOther = others.reduce<Baseline | undefined>((m, b) => (!m || better(b, m) ? b : m), undefined);
    return { metric, higherIsBetter: up, ours, others, bestOther, oursWins: !bestOther || better(ours, bestOther) };
  });
}

/** Per-class precision/recall/F1 from a confusion matrix (rows = true, columns = predicted). */
export function perClassFromConfusion(labels: readonly string[], confusion: readonly number[][]): PerClassMetrics[] {
  const n = confusion.length;
  return Array.from({ length: n }, (_, i) => {
    const tp = confusion[i][i];
    const support = confusion[i].reduce((s, v) => s + v, 0);
    const predicted = confusion.reduce((s, row) => s + row[i], 0);
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    return { label: labels[i] ?? String(i), precision, recall, f1, support };
  });
}

/** The confusion matrix when it is square, non-negative and finite; labels padded with indices. */
export function checkedConfusion(run: RunRecord): { labels: string[]; matrix: number[][] } | undefined {
  const m = run.confusion;
  if (!Array.isArray(m) || m.length === 0) return undefined;
  const n = m.length;
  if (!m.every((row) => Array.isArray(row) && row.length === n && row.every((v) => isNum(v) && v >= 0)))
    return undefined;
  const labels = Array.from({ length: n }, (_, i) => (typeof run.labels?.[i] === "string" ? run.labels[i] : String(i)));
  return { labels, matrix: m };
}

/** Accuracy from a confusion matrix (trace / total). */
export function confusionAccuracy(matrix: readonly number[][]): number {
  let tr = 0;
  let total = 0;
  matrix.forEach((row, i) => {
    tr += row[i];
    for (const v of row) total += v;
  });
  return total > 0 ? tr / total : Number.NaN;
}

/** A metric key as a reader would write it: `f1Macro` -> `F1 (macro)`, `gradNorm` -> `grad norm`. */
export function metricLabel(key: string): string {
  const known: Record<string, string> = { f1Macro: "F1 (macro)", f1: "F1", lr: "learning rate", accuracy: "accuracy" };
  return (
    known[key] ??
    key
      .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
      .replace(/_/g, " ")
      .toLowerCase()
  );
}
