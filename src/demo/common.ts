/**
 * What the three demo tasks share: options, the per-arm training call (the same `Trainer` a user
 * runs, so every arm gets the same data, steps, batch size and schedule), the results shape, and
 * the reports with the baseline comparison filled in once every arm has finished.
 *
 * A task's folder is the fine-tuned run (`config.json`, `metrics.jsonl`, the model or adapter,
 * `report.html`, `summary.txt`); each baseline has `baselines/<arm>/` with its own metrics and
 * report, no weights.
 *
 * @example
 * ```ts
 * const arm = await trainArm(o, { name: "from scratch", kind: "scratch", trainer: { model, train, eval, maxSteps: 90 } });
 * await writeReports(result, arms);
 * ```
 */
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { writeReport, writeSummary } from "../report/index.ts";
import type { Baseline, GenerationSample, RunRecord } from "../report/types.ts";
import { type RunResult, Trainer, type TrainerConfig } from "../train/index.ts";
import type { DemoTask } from "./tasks.ts";

export { DEMO_TASKS, type DemoTask, TASK_SUMMARY } from "./tasks.ts";

/** Options every task gets. */
export interface DemoOptions {
  /** This task's run folder (the fine-tuned run; baselines go under `baselines/`). */
  dir: string;
  /** Tiny budgets (tests, smoke runs): seconds, not minutes; the numbers mean little. */
  quick: boolean;
  /** Folder holding `tiny-lm/` and `digits-resnet/`. */
  modelsDir: string;
  seed: number;
  /** No progress bars. */
  quiet: boolean;
  /** Progress lines (stderr in the CLI). */
  log: (line: string) => void;
}

/** What kind of run an arm is: the fine-tuned one, or a baseline. */
export type ArmKind = "finetuned" | "scratch" | "head" | "extra";

/** One arm's outcome. */
export interface ArmResult {
  name: string;
  kind: ArmKind;
  /** The task's metric on the held-out split. */
  value: number;
  /** Trainable parameter elements (0 for an untrained reference). */
  trainable: number;
  steps: number;
  seconds: number;
  /** The run folder holding its report (absent for an evaluation-only arm). */
  dir?: string;
  note?: string;
  /** The trainer's record (absent for an evaluation-only arm). */
  record?: RunRecord;
}

/** A finished task: every arm, the fine-tuned one first. */
export interface DemoResult {
  task: DemoTask;
  /** e.g. "test accuracy", "held-out perplexity". */
  metric: string;
  higherIsBetter: boolean;
  arms: ArmResult[];
  dir: string;
  seconds: number;
  /** One line on the data (sizes, split). */
  data: string;
  samples?: GenerationSample[];
  /** What `tunekit predict`/`eval` read from the run folder (`run.json`). */
  runMeta?: Record<string, unknown>;
}

/** A task's entry point. */
export type DemoRunner = (o: DemoOptions) => Promise<DemoResult>;

/** A training arm: its name, kind, and the trainer options besides `quiet`/`runDir`. */
export interface ArmSpec {
  name: string;
  kind: ArmKind;
  trainer: TrainerConfig;
  /** The eval metric to report (e.g. "accuracy", "perplexity"). */
  metric: string;
  note?: string;
}

/** Folder name of a baseline arm. */
export function armSlug(name: string): string {
  return name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-|-$/g, "");
}

/**
 * Trains one arm with the library's `Trainer`. The fine-tuned arm writes the task folder as a
 * normal run; baselines train without a run folder and get their report in {@link writeReports}.
 */
export async function trainArm(o: DemoOptions, spec: ArmSpec): Promise<ArmResult & { run: RunResult }> {
  const own = spec.kind === "finetuned";
  const t0 = performance.now();
  const run = await new Trainer({
    ...spec.trainer,
    quiet: o.quiet,
    ...(own ? { runDir: o.dir } : {}),
  }).fit();
  const seconds = (performance.now() - t0) / 1000;
  const value = run.eval?.metrics[spec.metric];
  if (value === undefined) throw new Error(`demo: the ${spec.name} run has no eval ${spec.metric}`);
  const audit = run.record.freezeAudit;
  return {
    name: spec.name,
    kind: spec.kind,
    value,
    trainable: audit?.trainable ?? 0,
    steps: run.steps,
    seconds,
    dir: own ? o.dir : join(o.dir, "baselines", armSlug(spec.name)),
    record: run.record,
    run,
    ...(spec.note ? { note: spec.note } : {}),
  };
}

/** How a task's arms are logged and trained: shared settings, the metric and its wording. */
export interface ArmRunnerOptions {
  task: string;
  /** Arms in the task, for the "2/3" counter. */
  total: number;
  /** Arms already counted (e.g. an evaluation-only arm logged by the task). */
  done?: number;
  /** Trainer settings every arm shares (data, budget, seed). */
  common: Omit<TrainerConfig, "model">;
  metric: string;
  /** e.g. "test accuracy". */
  label: string;
  format: (v: number) => string;
  /** e.g. "90 steps of 16". */
  budget: string;
  /** The task's list of results; each arm is appended. */
  arms: ArmResult[];
}

/** Returns `arm(name, kind, cfg, note)`: trains one arm with the shared settings, logging before and after. */
/** The classification tasks' metric for {@link armRunner}: test accuracy as a percentage. */
export const TEST_ACCURACY = {
  metric: "accuracy",
  label: "test accuracy",
  format: (v: number) => `${(100 * v).toFixed(1)}%`,
} as const;

export function armRunner(o: DemoOptions, r: ArmRunnerOptions) {
  let n = r.done ?? 0;
  return async (
    name: string,
    kind: ArmKind,
    cfg: Partial<TrainerConfig> & Pick<TrainerConfig, "model">,
    note: string,
  ): Promise<ArmResult & { run: RunResult }> => {
    o.log(`${r.task} ${++n}/${r.total}: ${name} (${note}), ${r.budget}`);
    const res = await trainArm(o, { name, kind, metric: r.metric, note, trainer: { ...r.common, ...cfg } });
    o.log(`${r.task}: ${name}: ${r.label} ${r.format(res.value)} (${res.seconds.toFixed(0)} s)`);
    r.arms.push(res);
    return res;
  };
}

/** The baseline comparison as the report takes it, with `ours` on the arm at `oursIndex`. */
export function baselineEntries(
  r: Pick<DemoResult, "metric" | "higherIsBetter" | "arms">,
  oursIndex: number,
): Baseline[] {
  return r.arms.map((a, i) => ({
    name: a.name,
    metric: r.metric,
    value: a.value,
    higherIsBetter: r.higherIsBetter,
    ...(i === oursIndex ? { ours: true } : {}),
    note: [
      a.note,
      a.trainable ? `${a.trainable.toLocaleString("en-US")} trainable` : "",
      a.steps ? `${a.steps} steps` : "",
    ]
      .filter(Boolean)
      .join(", "),
  }));
}

/**
 * Rewrites the fine-tuned run's report with the comparison (and samples), and writes each
 * baseline's `report.html`, `summary.txt` and `metrics.jsonl` under `baselines/<arm>/`.
 */
export async function writeReports(r: DemoResult): Promise<void> {
  for (const [i, a] of r.arms.entries()) {
    if (!a.record || !a.dir) continue;
    const record: RunRecord = {
      ...a.record,
      title: `demo ${r.task}: ${a.name}`,
      baselines: baselineEntries(r, i),
    };
    if (i === 0 && r.samples) record.samples = r.samples;
    await mkdir(a.dir, { recursive: true });
    if (a.kind !== "finetuned")
      writeFileSync(join(a.dir, "metrics.jsonl"), record.metrics.map((m) => `${JSON.stringify(m)}\n`).join(""));
    await writeReport(a.dir, record);
    await writeSummary(a.dir, record);
  }
}
