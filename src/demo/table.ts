/**
 * The demo's final table and number formats: task | metric | fine-tuned | from scratch |
 * head-only | gain, then one line per task with the other arms, the time and the report path.
 *
 * @example
 * ```ts
 * process.stdout.write(`${resultTable(results)}\n`);   // | text | test accuracy | 97.2% | 88.0% | ...
 * ```
 */
import { join } from "node:path";
import type { DemoResult } from "./common.ts";

/** "1m05s" / "42.0 s". */
export function fmtSeconds(s: number): string {
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  return `${m}m${String(Math.round(s - 60 * m)).padStart(2, "0")}s`;
}

/** A metric value as the table shows it: accuracy in percent, perplexity with 3 significant digits. */
export function fmtMetric(metric: string, v: number): string {
  if (/accuracy/.test(metric)) return `${(100 * v).toFixed(1)}%`;
  return v >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

/** What fine-tuning gained over `other`: accuracy points, or how many times lower (better) the perplexity is. */
export function fmtGain(r: Pick<DemoResult, "metric" | "higherIsBetter">, ours: number, other: number): string {
  if (r.higherIsBetter) {
    const d = 100 * (ours - other);
    return `${d >= 0 ? "+" : ""}${d.toFixed(1)} pts`;
  }
  return ours <= other ? `${(other / ours).toFixed(2)}x lower` : `${(ours / other).toFixed(2)}x higher`;
}

/** The final table: task | metric | fine-tuned | from scratch | head-only | gain, and the detail lines. */
export function resultTable(results: readonly DemoResult[]): string {
  const head = ["task", "metric", "fine-tuned", "from scratch", "head-only", "gain vs scratch", "gain vs head-only"];
  const rows = results.map((r) => {
    const by = (k: string) => r.arms.find((a) => a.kind === k);
    const [ft, sc, hd] = [by("finetuned"), by("scratch"), by("head")];
    const cell = (a: typeof ft) => (a ? fmtMetric(r.metric, a.value) : "-");
    const gain = (a: typeof ft) => (ft && a ? fmtGain(r, ft.value, a.value) : "-");
    return [r.task, r.metric, cell(ft), cell(sc), cell(hd), gain(sc), gain(hd)];
  });
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(...all.map((r) => r[c].length)));
  const line = (r: string[]) => `| ${r.map((s, c) => s.padEnd(w[c])).join(" | ")} |`;
  const table = [line(head), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.map(line)];
  return [...table, "", ...detailLines(results)].join("\n");
}

/** Lines under the table: the other arms (no tuning, full fine-tune), time and report of each task. */
function detailLines(results: readonly DemoResult[]): string[] {
  const out: string[] = [];
  for (const r of results) {
    const extra = r.arms.filter((a) => a.kind === "extra");
    const ft = r.arms[0];
    const bits = extra.map((a) => `${a.name} ${fmtMetric(r.metric, a.value)}`);
    out.push(
      `${r.task}: ${ft.name} = ${ft.note ?? ""}${bits.length ? `; also ${bits.join(", ")}` : ""}; ${fmtSeconds(r.seconds)}; ${join(r.dir, "report.html")}`,
    );
  }
  return out;
}
