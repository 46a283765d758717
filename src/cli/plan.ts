/**
 * `tunekit plan`: the dry run of `tunekit train` with the same flags and config. Loads the model
 * and the data, applies the strategy, and prints the resolved config, trainable vs total
 * parameters per phase, a memory estimate, steps, dataset statistics (with truncation) and one
 * rendered example with the trained tokens marked `[[...]]`. Nothing is trained or written.
 *
 * @example
 * ```sh
 * tunekit plan -c recipes/smollm-chat-lora.yaml
 * tunekit plan --model ./distilbert --data reviews.csv --strategy top:2 --json
 * ```
 */
import { relative } from "node:path";
import type { Module } from "../nn/module.ts";
import type { PreparedRun } from "./common.ts";
import { type CliConfig, configYaml, requireRunnable } from "./config-schema.ts";
import { configCommand, configFromCommand, strategyConfig } from "./train.ts";

const BYTES: Record<string, number> = { float32: 4, float64: 8, bfloat16: 2, float16: 2, int32: 4 };

/** Rough training memory in bytes: weights, gradients, optimizer state, activations (transformers only). */
export interface MemoryEstimate {
  weights: number;
  gradients: number;
  optimizer: number;
  /** null: no estimate for this architecture (CNNs). */
  activations: number | null;
  total: number;
}

/**
 * Weights as stored, float32 gradients and optimizer state for the trainable set, and transformer
 * activations after Korthikanti et al. (per layer about B*T*(17*H + 2.5*heads*T) floats) plus the
 * logits (x3 for softmax and its gradient). A guide, not a measurement.
 */
export function estimateMemory(model: Module, c: CliConfig, seqLen: number): MemoryEstimate {
  let weights = 0;
  let trainable = 0;
  for (const [, p] of model.namedParameters()) {
    weights += p.size * (BYTES[p.dtype] ?? 4);
    if (p.requiresGrad) trainable += p.size;
  }
  for (const [, b] of model.namedBuffers()) weights += b.value.size * (BYTES[b.value.dtype] ?? 4);
  const opt = c.optimizer.name ?? "adamw";
  const perParam = opt === "sgd" ? ((c.optimizer.momentum ?? 0.9) > 0 ? 4 : 0) : 8;
  const cfg = (model as unknown as { config?: Record<string, unknown> }).config ?? {};
  const n = (...keys: string[]) => {
    for (const k of keys) if (typeof cfg[k] === "number") return cfg[k] as number;
    return undefined;
  };
  const H = n("hidden_size", "n_embd", "dim");
  const L = n("num_hidden_layers", "n_layer", "n_layers");
  const heads = n("num_attention_heads", "n_head", "n_heads");
  let activations: number | null = null;
  if (H && L && heads && seqLen > 0) {
    const B = c.train.batchSize ?? 8;
    const T = seqLen;
    const isLm = (model as unknown as { task?: string }).task === "causal-lm";
    const V = isLm ? (n("vocab_size") ?? 0) : 0;
    activations = 4 * (L * B * T * (17 * H + 2.5 * heads * T) + 3 * B * T * V);
  }
  const gradients = trainable * 4;
  const optimizer = trainable * perParam;
  return { weights, gradients, optimizer, activations, total: weights + gradients + optimizer + (activations ?? 0) };
}

/** Optimizer steps the run will take (all phases), as the trainer counts them. */
export function plannedSteps(c: CliConfig, numExamples: number): { perEpoch: number; total: number } {
  const batches = Math.ceil(numExamples / (c.train.batchSize ?? 8));
  const perEpoch = Math.ceil(batches / (c.train.gradAccumulation ?? 1));
  const epochs = (c.train.epochs ?? 3) + (c.strategy.name === "two-phase" ? (c.strategy.headEpochs ?? 1) : 0);
  const total = epochs * perEpoch;
  return { perEpoch, total: c.train.maxSteps !== undefined ? Math.min(c.train.maxSteps, total) : total };
}

/** The rendered first training example (text) or a description of the first image. */
async function example(r: PreparedRun): Promise<string> {
  const { renderExample } = await import("../data/text/index.ts");
  if (r.text && r.tokenizer) {
    const ex = r.text.train.examples[0];
    if (!ex) return "(no examples)";
    return renderExample(ex, r.tokenizer, r.labels ? { labelNames: r.labels } : {});
  }
  if (r.images) {
    const it = r.images.train.items[0];
    if (!it) return "(no images)";
    const p = r.preprocessor;
    const size = p?.centerCrop ?? (p?.resize && "height" in p.resize ? p.resize : undefined);
    return `${relative(process.cwd(), it.path)} -> label: ${r.images.train.classes[it.label]} (${it.label}); input ${size ? `3x${size.height}x${size.width}` : "?"}${r.images.transform.augment ? ", augmented" : ""}`;
  }
  return "";
}

export async function main(argv: string[]): Promise<void> {
  const cmd = configCommand("tunekit plan", "Dry run of 'tunekit train': config, parameters, memory, data, an example")
    .option("--resume", "(accepted for symmetry with train; ignored)")
    .option("--json", "print one JSON object");
  await cmd.parseAsync(argv, { from: "user" });
  const c = configFromCommand(cmd);
  requireRunnable(c);
  // The heavy modules load only once the command line is known to be valid.
  const { dataLines, fmtBytes, fmtCount, prepareRun, setupBackend } = await import("./common.ts");
  const { manualSeed } = await import("../tensor/rng.ts");
  const { prepareStrategy, trainableSummary } = await import("../train/index.ts");
  await setupBackend();
  const r = await prepareRun(c);
  const s = strategyConfig(c);
  manualSeed(c.train.seed ?? 42);
  const plan = prepareStrategy(r.model, s);
  const phases = plan.phases.map((_, i) => {
    plan.apply(i, 0);
    return trainableSummary(r.model);
  });
  const seqLen = r.text ? Math.min(r.text.train.stats.maxLength, r.text.train.stats.max) : 0;
  const mem = estimateMemory(r.model, c, seqLen);
  const numTrain = r.text?.train.examples.length ?? r.images?.train.items.length ?? 0;
  const steps = plannedSteps(c, numTrain);
  const ex = await example(r);
  const data = dataLines(r);
  if (cmd.opts().json) {
    const out = {
      config: c,
      task: r.task,
      model: { path: r.modelDir, modelType: r.model.modelType, parameters: r.model.numParameters() },
      phases: phases.map((p) => ({ trainable: p.trainable, total: p.total, line: p.line })),
      memory: mem,
      steps,
      data: {
        train: r.text?.train.stats ?? {
          images: r.images?.train.items.length,
          classCounts: r.images?.train.classCounts,
        },
        validation:
          r.text?.validation?.stats ?? (r.images?.validation ? { images: r.images.validation.items.length } : null),
        labels: r.labels ?? null,
        skipped: r.text?.skipped ?? [],
      },
      example: ex,
      warnings: r.warnings,
    };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  const mb = (x: number | null) => (x === null ? "not estimated for this architecture" : fmtBytes(x));
  const lines = [
    "# resolved config",
    configYaml(c).trimEnd(),
    "",
    `model:      ${r.modelDir} (${r.model.modelType}, ${r.task}, ${fmtCount(r.model.numParameters())} parameters)`,
    ...r.warnings.map((w) => `note:       ${w}`),
    ...phases.map(
      (p, i) =>
        `${phases.length > 1 ? `phase ${i + 1}:    ` : "strategy:   "}${s.name}${s.topN !== undefined ? `:${s.topN}` : ""}: ${p.line}`,
    ),
    `memory:     ~${fmtBytes(mem.total)} (weights ${fmtBytes(mem.weights)}, gradients ${fmtBytes(mem.gradients)}, optimizer ${fmtBytes(mem.optimizer)}, activations ${mb(mem.activations)})`,
    `steps:      ${steps.total} optimizer steps (${steps.perEpoch} per epoch, batch ${c.train.batchSize ?? 8}${(c.train.gradAccumulation ?? 1) > 1 ? ` x ${c.train.gradAccumulation} accumulated` : ""})`,
    "",
    "# data",
    ...data,
    "",
    "# example (trained tokens in [[...]])",
    ex,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
