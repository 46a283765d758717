/**
 * What trains: the fine-tuning strategies (`head`, `top:N`, `full`, `two-phase`, `lora`), the
 * per-architecture block lists they count in, layer-wise learning-rate decay, per-group learning
 * rates and gradual unfreezing.
 *
 * A model is seen as `pre` (embeddings, stem) -> `blocks` (bottom to top) -> `post` (final norm,
 * pooler) -> `head` (the task head, usually newly initialised). `top:N` trains the last N blocks,
 * `post` and `head`; `head` trains `head` only, with the frozen backbone in inference mode (Keras
 * `training=False`), which is what makes its features cacheable.
 *
 * @example
 * ```ts
 * const plan = prepareStrategy(model, parseStrategy("top:2"));
 * plan.apply(0, 0);                       // phase 0, epoch 0: freezes all but the top 2 blocks + head
 * const groups = paramGroups(model, plan.optimizerModules(0), { lr: 2e-5, weightDecay: 0.01, layerwiseLrDecay: 0.8 }, plan.layout);
 * ```
 */

import { getArchitecture } from "../models/registry.ts";
import { type Module, matchesAny, type Parameter } from "../nn/module.ts";
import { applyLora, type LoraConfig, type LoraModel } from "../peft/index.ts";
import { ValueError } from "../tensor/errors.ts";

/** Early stopping settings (also used for phase 1 of `two-phase`). */
export interface EarlyStoppingConfig {
  /** Eval metric to watch, e.g. "loss", "accuracy", "f1Macro" (default "loss"). */
  metric?: string;
  /** Evaluations without improvement before stopping (default 3). */
  patience?: number;
  /** "min" or "max" (default: min for loss/perplexity/error-like metrics, else max). */
  mode?: "min" | "max";
  /** Smallest change that counts as an improvement (default 0). */
  minDelta?: number;
  /** Put the best weights back at the end (default true). */
  restoreBest?: boolean;
}

/** A strategy, as an object. The string forms are `"head" | "full" | "lora" | "two-phase" | "top:N"`. */
export interface StrategyConfig {
  name: "head" | "top" | "full" | "two-phase" | "lora";
  /** `top`: blocks to train. `two-phase`: blocks unfrozen in phase 2 (absent = everything). Gradual unfreezing: the final count. */
  topN?: number;
  /** Gradual unfreezing (ULMFiT): start with the head, unfreeze one more block (from the top) every K epochs. */
  unfreezeEvery?: number;
  /** `two-phase`: phase-1 (head only) epochs (default 1) ... */
  headEpochs?: number;
  /** ... or phase 1 ends when this early stopping triggers (before headEpochs is reached). */
  headEarlyStopping?: EarlyStoppingConfig;
  /** `two-phase`: phase-2 learning rate = lr * lrFactor (default 0.1, the Keras guide's 10x lower). */
  lrFactor?: number;
  /** `lora`: the LoRA settings; `modulesToSave` defaults to the new head when the model has one. */
  lora?: LoraConfig;
  /** `head`: cache backbone features when there is no augmentation (default true). */
  cacheFeatures?: boolean;
}

/** Parses `"top:2"`, `"head"`, ... or passes an object through (validated). */
export function parseStrategy(s: string | StrategyConfig | undefined): StrategyConfig {
  if (s === undefined) return { name: "full" };
  if (typeof s !== "string") {
    if (!["head", "top", "full", "two-phase", "lora"].includes(s.name))
      throw new ValueError(`strategy: unknown name '${s.name}' (head, top, full, two-phase, lora)`);
    if (s.name === "top" && !(Number.isInteger(s.topN) && (s.topN as number) >= 0))
      throw new ValueError(`strategy: 'top' needs topN, a non-negative integer, got ${s.topN}`);
    return { ...s };
  }
  const m = /^top:(\d+)$/.exec(s);
  if (m) return { name: "top", topN: Number(m[1]) };
  if (s === "head" || s === "full" || s === "two-phase" || s === "lora") return { name: s };
  throw new ValueError(`strategy: unknown strategy '${s}' (head, top:N, full, two-phase, lora)`);
}

/** How a model divides into embeddings, blocks, final layers and head (module paths). */
export interface ModelLayout {
  /** Module paths before the first block (embeddings, stem). */
  pre: string[];
  /** Repeated blocks, bottom to top (`transformer.h.0`, `model.layers.3`, `layer4.1`, `features.7`). */
  blocks: string[];
  /** Modules after the last block that are not the head (final norm, pooler). */
  post: string[];
  /** The task head (`classifier`, `score`, `lm_head`, `fc`, `classifier.1`). */
  head: string[];
}

/** Block paths per architecture (data): a regex over module paths. */
const BLOCK_RE: Record<string, RegExp> = {
  gpt2: /^transformer\.h\.\d+$/,
  llama: /^model\.layers\.\d+$/,
  qwen2: /^model\.layers\.\d+$/,
  mistral: /^model\.layers\.\d+$/,
  bert: /^bert\.encoder\.layer\.\d+$/,
  roberta: /^roberta\.encoder\.layer\.\d+$/,
  distilbert: /^distilbert\.transformer\.layer\.\d+$/,
  vit: /^vit\.encoder\.layer\.\d+$/,
  mobilenet_v2: /^features\.[1-9]\d*$/,
  resnet: /^layer[1-4]\.\d+$/,
};

function blockRegex(modelType: string | undefined): RegExp | undefined {
  if (!modelType) return undefined;
  if (BLOCK_RE[modelType]) return BLOCK_RE[modelType];
  if (/^resnet\d+$/.test(modelType)) return BLOCK_RE.resnet;
  // Aliases (xlm-roberta, camembert, ...) share their family's layout.
  try {
    const arch = getArchitecture(modelType);
    for (const t of arch.modelTypes) if (BLOCK_RE[t]) return BLOCK_RE[t];
  } catch {
    /* not registered: generic rule below */
  }
  return undefined;
}

/** The longest list of sibling modules (`x.0`, `x.1`, ...): the generic block rule. */
function genericBlocks(model: Module): string[] {
  const lists = new Map<string, string[]>();
  for (const [path, m] of model.namedModules()) {
    const mm = /^(.*)\.(\d+)$/.exec(path) ?? /^()(\d+)$/.exec(path);
    if (!mm || m.parameters().length === 0) continue;
    const key = mm[1];
    lists.set(key, [...(lists.get(key) ?? []), path]);
  }
  let best: string[] = [];
  for (const v of lists.values()) if (v.length > best.length) best = v;
  return best;
}

function withParams(model: Module, paths: string[]): string[] {
  const mods = new Map(model.namedModules());
  return paths.filter((p) => (mods.get(p)?.parameters().length ?? 0) > 0);
}

/** Top-level children that hold parameters, in declaration order. */
function topChildren(model: Module): string[] {
  return model
    .namedChildren()
    .filter(([, m]) => m.parameters().length > 0)
    .map(([k]) => k);
}

/**
 * The layout of `model`: head from the vision `headPrefix` or the registry's `basePrefix` (what
 * is not the backbone is the head), blocks from the per-architecture table, `pre`/`post` from
 * parameter order around the blocks.
 */
export function modelLayout(model: Module): ModelLayout {
  const rec = model as unknown as { modelType?: string; headPrefix?: string };
  let head: string[] = [];
  let base: string | undefined;
  if (typeof rec.headPrefix === "string") head = [rec.headPrefix];
  else {
    try {
      base = rec.modelType ? getArchitecture(rec.modelType).basePrefix : undefined;
    } catch {
      base = undefined;
    }
    const tops = topChildren(model);
    if (base && tops.includes(base)) head = tops.filter((k) => k !== base);
    else if (tops.length > 1) head = [tops[tops.length - 1]];
  }
  head = withParams(model, head);
  const re = blockRegex(rec.modelType);
  const allPaths = model.namedModules().map(([p]) => p);
  let blocks = re ? allPaths.filter((p) => re.test(p)) : genericBlocks(model);
  blocks = withParams(model, blocks).filter((b) => !head.some((h) => b === h || b.startsWith(`${h}.`)));
  const inHead = (n: string) => head.some((h) => n.startsWith(`${h}.`));
  const inBlock = (n: string) => blocks.some((b) => n.startsWith(`${b}.`));
  const names = model.namedParameters().map(([n]) => n);
  const firstBlock = names.findIndex(inBlock);
  let lastBlock = -1;
  names.forEach((n, i) => {
    if (inBlock(n)) lastBlock = i;
  });
  const owner = (n: string) => (n.includes(".") ? n.slice(0, n.lastIndexOf(".")) : n);
  const pre = new Set<string>();
  const post = new Set<string>();
  names.forEach((n, i) => {
    if (inHead(n) || inBlock(n)) return;
    if (firstBlock >= 0 && i > lastBlock) post.add(owner(n));
    else pre.add(owner(n));
  });
  return { pre: [...pre], blocks, post: [...post], head };
}

/** One phase of a plan: what trains and how the lr scales. */
export interface PhasePlan {
  /** Module paths (or parameter names) trainable in this phase at its last epoch (what the optimizer holds). */
  modules: string[];
  /** lr multiplier of this phase. */
  lrFactor: number;
  /** Phase length in epochs (undefined: until the run's end). */
  epochs?: number;
  earlyStopping?: EarlyStoppingConfig;
}

/** A prepared strategy: the layout, the phases and, for LoRA, the adapter handle. */
export interface StrategyPlan {
  config: StrategyConfig;
  layout: ModelLayout;
  phases: PhasePlan[];
  lora?: LoraModel;
  /** Sets `requiresGrad` for `phase` at `epochs` completed epochs of that phase; returns the trainable module paths. */
  apply(phase: number, epochsInPhase: number): string[];
  /** Modules whose parameters the phase's optimizer holds (its final trainable set). */
  optimizerModules(phase: number): string[];
  /** True when the frozen backbone runs in inference mode in `phase` (head-only training, Keras `training=False`). */
  backboneEval(phase: number): boolean;
}

function lastBlocks(layout: ModelLayout, n: number): string[] {
  return n <= 0 ? [] : layout.blocks.slice(Math.max(0, layout.blocks.length - n));
}

/**
 * Prepares `model` for `strategy`: for LoRA applies the adapter (modules to save = the head);
 * otherwise computes the phases. Call `plan.apply(phase, epoch)` to set what trains.
 */
export function prepareStrategy(model: Module, strategy: StrategyConfig): StrategyPlan {
  const layout = modelLayout(model);
  const task = (model as unknown as { task?: string }).task;
  const hasNewHead = task !== undefined && task !== "causal-lm" && task !== "base";
  const s = strategy;
  const everything = [""];
  const headSet = [...layout.head];
  const needHead = (what: string) => {
    if (!headSet.length || model.numParameters() === 0)
      throw new ValueError(
        `strategy '${what}': the model has no separate trainable head (tied LM head?); use top:N, full or lora`,
      );
  };
  let phases: PhasePlan[];
  let lora: LoraModel | undefined;
  const topSet = (n: number) => [...lastBlocks(layout, n), ...layout.post, ...headSet];
  switch (s.name) {
    case "full":
      phases = [{ modules: everything, lrFactor: 1 }];
      break;
    case "head":
      needHead("head");
      phases = [{ modules: headSet, lrFactor: 1 }];
      break;
    case "top":
      phases = [{ modules: topSet(s.topN ?? 0), lrFactor: 1 }];
      if (!phases[0].modules.length) needHead("top:0");
      break;
    case "two-phase": {
      needHead("two-phase");
      const p2 = s.topN === undefined ? everything : topSet(s.topN);
      phases = [
        { modules: headSet, lrFactor: 1, epochs: s.headEpochs ?? 1, earlyStopping: s.headEarlyStopping },
        { modules: p2, lrFactor: s.lrFactor ?? 0.1 },
      ];
      break;
    }
    case "lora": {
      if (!s.lora) throw new ValueError("strategy 'lora' needs lora settings ({ targets, rank, alpha, ... })");
      const modulesToSave = s.lora.modulesToSave ?? (hasNewHead ? headSet : []);
      lora = applyLora(model, { ...s.lora, modulesToSave });
      const trainable = model
        .namedParameters()
        .filter(([, p]) => p.requiresGrad)
        .map(([n]) => n);
      phases = [{ modules: trainable, lrFactor: 1 }];
      break;
    }
  }
  const gradual = s.unfreezeEvery !== undefined && s.name !== "lora";
  if (gradual && !(Number.isInteger(s.unfreezeEvery) && (s.unfreezeEvery as number) > 0))
    throw new ValueError(`strategy: unfreezeEvery must be a positive integer number of epochs, got ${s.unfreezeEvery}`);
  const finalN = s.name === "top" || s.topN !== undefined ? (s.topN ?? 0) : layout.blocks.length;
  const apply = (phase: number, epochs: number): string[] => {
    const p = phases[Math.min(phase, phases.length - 1)];
    let mods = p.modules;
    // Gradual unfreezing applies to the last phase: head + post, then one more block every K epochs.
    if (gradual && phase === phases.length - 1 && s.name !== "head") {
      const n = Math.min(finalN, Math.floor(epochs / (s.unfreezeEvery as number)));
      mods = n >= layout.blocks.length && s.name === "full" ? everything : topSet(n);
    }
    if (lora) return mods; // applyLora set requiresGrad already
    setTrainableModules(model, mods);
    return mods;
  };
  return {
    config: s,
    layout,
    phases,
    lora,
    apply,
    optimizerModules: (phase) => phases[Math.min(phase, phases.length - 1)].modules,
    backboneEval: (phase) => s.name === "head" || (s.name === "two-phase" && phase === 0),
  };
}

/** Freezes everything, then unfreezes the given module paths ("" = all); BatchNorm follows its parameters. */
export function setTrainableModules(model: Module, modules: readonly string[]): void {
  model.freeze();
  if (modules.includes("")) model.unfreeze();
  else if (modules.length) model.unfreeze(modules);
}

/** Named parameters under any of `modules` ("" = all). */
export function parametersOf(model: Module, modules: readonly string[]): [string, Parameter][] {
  const all = model.namedParameters();
  if (modules.includes("")) return all;
  return all.filter(([n]) => modules.some((m) => n === m || n.startsWith(`${m}.`)));
}

/** Optimizer settings that shape parameter groups. */
export interface GroupOptions {
  lr: number;
  weightDecay: number;
  /** Layer-wise lr decay: head/post at lr, block i from the top at lr * d^(i+1), pre at lr * d^(blocks+1). */
  layerwiseLrDecay?: number;
  /** Per-group overrides: the first entry whose pattern (glob, dotted prefix or name) matches a parameter wins. */
  groups?: readonly { pattern: string; lr?: number; weightDecay?: number }[];
  /** Parameters without weight decay (default: fewer than 2 dims, as HF). */
  noDecay?: (name: string, p: Parameter) => boolean;
}

/** An optimizer parameter group with a name for logs. */
export interface NamedGroup {
  name: string;
  params: Parameter[];
  lr: number;
  weightDecay: number;
}

/**
 * Parameter groups for the parameters under `modules`: by depth when `layerwiseLrDecay` is set,
 * by the `groups` overrides, and split into decay / no-decay. Group order is deterministic (a
 * checkpoint's optimizer state maps onto it).
 */
export function paramGroups(
  model: Module,
  modules: readonly string[],
  o: GroupOptions,
  layout: ModelLayout,
): NamedGroup[] {
  const noDecay = o.noDecay ?? ((_n: string, p: Parameter) => p.ndim < 2);
  const nb = layout.blocks.length;
  const depthOf = (n: string): number => {
    const b = layout.blocks.findIndex((x) => n.startsWith(`${x}.`));
    if (b >= 0) return nb - b;
    if (layout.pre.some((x) => n === x || n.startsWith(`${x}.`))) return nb + 1;
    return 0;
  };
  const groups = new Map<string, NamedGroup>();
  for (const [n, p] of parametersOf(model, modules)) {
    if (!(p.dtype === "float32" || p.dtype === "float64")) continue;
    const oi = o.groups?.findIndex((g) => matchesAny(n, [g.pattern])) ?? -1;
    const over = oi >= 0 ? o.groups?.[oi] : undefined;
    const depth = o.layerwiseLrDecay !== undefined ? depthOf(n) : 0;
    let lr = over?.lr ?? o.lr * (o.layerwiseLrDecay ?? 1) ** depth;
    const wd0 = over?.weightDecay ?? o.weightDecay;
    const wd = noDecay(n, p) ? 0 : wd0;
    if (!Number.isFinite(lr)) lr = o.lr;
    const key = `${oi >= 0 ? `g${oi}` : `d${depth}`}/${wd === 0 ? "no_decay" : "decay"}`;
    let g = groups.get(key);
    if (!g) {
      g = { name: key, params: [], lr, weightDecay: wd };
      groups.set(key, g);
    }
    g.params.push(p);
  }
  if (!groups.size) throw new ValueError("the strategy leaves no trainable parameters");
  return [...groups.values()];
}
