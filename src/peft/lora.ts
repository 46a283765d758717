/**
 * `applyLora`: PEFT's `get_peft_model(model, LoraConfig(...))` for tunekit modules. Target layers are
 * swapped in place for `LoRALinear`, everything else is frozen except `modulesToSave`, and the
 * returned `LoraModel` handle prints PEFT's parameter summary, merges, unmerges and unloads.
 */
import type { Module } from "../nn/module.ts";
import { ValueError } from "../tensor/errors.ts";
import type { Generator } from "../tensor/rng.ts";
import { LoRALinear, type LoraInit } from "./lora-linear.ts";
import { ALL_LINEAR, findTargets, isModuleToSave, linearKind, patternValue, type TargetSpec } from "./targets.ts";

/** PEFT task types (what `task_type` records; SEQ_CLS also keeps `classifier`/`score` trainable, as PEFT does). */
export type TaskType = "SEQ_CLS" | "CAUSAL_LM" | "SEQ_2_SEQ_LM" | "TOKEN_CLS" | "QUESTION_ANS" | "FEATURE_EXTRACTION";

/**
 * LoRA settings, PEFT's `LoraConfig` with camelCase names (`rank` = `r`, `alpha` = `lora_alpha`,
 * `targets` = `target_modules`). Defaults are PEFT's.
 */
export interface LoraConfig {
  /** Module names (suffix match: "q_proj" matches `model.layers.0.self_attn.q_proj`), dotted globs, one regex string (full match), or "all-linear". */
  targets: string | readonly string[];
  /** Rank r (default 8). */
  rank?: number;
  /** lora_alpha (default 8). */
  alpha?: number;
  /** Dropout on the LoRA path (default 0). */
  dropout?: number;
  /** Scaling alpha/sqrt(r) instead of alpha/r. */
  useRslora?: boolean;
  /** Per-module rank overrides: key is a regex matched against the end of the module path (PEFT `rank_pattern`). */
  rankPattern?: Readonly<Record<string, number>>;
  /** Per-module alpha overrides (PEFT `alpha_pattern`). */
  alphaPattern?: Readonly<Record<string, number>>;
  /** Modules trained and saved in full (e.g. a new classification head); suffix match as in PEFT. */
  modulesToSave?: readonly string[];
  /** Modules never wrapped (names or a regex string). */
  excludeModules?: string | readonly string[];
  /** Only these layer indices (with `layersPattern`, e.g. "layers"). */
  layersToTransform?: number | readonly number[];
  layersPattern?: string | readonly string[];
  init?: LoraInit;
  /** Only "none" is supported (biases stay frozen and are not saved). */
  bias?: "none";
  /** Written to `task_type`; SEQ_CLS adds `classifier` and `score` to `modulesToSave` like PEFT. */
  taskType?: TaskType | null;
  /** Store frozen base weights as bf16/f16. */
  baseDtype?: "float32" | "bfloat16" | "float16";
  /** Source of the initial factors and of dropout masks. */
  generator?: Generator;
}

/** A config with PEFT's defaults filled in. */
export type ResolvedLoraConfig = Required<
  Omit<LoraConfig, "excludeModules" | "layersToTransform" | "layersPattern" | "generator" | "baseDtype">
> &
  Pick<LoraConfig, "excludeModules" | "layersToTransform" | "layersPattern" | "generator" | "baseDtype">;

/** Fills PEFT's defaults and validates. */
export function resolveLoraConfig(c: LoraConfig): ResolvedLoraConfig {
  if ((c.bias ?? "none") !== "none") throw new ValueError(`LoRA: bias='${c.bias}' is not supported (only 'none')`);
  const mts = [...(c.modulesToSave ?? [])];
  if (c.taskType === "SEQ_CLS") for (const n of ["classifier", "score"]) if (!mts.includes(n)) mts.push(n);
  const targets = c.targets;
  if (!targets || (typeof targets !== "string" && targets.length === 0))
    throw new ValueError("LoRA: 'targets' is empty (give module names, a regex or 'all-linear')");
  return {
    ...c,
    targets,
    rank: c.rank ?? 8,
    alpha: c.alpha ?? 8,
    dropout: c.dropout ?? 0,
    useRslora: c.useRslora ?? false,
    rankPattern: { ...c.rankPattern },
    alphaPattern: { ...c.alphaPattern },
    modulesToSave: mts,
    init: c.init ?? true,
    bias: "none",
    taskType: c.taskType ?? null,
  };
}

/** Parameter counts as PEFT's `get_nb_trainable_parameters` reports them. */
export interface TrainableCount {
  trainable: number;
  all: number;
}

interface Slot {
  parent: Module;
  name: string;
  layer: LoRALinear;
}

const handles = new WeakMap<Module, LoraModel>();

/** The LoRA state of a model (set by `applyLora` / `loadAdapter`), or undefined. */
export function loraHandleOf(model: Module): LoraModel | undefined {
  return handles.get(model);
}

/**
 * What `applyLora` returns: the model (changed in place) and its LoRA layers by module path.
 */
export class LoraModel<M extends Module = Module> {
  /** LoRA layers by module path (`model.layers.0.self_attn.q_proj`). */
  readonly layers: Map<string, LoRALinear>;
  /** Paths of the modules trained and saved in full. */
  readonly savedModules: string[];
  private _state: "active" | "merged" | "unloaded" = "active";

  constructor(
    readonly model: M,
    readonly config: ResolvedLoraConfig,
    private readonly _slots: Map<string, Slot>,
    savedModules: string[],
  ) {
    this.layers = new Map([..._slots].map(([k, s]) => [k, s.layer]));
    this.savedModules = savedModules;
  }

  /** "active" (LoRA layers in place), "merged" (plain layers with merged weights), or "unloaded". */
  get state(): "active" | "merged" | "unloaded" {
    return this._state;
  }

  /** Trainable and total parameter counts as PEFT prints them (PEFT keeps a copy of each module to save, so those count twice in `all`). */
  trainableParameters(): TrainableCount {
    let trainable = 0;
    let all = 0;
    for (const [name, p] of this.model.namedParameters()) {
      all += p.size;
      if (p.requiresGrad) trainable += p.size;
      if (this.savedModules.some((m) => name.startsWith(`${m}.`))) all += p.size;
    }
    return { trainable, all };
  }

  /** PEFT's `print_trainable_parameters` line (returned, and printed unless `print` is false). */
  printTrainableParameters(print = true): string {
    const { trainable, all } = this.trainableParameters();
    const fmt = (n: number) => n.toLocaleString("en-US");
    const line = `trainable params: ${fmt(trainable)} || all params: ${fmt(all)} || trainable%: ${((100 * trainable) / all).toFixed(4)}`;
    if (print) console.log(line);
    return line;
  }

  /**
   * Merge and unload (PEFT `merge_and_unload`): folds every update into its base weight and puts the
   * original layers back. `unmerge()` reverses it.
   */
  merge(): M {
    if (this._state !== "active") throw new ValueError(`LoRA: cannot merge, the adapter is ${this._state}`);
    for (const s of this._slots.values()) {
      s.layer.merge();
      setChild(s.parent, s.name, s.layer.unload());
    }
    this._state = "merged";
    return this.model;
  }

  /** Undoes `merge()`: subtracts the updates and puts the LoRA layers back. */
  unmerge(): M {
    if (this._state !== "merged") throw new ValueError(`LoRA: cannot unmerge, the adapter is ${this._state}`);
    for (const s of this._slots.values()) {
      s.layer.unmerge();
      setChild(s.parent, s.name, s.layer);
    }
    this._state = "active";
    return this.model;
  }

  /** Removes the LoRA layers without merging (PEFT `unload`): the base model as it was. */
  unload(): M {
    if (this._state === "merged") this.unmerge();
    for (const s of this._slots.values()) setChild(s.parent, s.name, s.layer.unload());
    this._state = "unloaded";
    handles.delete(this.model);
    return this.model;
  }
}

/** Replaces child `name` (a field, `field.i` for an array field, or `i` in a ModuleList) of `parent`. */
function setChild(parent: Module, name: string, m: Module): void {
  const rec = parent as unknown as Record<string, unknown>;
  const dot = name.indexOf(".");
  if (dot > 0 && Array.isArray(rec[name.slice(0, dot)]))
    (rec[name.slice(0, dot)] as Module[])[Number(name.slice(dot + 1))] = m;
  else if (name in rec && !name.startsWith("_")) rec[name] = m;
  else if (/^\d+$/.test(name) && Array.isArray(rec._items)) (rec._items as Module[])[Number(name)] = m;
  else throw new ValueError(`LoRA: cannot replace child '${name}' of ${parent.constructor.name}`);
  if (!parent.namedChildren().some(([k, c]) => k === name && c === m))
    throw new ValueError(`LoRA: replacing child '${name}' of ${parent.constructor.name} did not take effect`);
}

/** parent module and child name for every module path. */
function parents(model: Module): Map<string, { parent: Module; name: string }> {
  const out = new Map<string, { parent: Module; name: string }>();
  for (const [path, m] of model.namedModules())
    for (const [k] of m.namedChildren()) out.set(path ? `${path}.${k}` : k, { parent: m, name: k });
  return out;
}

/** The selection part of a resolved config. */
export function targetSpec(c: ResolvedLoraConfig): TargetSpec {
  return {
    targetModules: c.targets,
    excludeModules: c.excludeModules,
    modulesToSave: c.modulesToSave,
    layersToTransform: c.layersToTransform,
    layersPattern: c.layersPattern,
  };
}

/**
 * Adds LoRA to `model` in place: target layers become `LoRALinear` (names stay: `<path>.weight`,
 * plus `<path>.lora_A.weight` / `<path>.lora_B.weight`), every other parameter is frozen except
 * those of `modulesToSave`.
 * @example
 * const lora = applyLora(model, { targets: ["q_proj", "v_proj"], rank: 8, alpha: 16 });
 * lora.printTrainableParameters(); // trainable params: 294,912 || all params: ... || trainable%: ...
 */
export function applyLora<M extends Module>(model: M, config: LoraConfig): LoraModel<M> {
  if (handles.has(model)) throw new ValueError("applyLora: the model already has a LoRA adapter (unload it first)");
  const c = resolveLoraConfig(config);
  const found = findTargets(model, targetSpec(c));
  const nested = model.namedModules().find(([, m]) => m instanceof LoRALinear);
  if (nested) throw new ValueError(`applyLora: module '${nested[0]}' already has a LoRA adapter`);
  if (found.length === 0) {
    const what = typeof c.targets === "string" ? `'${c.targets}'` : JSON.stringify(c.targets);
    throw new ValueError(`applyLora: target modules ${what} not found in the model`);
  }
  const bad = found.filter(([, m]) => !linearKind(m));
  if (bad.length)
    throw new ValueError(
      `applyLora: target module(s) ${bad.map(([p, m]) => `'${p}' (${m.constructor.name})`).join(", ")} are not linear layers; LoRA supports Linear and Conv1D`,
    );
  const par = parents(model);
  model.freeze();
  const slots = new Map<string, Slot>();
  for (const [path, m] of found) {
    const layer = LoRALinear.fromBase(m, {
      rank: patternValue(c.rankPattern, path, c.rank),
      alpha: patternValue(c.alphaPattern, path, c.alpha),
      dropout: c.dropout,
      useRslora: c.useRslora,
      init: c.init,
      baseDtype: c.baseDtype,
      generator: c.generator,
    });
    const pn = par.get(path);
    if (!pn) throw new ValueError(`applyLora: no parent found for '${path}'`);
    setChild(pn.parent, pn.name, layer);
    slots.set(path, { ...pn, layer });
  }
  const saved = model
    .namedModules()
    .filter(([p]) => isModuleToSave(p, c.modulesToSave))
    .map(([p]) => p);
  const topSaved = saved.filter((p) => !saved.some((q) => q !== p && p.startsWith(`${q}.`)));
  if (topSaved.length) model.unfreeze(topSaved);
  for (const s of slots.values()) for (const p of [s.layer.lora_A.weight, s.layer.lora_B.weight]) p.requiresGrad = true;
  const handle = new LoraModel(model, c, slots, topSaved);
  handles.set(model, handle);
  return handle;
}

export { ALL_LINEAR };
