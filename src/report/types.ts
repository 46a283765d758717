/**
 * The run report's input contract: one JSON-serialisable {@link RunRecord} per training run.
 *
 * The trainer (or the demo) fills it from what it already has (resolved config, the
 * `metrics.jsonl` rows, the evaluation on the held-out split, the freeze check) and hands it to
 * `renderReport` / `summaryText`. Every field except `title`, `task`, `model`, `config` and
 * `metrics` is optional; a section whose data is absent is left out of the report. Values may
 * come from untrusted files, so the renderers escape every string and skip non-finite numbers.
 *
 * @example
 * ```ts
 * const run: RunRecord = {
 *   title: "distilbert on reviews.csv", task: "text-classification",
 *   model: { name: "./distilbert", modelType: "distilbert", task: "text-classification" },
 *   config: resolved, metrics: rows, labels: ["neg", "pos"], confusion: [[410, 22], [31, 437]],
 * };
 * await writeReport("./runs/2024-06-01", run);
 * ```
 */

/** One logged row, as in `metrics.jsonl`. Any extra numeric key is charted as its own metric. */
export interface MetricRow {
  /** Optimizer step (global, 1-based or 0-based: the x axis of every chart). */
  step: number;
  /** Fractional epoch at this step. */
  epoch: number;
  /** `train` rows are logged every few steps, `eval` rows after each evaluation. */
  split: "train" | "eval";
  loss?: number;
  /** Learning rate after the scheduler (train rows). */
  lr?: number;
  /** In [0, 1]. */
  accuracy?: number;
  /** In [0, 1]. */
  f1Macro?: number;
  perplexity?: number;
  [key: string]: number | string | undefined;
}

/** Precision/recall/F1 of one class on the evaluated split. */
export interface PerClassMetrics {
  label: string;
  precision: number;
  recall: number;
  f1: number;
  /** Number of examples whose true label is this class. */
  support: number;
}

/** A wrongly predicted example, reported most confident first. */
export interface Mistake {
  /** Row index in the evaluated split, so the user can find it. */
  index: number;
  /** True label. */
  label: string;
  predicted: string;
  /** Probability the model gave `predicted`, in [0, 1]. */
  confidence: number;
  /** Input text (shown quoted, escaped, truncated). */
  text?: string;
  /** Input image as base64 PNG without the `data:` prefix (shown inline). */
  imagePng?: string;
}

/** Result of the trainer's freeze check (trainable vs frozen parameter counts). */
export interface FreezeAudit {
  /** Number of trainable parameter elements. */
  trainable: number;
  /** Number of parameter elements in the model. */
  total: number;
  /** Per top-level module (HF dotted names such as `bert.encoder.layer.0`). */
  byModule: { name: string; trainable: number; frozen: number }[];
  /** True when the trainer checked after the first step that no frozen parameter changed. */
  verified: boolean;
  /** e.g. "frozen BatchNorm in inference mode", or what failed the check. */
  note?: string;
}

/** Sizes and shape of the data the run saw. */
export interface DatasetStats {
  train: number;
  eval?: number;
  test?: number;
  /** Training examples per class. */
  classCounts?: Record<string, number>;
  /** Examples cut to the maximum sequence length. */
  truncated?: number;
  /** e.g. `{ min, mean, p50, p95, max }` tokens per example. */
  lengthStats?: Record<string, number>;
}

/** Wall time and throughput of the run. */
export interface Timing {
  totalSeconds: number;
  stepsPerSecond?: number;
  samplesPerSecond?: number;
  tokensPerSecond?: number;
  /** Time the training loop spent waiting for data. */
  dataWaitSeconds?: number;
  /** e.g. "native (avx2)" or "reference". */
  backend?: string;
  threads?: number;
}

/**
 * One entry of the baseline comparison: the same data and compute budget spent another way.
 * Entries with the same `metric` are compared with each other.
 */
export interface Baseline {
  /** e.g. "fine-tuned (LoRA)", "from scratch", "head-only". */
  name: string;
  /** e.g. "test accuracy", "test perplexity". */
  metric: string;
  value: number;
  /**
   * Marks this run's result, the one the others are compared with. When no entry of a metric is
   * marked, the first entry of that metric is taken.
   */
  ours?: boolean;
  /** Defaults from the metric name: loss, perplexity and error are lower-is-better. */
  higherIsBetter?: boolean;
  note?: string;
}

/** A generation before and after fine-tuning, same prompt and sampling settings. */
export interface GenerationSample {
  prompt: string;
  before?: string;
  after?: string;
}

/** Everything the report shows about one run. JSON-serialisable. */
export interface RunRecord {
  title: string;
  task: "text-classification" | "image-classification" | "causal-lm" | (string & {});
  model: { name: string; modelType: string; task: string };
  /** The resolved config (shown collapsed, as JSON). */
  config: Record<string, unknown>;
  metrics: MetricRow[];
  /** ISO 8601 time the run finished; shown in the header when present. */
  createdAt?: string;
  /** Strategy such as "lora", "head", "full"; shown in the header when present. */
  strategy?: string;
  /** Class names, in the order of the confusion matrix rows/columns. */
  labels?: string[];
  /** Counts: rows = true class, columns = predicted class. */
  confusion?: number[][];
  /** Derived from `confusion` when absent. */
  perClass?: PerClassMetrics[];
  mistakes?: Mistake[];
  freezeAudit?: FreezeAudit;
  dataset?: DatasetStats;
  timing?: Timing;
  baselines?: Baseline[];
  samples?: GenerationSample[];
}

/** Whether a larger value of `metric` is better (loss, perplexity and error rates are not). */
export function isHigherBetter(metric: string): boolean {
  return !/loss|perplexity|ppl|error|\berr\b|wer|cer|mse|mae|rmse/i.test(metric);
}

/** Whether `metric` is a fraction best shown as a percentage (accuracy, F1, precision, recall). */
export function isFractionMetric(metric: string): boolean {
  return /acc|f1|precision|recall|auc/i.test(metric);
}
