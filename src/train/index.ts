/**
 * `tunekit/train`: strategies, the freeze audit, the `Trainer` loop, metrics, checkpoints and resume.
 *
 * @example
 * ```ts
 * import { Trainer } from "./train/index.ts";
 * const run = await new Trainer({ model, train: data.train, eval: data.validation, strategy: "lora",
 *   lora: { targets: ["q_proj", "v_proj"], rank: 8, alpha: 16 }, optimizer: { lr: 2e-4 }, runDir: "./runs/a" }).fit();
 * ```
 */
export * from "./audit.ts";
export * from "./checkpoint.ts";
export * from "./config.ts";
export * from "./data.ts";
export * from "./evaluate.ts";
export * from "./loggers.ts";
export * from "./metrics.ts";
export * from "./run.ts";
export * from "./strategies.ts";
export * from "./trainer.ts";
