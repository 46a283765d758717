/**
 * Run reports: `report.html` (self-contained, inline SVG) and a plain-text summary, both rendered
 * from one JSON-serialisable {@link RunRecord}.
 *
 * @example
 * ```ts
 * import { writeReport, writeSummary, summaryText } from "./report/index.ts";
 * await writeReport(runDir, run);
 * process.stdout.write(summaryText(run));
 * ```
 */

export { escapeHtml } from "./format.ts";
export { type RenderOptions, renderReport, writeReport } from "./html.ts";
export { type Bar, barChart, lineChart, logTicks, niceTicks, type Point, type Series } from "./svg.ts";
export { summaryText, writeSummary } from "./text.ts";
export type {
  Baseline,
  DatasetStats,
  FreezeAudit,
  GenerationSample,
  MetricRow,
  Mistake,
  PerClassMetrics,
  RunRecord,
  Timing,
} from "./types.ts";
export { isFractionMetric, isHigherBetter } from "./types.ts";
