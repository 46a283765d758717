/**
 * The callback interface and the metric loggers, composed (not inherited): a JSONL file, a
 * progress line, an in-memory list. Each gets every row; the progress line also gets ticks.
 *
 * @example
 * ```ts
 * const stopAt5: TrainerCallback = { onStepEnd: (s) => (s.step >= 5 ? "stop" : undefined) };
 * new Trainer({ model, train, callbacks: [stopAt5], loggers: [new MemoryLogger()] });
 * ```
 */
import { appendFileSync, readFileSync, writeFileSync } from "node:fs";
import type { MetricRow } from "../report/types.ts";

/** What the trainer tells callbacks after each optimizer step. */
export interface StepInfo {
  step: number;
  epoch: number;
  phase: number;
  loss: number;
  lr: number;
  /** True when this step's update was dropped (non-finite loss or gradient). */
  skipped: boolean;
}

/**
 * Hooks into the loop (all optional). Returning (or resolving to) "stop" from `onStepEnd`/`onEvaluate` ends training
 * after the current step, like HF's `control.should_training_stop`.
 */
export interface TrainerCallback {
  onStepEnd?(s: StepInfo): unknown;
  onEvaluate?(row: MetricRow): unknown;
  onEpochEnd?(epoch: number): void | Promise<void>;
  onTrainEnd?(rows: readonly MetricRow[]): void | Promise<void>;
}

/** Receives every metric row; `progress` is called after every step for live displays. */
export interface Logger {
  log(row: MetricRow): void;
  progress?(p: ProgressInfo): void;
  close?(): void;
}

export interface ProgressInfo {
  step: number;
  totalSteps: number;
  loss: number;
  lr: number;
  /** samples/s or tokens/s. */
  throughput: number;
  unit: "samples/s" | "tokens/s";
  elapsedMs: number;
}

/** Appends one JSON object per row to `metrics.jsonl`; on resume keeps only the first `keepLines` lines. */
export class JsonlLogger implements Logger {
  constructor(
    readonly path: string,
    keepLines?: number,
  ) {
    if (keepLines === undefined) writeFileSync(path, "");
    else {
      let text = "";
      try {
        text = readFileSync(path, "utf8");
      } catch {
        text = "";
      }
      const lines = text
        .split("\n")
        .filter((l) => l.length > 0)
        .slice(0, keepLines);
      writeFileSync(path, lines.map((l) => `${l}\n`).join(""));
    }
  }
  log(row: MetricRow): void {
    appendFileSync(this.path, `${JSON.stringify(row)}\n`);
  }
}

/** Keeps the rows in memory. */
export class MemoryLogger implements Logger {
  readonly rows: MetricRow[] = [];
  log(row: MetricRow): void {
    this.rows.push(row);
  }
}

function fmtTime(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(s % 60).padStart(2, "0")}s`;
}

/** A one-line progress display on a TTY (rewritten in place), plain lines every `every` steps otherwise. */
export class ProgressLogger implements Logger {
  private last = 0;
  constructor(
    private readonly out: NodeJS.WriteStream = process.stderr,
    private readonly every = 10,
  ) {}
  progress(p: ProgressInfo): void {
    const eta = p.step > 0 ? (p.elapsedMs / p.step) * (p.totalSteps - p.step) : 0;
    const line = `step ${p.step}/${p.totalSteps} loss ${p.loss.toFixed(4)} lr ${p.lr.toExponential(2)} ${p.throughput.toFixed(1)} ${p.unit} ETA ${fmtTime(eta)}`;
    if (this.out.isTTY) {
      const width = 30;
      const done = Math.round((width * p.step) / Math.max(1, p.totalSteps));
      this.out.write(`\r[${"#".repeat(done)}${"-".repeat(width - done)}] ${line}\x1b[K`);
      if (p.step >= p.totalSteps) this.out.write("\n");
    } else if (p.step - this.last >= this.every || p.step >= p.totalSteps) {
      this.last = p.step;
      this.out.write(`${line}\n`);
    }
  }
  log(row: MetricRow): void {
    if (row.split !== "eval") return;
    const parts = Object.entries(row)
      .filter(([k, v]) => typeof v === "number" && !["step", "epoch"].includes(k))
      .map(([k, v]) => `${k} ${(v as number).toFixed(4)}`);
    this.out.write(`${this.out.isTTY ? "\r\x1b[K" : ""}eval @ step ${row.step}: ${parts.join(", ")}\n`);
  }
}
