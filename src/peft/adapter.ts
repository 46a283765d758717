/**
 * PEFT adapter folders: `adapter_config.json` + `adapter_model.safetensors`, key names as PEFT's
 * `get_peft_model_state_dict` writes them (adapter name "default" stripped):
 *   base_model.model.<module path>.lora_A.weight   (r, in)
 *   base_model.model.<module path>.lora_B.weight   (out, r)
 *   base_model.model.<module to save path>.<param>  (the module's full state dict, e.g. `classifier.weight`)
 * A folder written here loads in PEFT (`PeftModel.from_pretrained`) and PEFT's folders load here.
 */
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { type RawTensor, readSafetensors, writeFileAtomic, writeSafetensors } from "../formats/safetensors.ts";
import { rawToTensor, tensorToRaw } from "../formats/tensors.ts";
import type { Module } from "../nn/module.ts";
import type { Tensor } from "../tensor/tensor.ts";
import {
  AdapterError,
  CONFIG_NAME,
  fromPeftConfig,
  stringifyPeftConfig,
  toPeftConfig,
  WEIGHTS_NAME,
} from "./config.ts";
import { applyLora, LoraModel, loraHandleOf, resolveLoraConfig, type TaskType, targetSpec } from "./lora.ts";
import { ALL_LINEAR, findTargets, isModuleToSave, linearKind, minimalTargetNames, patternValue } from "./targets.ts";

/** Prefix PEFT puts before module paths (`PeftModel.base_model` (LoraModel) `.model`). */
export const PEFT_PREFIX = "base_model.model.";

export interface SaveAdapterOptions {
  /** Written to `base_model_name_or_path` (a hub id or the local folder of the base model). */
  baseModelNameOrPath?: string | null;
  /** Written to `task_type` (defaults to the config's). */
  taskType?: TaskType | null;
  /** Tensor dtype in the file (default F32, what the factors are trained in). */
  dtype?: "F32" | "BF16" | "F16";
}

/** The adapter's tensors under PEFT's key names. */
export function adapterStateDict(handle: LoraModel): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [path, layer] of handle.layers) {
    out.set(`${PEFT_PREFIX}${path}.lora_A.weight`, layer.lora_A.weight);
    out.set(`${PEFT_PREFIX}${path}.lora_B.weight`, layer.lora_B.weight);
  }
  const modules = new Map(handle.model.namedModules());
  for (const path of handle.savedModules) {
    for (const [k, t] of (modules.get(path) as Module).stateDict()) out.set(`${PEFT_PREFIX}${path}.${k}`, t);
  }
  return out;
}

/** `target_modules` as PEFT would record it: the regex string as given, else the shortest list of names. */
function savedTargets(handle: LoraModel): string | string[] {
  const t = handle.config.targets;
  if (typeof t === "string" && t.toLowerCase() !== ALL_LINEAR) return t;
  return minimalTargetNames(
    [...handle.layers.keys()],
    handle.model.namedModules().map(([p]) => p),
  );
}

/**
 * Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (each to a temp name, then renamed).
 * @example
 * applyLora(model, { targets: ["q_proj", "v_proj"], rank: 8, alpha: 16 });
 * await saveAdapter(model, "./out/adapter", { baseModelNameOrPath: "HuggingFaceTB/SmolLM2-135M", taskType: "CAUSAL_LM" });
 */
export async function saveAdapter(
  model: Module | LoraModel,
  dir: string,
  opts: SaveAdapterOptions = {},
): Promise<void> {
  const handle = model instanceof LoraModel ? model : loraHandleOf(model);
  if (!handle)
    throw new AdapterError(dir, "not_lora", "the model has no LoRA adapter (call applyLora or loadAdapter first)");
  if (handle.state !== "active")
    throw new AdapterError(dir, "not_lora", `the LoRA adapter is ${handle.state}; save it before merging`);
  const config = toPeftConfig(handle.config, savedTargets(handle), {
    baseModelNameOrPath: opts.baseModelNameOrPath,
    taskType: opts.taskType,
    fanInFanOut: [...handle.layers.values()].some((l) => l.fanInFanOut),
  });
  const tensors = new Map<string, RawTensor>();
  for (const [k, t] of adapterStateDict(handle)) tensors.set(k, tensorToRaw(t, opts.dtype));
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new AdapterError(dir, "io", `cannot create the folder (${(e as Error).message})`, null, { cause: e });
  }
  await writeSafetensors(join(dir, WEIGHTS_NAME), tensors, { format: "pt" });
  await writeFileAtomic(join(dir, CONFIG_NAME), [Buffer.from(stringifyPeftConfig(config))]);
}

export interface LoadAdapterOptions {
  /** Keep the adapter (and modules to save) trainable (PEFT `is_trainable`); default false: frozen and in eval mode, like PEFT. */
  isTrainable?: boolean;
}

async function readConfig(dir: string): Promise<unknown> {
  const file = join(dir, CONFIG_NAME);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code === "ENOENT" ? "missing_file" : "io";
    throw new AdapterError(
      file,
      code,
      code === "missing_file" ? "file not found" : `cannot read (${(e as Error).message})`,
      null,
      { cause: e },
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new AdapterError(file, "bad_json", `not valid JSON (${(e as Error).message})`, null, { cause: e });
  }
}

async function readWeights(dir: string): Promise<Map<string, RawTensor>> {
  const file = join(dir, WEIGHTS_NAME);
  try {
    return (await readSafetensors(file)).tensors;
  } catch (e) {
    if ((e as { cause?: NodeJS.ErrnoException }).cause?.code !== "ENOENT") throw e;
    const bin = await readFile(join(dir, "adapter_model.bin")).then(
      () => true,
      () => false,
    );
    if (bin)
      throw new AdapterError(
        join(dir, "adapter_model.bin"),
        "unsupported",
        "pickled adapter_model.bin is not supported; save the adapter with safe_serialization=True",
        null,
        { cause: e },
      );
    throw new AdapterError(file, "missing_file", "file not found", null, { cause: e });
  }
}

/** Why `key` cannot be loaded into `model` (the key is not among the expected ones). */
function explainUnexpected(file: string, key: string, modules: Map<string, Module>): AdapterError {
  if (!key.startsWith(PEFT_PREFIX))
    return new AdapterError(file, "bad_key", `tensor '${key}' does not start with '${PEFT_PREFIX}'`, key);
  const m = key.slice(PEFT_PREFIX.length).match(/^(.*)\.(lora_[A-Za-z_]+)(\.weight)?$/);
  if (m && m[2] !== "lora_A" && m[2] !== "lora_B")
    return new AdapterError(
      file,
      "unsupported",
      `tensor '${key}': ${m[2]} (DoRA / embedding LoRA) is not supported`,
      key,
    );
  if (m) {
    const mod = modules.get(m[1]);
    if (!mod)
      return new AdapterError(file, "unknown_module", `tensor '${key}': the model has no module '${m[1]}'`, key);
    return new AdapterError(
      file,
      "unknown_module",
      `tensor '${key}': module '${m[1]}' (${mod.constructor.name}) is not selected by target_modules`,
      key,
    );
  }
  return new AdapterError(
    file,
    "unknown_module",
    `tensor '${key}' is neither a LoRA weight of a target module nor a parameter of a module to save`,
    key,
  );
}

/**
 * Reads a PEFT LoRA adapter folder (written by PEFT or by `saveAdapter`) and applies it to `model`
 * (the base model, without LoRA). Everything is validated before the model is changed: unknown
 * modules, wrong shapes, missing weights and unsupported features raise `AdapterError` naming the
 * file and key.
 * @example
 * const model = await loadPretrained("./smollm-135m");
 * const lora = await loadAdapter(model, "./out/adapter");
 * const merged = lora.merge(); // plain model with the update folded in
 */
export async function loadAdapter<M extends Module>(
  model: M,
  dir: string,
  opts: LoadAdapterOptions = {},
): Promise<LoraModel<M>> {
  const cfgFile = join(dir, CONFIG_NAME);
  const config = fromPeftConfig(await readConfig(dir), cfgFile);
  const weights = await readWeights(dir);
  const file = join(dir, WEIGHTS_NAME);
  const c = resolveLoraConfig(config);
  const modules = new Map(model.namedModules());
  const expected = new Map<string, number[]>();
  const found = findTargets(model, targetSpec(c));
  if (found.length === 0)
    throw new AdapterError(
      cfgFile,
      "unknown_module",
      `target_modules ${JSON.stringify(c.targets)} match no module of the model`,
      "target_modules",
    );
  for (const [path, m] of found) {
    const kind = linearKind(m);
    if (!kind)
      throw new AdapterError(
        cfgFile,
        "unsupported",
        `target module '${path}' is a ${m.constructor.name}; LoRA is supported on Linear and Conv1D only`,
        path,
      );
    const w = (m as unknown as { weight: Tensor }).weight.shape;
    const [out, inF] = kind === "conv1d" ? [w[1], w[0]] : [w[0], w[1]];
    const r = patternValue(c.rankPattern, path, c.rank);
    expected.set(`${PEFT_PREFIX}${path}.lora_A.weight`, [r, inF]);
    expected.set(`${PEFT_PREFIX}${path}.lora_B.weight`, [out, r]);
  }
  const saved = [...modules.keys()].filter((p) => isModuleToSave(p, c.modulesToSave));
  for (const path of saved.filter((p) => !saved.some((q) => q !== p && p.startsWith(`${q}.`)))) {
    for (const [k, t] of (modules.get(path) as Module).stateDict())
      expected.set(`${PEFT_PREFIX}${path}.${k}`, [...t.shape]);
  }
  const tensors = new Map<string, Tensor>();
  for (const [key, raw] of weights) {
    const want = expected.get(key);
    if (!want) throw explainUnexpected(file, key, modules);
    if (want.length !== raw.shape.length || want.some((d, i) => d !== raw.shape[i])) {
      throw new AdapterError(
        file,
        "bad_shape",
        `tensor '${key}' has shape [${raw.shape}], the model needs [${want}]`,
        key,
      );
    }
    if (!["F32", "F16", "BF16", "F64"].includes(raw.dtype))
      throw new AdapterError(file, "bad_config", `tensor '${key}' has dtype ${raw.dtype}; expected a float type`, key);
    tensors.set(key, rawToTensor(raw, key, file));
  }
  const missing = [...expected.keys()].filter((k) => !weights.has(k));
  if (missing.length)
    throw new AdapterError(file, "missing_key", `missing tensor(s): ${missing.join(", ")}`, missing[0]);

  const handle = applyLora(model, config);
  for (const [path, layer] of handle.layers) {
    copyValues(layer.lora_A.weight, tensors.get(`${PEFT_PREFIX}${path}.lora_A.weight`) as Tensor);
    copyValues(layer.lora_B.weight, tensors.get(`${PEFT_PREFIX}${path}.lora_B.weight`) as Tensor);
  }
  for (const path of handle.savedModules) {
    const sub = new Map<string, Tensor>();
    for (const [k, t] of tensors)
      if (k.startsWith(`${PEFT_PREFIX}${path}.`)) sub.set(k.slice(PEFT_PREFIX.length + path.length + 1), t);
    (modules.get(path) as Module).loadStateDict(sub, { strict: true });
  }
  if (!opts.isTrainable) {
    // As PeftModel.from_pretrained: frozen and in eval mode (no LoRA dropout) unless asked otherwise.
    handle.model.freeze();
    handle.model.eval();
  }
  return handle;
}

function copyValues(dst: Tensor, src: Tensor): void {
  const v = src.toFloat64Array();
  for (let i = 0; i < v.length; i++) dst.data[dst.offset + i] = v[i];
}
