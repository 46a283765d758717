/**
 * tunekit: fine-tune pre-trained models in TypeScript.
 *
 * Importing this module picks the compute backend once (native C++ when it built, else the
 * reference backend with one warning).
 *
 * @example
 * import { loadPretrained, lora } from "tunekit";
 * const model = await loadPretrained("./smollm-135m", { task: "causal-lm" });
 * lora.apply(model, { targets: ["q_proj", "v_proj"], rank: 8, alpha: 16 });
 */
import { initBackend } from "./backend/index.ts";

await initBackend();

export * from "./tensor/tensor.ts";
export * from "./tensor/errors.ts";
export { Generator, manualSeed } from "./tensor/rng.ts";
export { stepScope, type StepScopeOptions } from "./tensor/scope.ts";
export { StoragePool, storagePool } from "./tensor/pool.ts";
export type { DType } from "./tensor/dtype.ts";
export { backend, initBackend, setBackend, withBackend, referenceBackend } from "./backend/index.ts";
export * from "./autograd/index.ts";
export * as ops from "./ops/index.ts";
export * as nn from "./nn/index.ts";
export * as optim from "./optim/index.ts";
export * from "./peft/index.ts";
export * from "./models/index.ts";
export * from "./tokenize/index.ts";
export * as formats from "./formats/safetensors.ts";
export * as textData from "./data/text/index.ts";
export * as imageData from "./data/images/index.ts";
export * as report from "./report/index.ts";
export { Trainer } from "./train/index.ts";
export type { TrainerConfig } from "./train/index.ts";
export { prepareTextData } from "./data/text/index.ts";
