/**
 * A short plain-text summary of a run for the terminal and `summary.txt`: final and best
 * evaluation metrics, the freeze check, timing and the baseline table with what fine-tuning gained.
 *
 * @example
 * ```ts
 * console.log(summaryText(run));
 * await writeSummary("./out", run);   // ./out/summary.txt
 * ```
 */
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomic } from "../formats/safetensors.ts";
import { bestEval, compareBaselines, finalEval, metricKeys, metricLabel, validRows } from "./analysis.ts";
import {
  formatCount,
  formatDelta,
  formatDuration,
  formatMetric,
  formatNumber,
  formatPercent,
  isNum,
} from "./format.ts";
import type { RunRecord } from "./types.ts";

/** Strips control characters (ANSI escapes included) so a dataset string cannot drive the terminal. */
function clean(s: unknown): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: removing them is the point
  return String(s ?? "").replace(/[\u0000-\u001f\u007f-\u009f]+/g, " ");
}

function table(rows: string[][], align: ("l" | "r")[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => Array.from(r[c]).length)));
  const pad = (s: string, c: number) => {
    const fill = " ".repeat(widths[c] - Array.from(s).length);
    return align[c] === "r" ? fill + s : s + fill;
  };
  return rows.map((r) => `  ${r.map(pad).join("   ").trimEnd()}`);
}

/**
 * The run summary as plain text (no colours), a dozen lines or so.
 *
 * @example
 * ```ts
 * process.stdout.write(summaryText(run));
 * ```
 */
export function summaryText(run: RunRecord): string {
  const out: string[] = [];
  const model = run.model
    ? `${clean(run.model.name)}${run.model.modelType ? ` (${clean(run.model.modelType)})` : ""}`
    : "";
  out.push(`${clean(run.title || "Untitled run")}`);
  out.push(
    `  task ${clean(run.task)}${model ? `, model ${model}` : ""}${run.strategy ? `, strategy ${clean(run.strategy)}` : ""}`,
  );
  const rows = validRows(run);
  const last = rows.at(-1);
  const t = run.timing;
  const parts: string[] = [];
  if (last)
    parts.push(
      `${formatNumber(last.step)} steps`,
      ...(isNum(last.epoch) ? [`${formatNumber(last.epoch)} epochs`] : []),
    );
  if (t && isNum(t.totalSeconds))
    parts.push(
      `${formatDuration(t.totalSeconds)}${t.backend ? ` on ${clean(t.backend)}` : ""}${isNum(t.threads) ? ` (${t.threads} threads)` : ""}`,
    );
  if (t && isNum(t.samplesPerSecond)) parts.push(`${formatNumber(t.samplesPerSecond)} samples/s`);
  if (parts.length) out.push(`  ${parts.join(", ")}`);

  const fin = finalEval(run);
  const keys = metricKeys(rows, "eval");
  if (fin) {
    const vals = keys.filter((k) => isNum(fin[k])).map((k) => `${metricLabel(k)} ${formatMetric(k, fin[k] as number)}`);
    if (vals.length) out.push(`final eval (step ${formatNumber(fin.step)}): ${vals.join(", ")}`);
    const best = keys
      .map((k) => [k, bestEval(run, k)] as const)
      .filter(([, b]) => b && b.step !== fin.step)
      .map(
        ([k, b]) =>
          `${metricLabel(k)} ${formatMetric(k, b?.value ?? Number.NaN)} at step ${formatNumber(b?.step ?? 0)}`,
      );
    if (best.length) out.push(`best eval: ${best.join(", ")}`);
  } else {
    const trainLoss = rows.filter((r) => r.split === "train" && isNum(r.loss)).at(-1);
    if (trainLoss)
      out.push(`final train loss ${formatNumber(trainLoss.loss as number)} (step ${formatNumber(trainLoss.step)})`);
  }

  const fa = run.freezeAudit;
  if (fa && isNum(fa.trainable) && isNum(fa.total)) {
    out.push(
      `trainable ${formatCount(fa.trainable)} of ${formatCount(fa.total)} parameters (${formatPercent(fa.trainable, fa.total)}), freeze ${fa.verified ? "verified" : "NOT verified"}`,
    );
  }

  for (const g of compareBaselines(run)) {
    out.push(`baselines (${clean(g.metric)}, ${g.higherIsBetter ? "higher" : "lower"} is better):`);
    const body = [g.ours, ...g.others].map((b) => [
      clean(b.name),
      formatMetric(g.metric, b.value),
      b === g.ours ? "" : formatDelta(g.metric, g.ours.value, b.value),
    ]);
    out.push(...table([["", clean(g.metric), `Δ ${clean(g.ours.name)}`], ...body], ["l", "r", "r"]));
    if (g.bestOther) {
      const d = formatDelta(g.metric, g.ours.value, g.bestOther.value);
      out.push(
        g.oursWins
          ? `${clean(g.ours.name)} beats the best baseline (${clean(g.bestOther.name)}) by ${d} ${clean(g.metric)}.`
          : `${clean(g.ours.name)} does NOT beat ${clean(g.bestOther.name)} (${d} ${clean(g.metric)}).`,
      );
    }
  }
  return `${out.join("\n")}\n`;
}

/**
 * Writes {@link summaryText} to `<dir>/summary.txt` atomically and returns the path.
 *
 * @example
 * ```ts
 * await writeSummary("./out", run);
 * ```
 */
export async function writeSummary(dir: string, run: RunRecord): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "summary.txt");
  await writeFileAtomic(path, [Buffer.from(summaryText(run), "utf8")]);
  return path;
}
