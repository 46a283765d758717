/**
 * Architecture registry keyed by HF `model_type` (torchvision models use their `architecture`
 * name, e.g. "resnet18"), with an alias table. Each architecture file registers itself on import;
 * `src/models/index.ts` imports them all.
 */
import { TunekitError } from "../tensor/errors.ts";
import type { Module } from "../nn/module.ts";

/** What a model-building task asks for: the head put on top of the backbone. */
export type Task =
  | "causal-lm"
  | "sequence-classification"
  | "token-classification"
  | "image-classification"
  | "base";

/** A model built from a config: a Module plus what the loader and trainer need to know. */
export interface PretrainedModel extends Module {
  /** HF `model_type` (or torchvision architecture name). */
  readonly modelType: string;
  /** The task the head implements. */
  readonly task: Task;
  /** The config as HF would write it to config.json (with id2label etc. when there is a head). */
  readonly config: Record<string, unknown>;
  /** Parameter names HF omits from checkpoints because they are tied (e.g. `lm_head.weight`). */
  readonly tiedKeys?: readonly string[];
}

export interface Architecture {
  /** Primary `model_type` and aliases. */
  modelTypes: readonly string[];
  /** Tasks this architecture provides heads for. */
  tasks: readonly Task[];
  /** Builds a randomly initialised model (seeded by the global generator) from a raw config.json object. */
  create(config: Record<string, unknown>, task: Task, file?: string, opts?: CreateOptions): PretrainedModel;
  /** Maps checkpoint keys (HF/torchvision names, possibly with legacy prefixes) to ours; data, not code, where possible. */
  renameKey?(key: string): string | null;
  /** HF `base_model_prefix` ("transformer", "model"): checkpoints of the bare backbone lack it, head models add it. */
  basePrefix?: string;
  /** Checkpoint keys to drop silently (HF `_keys_to_ignore_on_load_unexpected`: old mask buffers, rotary inv_freq). */
  ignoreKeys?: readonly RegExp[];
}

/** Options for {@link Architecture.create}. */
export interface CreateOptions {
  /** Allocate zeros instead of drawing random weights: a checkpoint is about to overwrite them. */
  skipInit?: boolean;
}

const ARCH = new Map<string, Architecture>();

export function registerArchitecture(a: Architecture): void {
  for (const t of a.modelTypes) ARCH.set(t, a);
}

export class UnknownArchitectureError extends TunekitError {}

export function getArchitecture(modelType: string, file = "config.json"): Architecture {
  const a = ARCH.get(modelType);
  if (!a) throw new UnknownArchitectureError(`${file}: model_type '${modelType}' is not supported; known: ${[...ARCH.keys()].sort().join(", ")}`);
  return a;
}

export function listArchitectures(): string[] {
  return [...ARCH.keys()].sort();
}
