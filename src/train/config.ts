/**
 * The trainer's config object: typed, with documented defaults, resolved once into a plain JSON
 * object (written to the run directory as `config.json` and hashed into every checkpoint, so a
 * resume with another config is refused).
 *
 * @example
 * ```ts
 * const cfg: TrainerConfig = { model, train: data.train, eval: data.validation, strategy: "lora",
 *   lora: { targets: ["q_proj", "v_proj"], rank: 8, alpha: 16 }, optimizer: { lr: 2e-4 }, epochs: 3, runDir: "./runs/a" };
 * ```
 */
import { createHash } from "node:crypto";
import type { Module } from "../nn/module.ts";
import type { SchedulerName } from "../optim/schedule.ts";
import type { LoraConfig } from "../peft/lora.ts";
import type { Baseline, DatasetStats } from "../report/types.ts";
import { ValueError } from "../tensor/errors.ts";
import type { DataSpec, EvalSource } from "./data.ts";
import type { Logger, TrainerCallback } from "./loggers.ts";
import type { EarlyStoppingConfig, StrategyConfig } from "./strategies.ts";

/** The task decides the metrics; default from the model (`sequence-classification` -> text-classification). */
export type TrainTask =
  | "text-classification"
  | "image-classification"
  | "causal-lm"
  | "token-classification"
  | "multi-label"
  | "regression";

/** Optimizer settings (PyTorch names in camelCase). */
export interface OptimizerConfig {
  /** Default "adamw". */
  name?: "adamw" | "adam" | "sgd";
  /** Default 5e-5 (HF Trainer); 2e-4 is typical for LoRA, 1e-3 for a head. */
  lr?: number;
  /** Default 0.01 for AdamW, 0 otherwise; never applied to biases and norm weights. */
  weightDecay?: number;
  /** Adam betas, default [0.9, 0.999]. */
  betas?: [number, number];
  eps?: number;
  /** SGD momentum (default 0.9) and Nesterov. */
  momentum?: number;
  nesterov?: boolean;
  /** Layer-wise lr decay factor per block from the top (e.g. 0.8). */
  layerwiseLrDecay?: number;
  /** Per-group overrides: first matching glob / module path wins. */
  groups?: { pattern: string; lr?: number; weightDecay?: number }[];
}

export interface ScheduleConfig {
  /** Default "linear" (HF Trainer). */
  name?: SchedulerName;
  warmupSteps?: number;
  /** Fraction of the phase's steps (used when warmupSteps is absent). */
  warmupRatio?: number;
}

export interface CheckpointConfig {
  /** Save every N optimizer steps (0/absent: only at the end of each epoch when `everyEpoch`). */
  every?: number;
  /** Also save at each epoch end (default false). */
  everyEpoch?: boolean;
  /** Keep this many newest checkpoints (default 2). */
  keepLast?: number;
  /** Also keep the checkpoint of the best evaluation (default true when early stopping/eval is on). */
  keepBest?: boolean;
}

export interface NonFiniteConfig {
  /** "skip" (default): drop the update, count it; "halt": stop at the first one. */
  policy?: "skip" | "halt";
  /** Halt after this many consecutive skipped steps (default 5). */
  maxConsecutive?: number;
}

/** Everything the trainer needs. Only `model` and `train` are required. */
export interface TrainerConfig {
  /** A loaded model (forward({..., labels}) -> { logits, loss }). */
  model: Module;
  train: DataSpec;
  eval?: DataSpec | EvalSource;
  task?: TrainTask;
  /** "full" (default), "head", "top:N", "two-phase", "lora", or a {@link StrategyConfig}. */
  strategy?: string | StrategyConfig;
  /** LoRA settings for strategy "lora" (same as `strategy.lora`). */
  lora?: LoraConfig;
  optimizer?: OptimizerConfig;
  schedule?: ScheduleConfig;
  /** Default 3 (HF Trainer) unless maxSteps is given. */
  epochs?: number;
  /** Stop after this many optimizer steps (overrides epochs). */
  maxSteps?: number;
  /** Per micro-batch (default 8); ignored when `train` is a ready loader. */
  batchSize?: number;
  /** Eval batch size (default batchSize). */
  evalBatchSize?: number;
  /** Micro-batches per optimizer step (default 1); the update equals one batch of their union. */
  gradAccumulation?: number;
  /** Max global gradient norm (default 1.0, HF); 0 or null disables clipping. */
  clipGradNorm?: number | null;
  /** Evaluate every N optimizer steps (default: off). */
  evalEvery?: number;
  /** Evaluate at each epoch end (default true when there is eval data). */
  evalEachEpoch?: boolean;
  /**
   * Stop when the eval metric stops improving (optionally restoring the best weights). With
   * `two-phase` it judges the final phase only, counted from that phase's start; a phase's own
   * `earlyStopping` ends that phase instead.
   */
  earlyStopping?: EarlyStoppingConfig | null;
  checkpoint?: CheckpointConfig;
  nonFinite?: NonFiniteConfig;
  /** Seed for data order, dropout (the default generator) and new heads (default 42). */
  seed?: number;
  /** Run directory (config, metrics.jsonl, checkpoints, model, report). None: nothing written. */
  runDir?: string;
  /** Continue from the newest complete checkpoint in runDir/checkpoints. */
  resume?: boolean;
  /** Log a train row every N steps (default 10). */
  logEvery?: number;
  /** No progress output (tests). */
  quiet?: boolean;
  /**
   * Run each optimizer step inside `stepScope` (default true, with `releaseActivations`): the
   * step's intermediates go back to a storage pool during backward and when the step ends, instead
   * of waiting for the GC.
   * Tensors a callback or metric must keep past a step have to hang off the model or optimizer.
   */
  stepScope?: boolean;
  callbacks?: TrainerCallback[];
  loggers?: Logger[];
  /** Shown in the report's baseline comparison. */
  baselines?: Baseline[];
  /** Extra dataset statistics for the report (class counts, truncation, length stats). */
  datasetStats?: Partial<DatasetStats>;
  /** Model name for the report (default the loaded folder). */
  modelName?: string;
  /** LoRA: also write the merged model at the end (default false). */
  saveMerged?: boolean;
}

/** The JSON-able part of a config with defaults filled (what config.json and the config hash hold). */
export interface ResolvedConfig {
  task: TrainTask;
  strategy: StrategyConfig;
  optimizer: Required<Omit<OptimizerConfig, "layerwiseLrDecay" | "groups">> &
    Pick<OptimizerConfig, "layerwiseLrDecay" | "groups">;
  schedule: { name: SchedulerName; warmupSteps?: number; warmupRatio?: number };
  epochs: number;
  maxSteps: number | null;
  batchSize: number;
  evalBatchSize: number;
  gradAccumulation: number;
  clipGradNorm: number | null;
  evalEvery: number | null;
  evalEachEpoch: boolean;
  earlyStopping: EarlyStoppingConfig | null;
  checkpoint: Required<CheckpointConfig>;
  nonFinite: Required<NonFiniteConfig>;
  seed: number;
  logEvery: number;
  model: { name: string; modelType: string; task: string };
}

function posInt(v: number | undefined, name: string, dflt: number): number {
  const x = v ?? dflt;
  if (!(Number.isSafeInteger(x) && x >= 1))
    throw new ValueError(`config: ${name} must be a positive integer, got ${v}`);
  return x;
}

/** Defaults of the task from the model's head. */
export function defaultTask(model: Module): TrainTask {
  const t = (model as unknown as { task?: string }).task;
  if (t === "causal-lm") return "causal-lm";
  if (t === "image-classification") return "image-classification";
  if (t === "token-classification") return "token-classification";
  return "text-classification";
}

/** Fills defaults and validates; `strategy` is parsed separately and passed in. */
export function resolveConfig(c: TrainerConfig, strategy: StrategyConfig, hasEval: boolean): ResolvedConfig {
  const o = c.optimizer ?? {};
  const name = o.name ?? "adamw";
  const lr = o.lr ?? 5e-5;
  if (!(lr > 0)) throw new ValueError(`config: optimizer.lr must be > 0, got ${o.lr}`);
  if (!["adamw", "adam", "sgd"].includes(name))
    throw new ValueError(`config: optimizer.name must be adamw, adam or sgd, got '${name}'`);
  const m = c.model as unknown as { modelType?: string; task?: string; sourceDir?: string };
  const clip = c.clipGradNorm === undefined ? 1.0 : c.clipGradNorm || null;
  return {
    task: c.task ?? defaultTask(c.model),
    strategy,
    optimizer: {
      name,
      lr,
      weightDecay: o.weightDecay ?? (name === "adamw" ? 0.01 : 0),
      betas: o.betas ?? [0.9, 0.999],
      eps: o.eps ?? 1e-8,
      momentum: o.momentum ?? (name === "sgd" ? 0.9 : 0),
      nesterov: o.nesterov ?? false,
      ...(o.layerwiseLrDecay !== undefined ? { layerwiseLrDecay: o.layerwiseLrDecay } : {}),
      ...(o.groups ? { groups: o.groups } : {}),
    },
    schedule: {
      name: c.schedule?.name ?? "linear",
      warmupSteps: c.schedule?.warmupSteps,
      warmupRatio: c.schedule?.warmupRatio,
    },
    epochs: posInt(c.epochs, "epochs", 3),
    maxSteps: c.maxSteps === undefined ? null : posInt(c.maxSteps, "maxSteps", 1),
    batchSize: posInt(c.batchSize, "batchSize", 8),
    evalBatchSize: posInt(c.evalBatchSize ?? c.batchSize, "evalBatchSize", 8),
    gradAccumulation: posInt(c.gradAccumulation, "gradAccumulation", 1),
    clipGradNorm: clip,
    evalEvery: c.evalEvery ? posInt(c.evalEvery, "evalEvery", 1) : null,
    evalEachEpoch: c.evalEachEpoch ?? hasEval,
    earlyStopping: c.earlyStopping ?? null,
    checkpoint: {
      every: c.checkpoint?.every ?? 0,
      everyEpoch: c.checkpoint?.everyEpoch ?? false,
      keepLast: c.checkpoint?.keepLast ?? 2,
      keepBest: c.checkpoint?.keepBest ?? true,
    },
    nonFinite: {
      policy: c.nonFinite?.policy ?? "skip",
      maxConsecutive: posInt(c.nonFinite?.maxConsecutive, "nonFinite.maxConsecutive", 5),
    },
    seed: c.seed ?? 42,
    logEvery: posInt(c.logEvery, "logEvery", 10),
    model: {
      name: c.modelName ?? m.sourceDir ?? m.modelType ?? c.model.constructor.name,
      modelType: m.modelType ?? "custom",
      task: m.task ?? "custom",
    },
  };
}

/** SHA-256 of the resolved config, minus fields that may change across a resume (logging). */
export function configHash(r: ResolvedConfig): string {
  const { logEvery: _l, checkpoint: _c, ...rest } = r;
  return createHash("sha256").update(configJson(rest)).digest("hex").slice(0, 16);
}

/** JSON of a (resolved) config without live objects (LoRA `generator`). */
export function configJson(v: unknown, indent?: number): string {
  return JSON.stringify(v, (k, x) => (k === "generator" ? undefined : x), indent);
}
