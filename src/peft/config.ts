/**
 * `adapter_config.json` <-> `LoraConfig`. Field names and defaults are PEFT's `LoraConfig`
 * (`peft/tuners/lora/config.py`); the file is written as PEFT writes it (`json.dumps(indent=2,
 * sort_keys=True)`, `inference_mode: true`). Unknown fields are tolerated when reading; fields that
 * change the math in ways tunekit does not implement (DoRA, PiSSA, ...) are refused.
 */
import { FormatError } from "../formats/errors.ts";
import type { LoraConfig, ResolvedLoraConfig, TaskType } from "./lora.ts";

/** Codes an {@link AdapterError} carries. */
export type AdapterErrorCode =
  | "missing_file" // adapter_config.json or adapter_model.safetensors is absent
  | "bad_json" // adapter_config.json is not a JSON object
  | "bad_config" // a config field has the wrong type or value
  | "unsupported" // a PEFT feature tunekit does not implement (use_dora, pissa, ...)
  | "bad_key" // a tensor name that is not a PEFT LoRA key
  | "unknown_module" // a key names a module the model lacks (or that is not a target)
  | "bad_shape" // a tensor's shape does not fit its module
  | "missing_key" // a targeted module has no weights in the file
  | "not_lora" // the model has no LoRA adapter to save
  | "io"; // the folder could not be written

/**
 * A PEFT adapter folder was refused; `file` is the file and the message names the key.
 * @example
 * try { await loadAdapter(model, "./adapter"); }
 * catch (e) { if (e instanceof AdapterError && e.code === "bad_shape") console.error(e.key); }
 */
export class AdapterError extends FormatError {
  declare readonly code: AdapterErrorCode;
  /** The tensor name or config field concerned, when there is one. */
  readonly key: string | null;
  constructor(
    file: string,
    code: AdapterErrorCode,
    reason: string,
    key: string | null = null,
    options?: { cause?: unknown },
  ) {
    super(file, code, reason, options);
    this.key = key;
  }
}

export const CONFIG_NAME = "adapter_config.json";
export const WEIGHTS_NAME = "adapter_model.safetensors";

/** The `adapter_config.json` object. */
export type PeftConfigJson = Record<string, unknown>;

/** Fields written by `saveAdapter`: those every PEFT release since LoRA's `layer_replication` (0.10) reads. */
export function toPeftConfig(
  c: ResolvedLoraConfig,
  targetModules: string | string[],
  opts: {
    baseModelNameOrPath?: string | null;
    taskType?: TaskType | null;
    fanInFanOut?: boolean;
    revision?: string | null;
  },
): PeftConfigJson {
  const json: PeftConfigJson = {
    alpha_pattern: { ...c.alphaPattern },
    auto_mapping: null,
    base_model_name_or_path: opts.baseModelNameOrPath ?? null,
    bias: "none",
    fan_in_fan_out: opts.fanInFanOut ?? false,
    inference_mode: true,
    init_lora_weights: c.init,
    layer_replication: null,
    layers_pattern: c.layersPattern ?? null,
    layers_to_transform: c.layersToTransform ?? null,
    loftq_config: {},
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    megatron_config: null,
    megatron_core: "megatron.core",
    modules_to_save: c.modulesToSave.length ? [...c.modulesToSave] : null,
    peft_type: "LORA",
    r: c.rank,
    rank_pattern: { ...c.rankPattern },
    revision: opts.revision ?? null,
    target_modules: targetModules,
    task_type: opts.taskType ?? c.taskType ?? null,
    use_dora: false,
    use_rslora: c.useRslora,
  };
  if (c.excludeModules !== undefined) json.exclude_modules = c.excludeModules;
  return json;
}

/** PEFT's layout: sorted keys, two-space indent. */
export function stringifyPeftConfig(json: PeftConfigJson): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === "object"
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, sort((v as Record<string, unknown>)[k])]),
          )
        : v;
  return `${JSON.stringify(sort(json), null, 2)}\n`;
}

const isObj = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
const isStrList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === "string");

/** init_lora_weights values that mean the base weights were changed too (PiSSA, OLoRA, ...): refused. */
const BASE_CHANGING_INITS = /^(pissa|olora|corda|loftq|lora_ga|orthogonal)/i;

/**
 * Validates an `adapter_config.json` object and converts it to a `LoraConfig`.
 * Refuses what would silently give different outputs (DoRA, bias training, PiSSA-style inits, ...).
 */
export function fromPeftConfig(json: unknown, file: string): LoraConfig {
  if (!isObj(json)) throw new AdapterError(file, "bad_json", "adapter config is not a JSON object");
  const fail = (key: string, why: string, code: AdapterErrorCode = "bad_config"): never => {
    throw new AdapterError(file, code, `'${key}' ${why}`, key);
  };
  const j = json;
  if (j.peft_type !== "LORA")
    fail(
      "peft_type",
      `is ${JSON.stringify(j.peft_type)}; only "LORA" adapters are supported`,
      j.peft_type === undefined ? "bad_config" : "unsupported",
    );
  const unsupported: [string, boolean][] = [
    ["use_dora", j.use_dora === true],
    ["use_qalora", j.use_qalora === true],
    ["lora_bias", j.lora_bias === true],
    ["layer_replication", j.layer_replication != null],
    ["trainable_token_indices", j.trainable_token_indices != null],
    ["alora_invocation_tokens", j.alora_invocation_tokens != null],
    ["arrow_config", j.arrow_config != null],
    [
      "target_parameters",
      Array.isArray(j.target_parameters) ? j.target_parameters.length > 0 : j.target_parameters != null,
    ],
    ["bias", j.bias !== undefined && j.bias !== "none"],
    ["init_lora_weights", typeof j.init_lora_weights === "string" && BASE_CHANGING_INITS.test(j.init_lora_weights)],
  ];
  for (const [k, bad] of unsupported)
    if (bad) fail(k, `= ${JSON.stringify(j[k])} is not supported by tunekit's LoRA`, "unsupported");
  const num = (k: string, def: number, ok: (x: number) => boolean, what: string): number => {
    const v = j[k] ?? def;
    if (typeof v !== "number" || !ok(v)) fail(k, `must be ${what}, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const rank = num("r", 8, (x) => Number.isInteger(x) && x >= 1, "a positive integer");
  const alpha = num("lora_alpha", 8, Number.isFinite, "a finite number");
  const dropout = num("lora_dropout", 0, (x) => x >= 0 && x < 1, "in [0, 1)");
  const tm = j.target_modules;
  if (!(typeof tm === "string" || (isStrList(tm) && tm.length)))
    fail("target_modules", "must be a non-empty list of names or a regex string");
  const pattern = (k: string): Record<string, number> => {
    const v = j[k] ?? {};
    if (!isObj(v) || !Object.values(v).every((x) => typeof x === "number" && Number.isFinite(x)))
      fail(k, "must map patterns to numbers");
    if (k === "rank_pattern" && !Object.values(v as object).every((x) => Number.isInteger(x) && x >= 1))
      fail(k, "ranks must be positive integers");
    return { ...(v as Record<string, number>) };
  };
  const mts = j.modules_to_save ?? null;
  if (mts !== null && !isStrList(mts)) fail("modules_to_save", "must be null or a list of names");
  const init = j.init_lora_weights ?? true;
  if (typeof init !== "boolean" && init !== "gaussian" && typeof init !== "string")
    fail("init_lora_weights", "must be a boolean or a string");
  const ex = j.exclude_modules ?? undefined;
  if (ex !== undefined && typeof ex !== "string" && !isStrList(ex))
    fail("exclude_modules", "must be null, a regex string or a list of names");
  const ltt = j.layers_to_transform ?? undefined;
  if (ltt !== undefined && !(Number.isInteger(ltt) || (Array.isArray(ltt) && ltt.every(Number.isInteger))))
    fail("layers_to_transform", "must be null, an integer or a list of integers");
  const lp = j.layers_pattern ?? undefined;
  if (lp !== undefined && typeof lp !== "string" && !isStrList(lp))
    fail("layers_pattern", "must be null, a string or a list of strings");
  if (j.use_rslora !== undefined && typeof j.use_rslora !== "boolean") fail("use_rslora", "must be a boolean");
  return {
    targets: tm as string | string[],
    rank,
    alpha,
    dropout,
    useRslora: j.use_rslora === true,
    rankPattern: pattern("rank_pattern"),
    alphaPattern: pattern("alpha_pattern"),
    modulesToSave: (mts as string[] | null) ?? [],
    excludeModules: ex as string | string[] | undefined,
    layersToTransform: ltt as number | number[] | undefined,
    layersPattern: lp as string | string[] | undefined,
    // Weights come from the file; a non-default init only matters for the (overwritten) starting values.
    init: init === false ? false : init === "gaussian" ? "gaussian" : true,
    taskType: typeof j.task_type === "string" ? (j.task_type as TaskType) : null,
  };
}
