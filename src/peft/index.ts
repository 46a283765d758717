/**
 * `tunekit/peft`: LoRA (layer swap, merge/unmerge) and PEFT-format adapter folders.
 * @example
 * import { lora } from "tunekit";
 * const handle = lora.apply(model, { targets: ["q_proj", "v_proj"], rank: 8, alpha: 16 });
 * await lora.save(model, "./adapter", { baseModelNameOrPath: "./smollm-135m" });
 */
import { adapterStateDict, loadAdapter, saveAdapter } from "./adapter.ts";
import { applyLora, loraHandleOf } from "./lora.ts";

export * from "./adapter.ts";
export {
  AdapterError,
  type AdapterErrorCode,
  CONFIG_NAME,
  fromPeftConfig,
  type PeftConfigJson,
  stringifyPeftConfig,
  toPeftConfig,
  WEIGHTS_NAME,
} from "./config.ts";
export * from "./lora.ts";
export * from "./lora-linear.ts";
export { findTargets, linearKind, matchesName, minimalTargetNames, patternValue } from "./targets.ts";

/** The LoRA entry points under short names (`lora.apply`, `lora.save`, `lora.load`). */
export const lora = {
  apply: applyLora,
  save: saveAdapter,
  load: loadAdapter,
  stateDict: adapterStateDict,
  of: loraHandleOf,
} as const;
