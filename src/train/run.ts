/**
 * The end of a run: the final model (`model/` via `saveModel`, or `adapter/` in PEFT format for
 * LoRA, plus `merged/` on request), the {@link RunRecord} for `report.html` and `summary.txt`, and
 * the {@link RunResult} that `fit()` returns.
 *
 * @example
 * ```ts
 * const run = await trainer.fit();
 * run.best;                 // { metric: "loss", value: 0.31, step: 120 }
 * await run.save("./out");  // model or adapter + report.html + summary.txt + metrics.jsonl
 * ```
 */
import { readFileSync, writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { saveModel } from "../models/pretrained.ts";
import type { PretrainedModel } from "../models/registry.ts";
import { saveAdapter } from "../peft/index.ts";
import { writeReport, writeSummary } from "../report/index.ts";
import type { DatasetStats, MetricRow, RunRecord, Timing } from "../report/types.ts";
import { freezeAuditRecord, trainableSummary } from "./audit.ts";
import type { EvalResult } from "./evaluate.ts";
import type { Trainer } from "./trainer.ts";

/** What `Trainer.fit()` returns. */
export interface RunResult {
  /** Every logged row (train and eval), as in metrics.jsonl. */
  metrics: MetricRow[];
  /** The last evaluation (after restore-best when that ran). */
  eval: EvalResult | null;
  /** Best evaluation by the early-stopping metric. */
  best: { metric: string; value: number; step: number } | null;
  /** Optimizer steps done and steps dropped as non-finite. */
  steps: number;
  skippedSteps: number;
  /** Paths written under runDir (empty without one). */
  paths: {
    runDir?: string;
    model?: string;
    adapter?: string;
    merged?: string;
    report?: string;
    summary?: string;
    metrics?: string;
  };
  /** The report's input. */
  record: RunRecord;
  /** Writes the model (or adapter), report.html, summary.txt and metrics.jsonl to `dir`. */
  save(dir: string): Promise<void>;
}

/** The first `n` rows of a metrics.jsonl file. */
export function readRows(path: string, n: number): MetricRow[] {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return [];
  }
  return text
    .split("\n")
    .filter((l) => l.length > 0)
    .slice(0, n)
    .map((l) => JSON.parse(l) as MetricRow);
}

interface FinishInfo {
  rows: MetricRow[];
  lastEval: EvalResult | null;
  auditVerified: boolean;
  skippedSteps: number;
  timing: Timing;
  halted: string | null;
  bestStep: number | null;
  bestValue: number | null;
  dataset?: DatasetStats;
}

/** Writes the model or adapter to `dir` (`model/`, or `adapter/` + optionally `merged/`). */
async function saveWeights(t: Trainer, dir: string, merged: boolean): Promise<RunResult["paths"]> {
  const model = t.model as PretrainedModel;
  const lora = t.plan.lora;
  if (!lora) {
    await saveModel(model, join(dir, "model"));
    return { model: join(dir, "model") };
  }
  const src = (model as unknown as { sourceDir?: string }).sourceDir ?? null;
  const taskType =
    model.task === "causal-lm" ? "CAUSAL_LM" : model.task === "sequence-classification" ? "SEQ_CLS" : null;
  await saveAdapter(lora, join(dir, "adapter"), { baseModelNameOrPath: src, taskType });
  const out: RunResult["paths"] = { adapter: join(dir, "adapter") };
  if (merged) {
    lora.merge();
    try {
      await saveModel(model, join(dir, "merged"));
    } finally {
      lora.unmerge();
    }
    out.merged = join(dir, "merged");
  }
  return out;
}

/** Builds the RunRecord, writes everything into runDir (when set) and returns the RunResult. */
export async function finishRun(t: Trainer, info: FinishInfo): Promise<RunResult> {
  const c = t.config;
  const summary = trainableSummary(t.model);
  const note =
    info.halted ??
    (info.auditVerified
      ? "frozen parameters and BatchNorm statistics bitwise unchanged after the first step"
      : "no optimiser step was taken");
  const ev = info.lastEval;
  const record: RunRecord = {
    title: `${c.model.name} (${c.strategy.name}${c.strategy.topN !== undefined ? `:${c.strategy.topN}` : ""})`,
    task: c.task,
    model: c.model,
    config: JSON.parse(JSON.stringify(c, (k, v) => (k === "generator" ? undefined : v))),
    metrics: info.rows,
    createdAt: new Date().toISOString(),
    strategy: c.strategy.name,
    freezeAudit: freezeAuditRecord(summary, info.auditVerified, note),
    timing: info.timing,
  };
  if (ev?.labels) record.labels = ev.labels;
  if (ev?.confusion) record.confusion = ev.confusion;
  if (ev?.perClass) record.perClass = ev.perClass;
  if (ev?.mistakes) record.mistakes = ev.mistakes;
  if (t.options.baselines) record.baselines = t.options.baselines;
  if (info.dataset) record.dataset = { ...info.dataset, ...t.options.datasetStats };
  const es = c.earlyStopping;
  const best =
    info.bestStep !== null && info.bestValue !== null
      ? { metric: es?.metric ?? "loss", value: info.bestValue, step: info.bestStep }
      : null;
  const save = async (dir: string): Promise<RunResult["paths"]> => {
    await mkdir(dir, { recursive: true });
    const paths: RunResult["paths"] = { runDir: dir, ...(await saveWeights(t, dir, !!t.options.saveMerged)) };
    paths.report = await writeReport(dir, record);
    paths.summary = await writeSummary(dir, record);
    paths.metrics = join(dir, "metrics.jsonl");
    if (dir !== t.options.runDir) writeFileSync(paths.metrics, info.rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
    return paths;
  };
  const result: RunResult = {
    metrics: info.rows,
    eval: ev,
    best,
    steps: t.step,
    skippedSteps: info.skippedSteps,
    paths: {},
    record,
    save: async (dir) => {
      await save(dir);
    },
  };
  // Never write a final model from a halted (non-finite) run.
  if (t.options.runDir && !info.halted) result.paths = await save(t.options.runDir);
  return result;
}
