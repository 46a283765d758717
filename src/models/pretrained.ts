/**
 * `loadPretrained` / `saveModel`: a model folder (or `hf:owner/name[@rev]`) <-> a built model, the
 * way `transformers`' `from_pretrained` / `save_pretrained` do it: config.json through the
 * registry, safetensors (sharded too) assigned by HF name, tied weights, legacy prefixes, new heads
 * initialised and reported, tokenizer and generation config alongside.
 *
 * @example
 * ```ts
 * const model = await loadPretrained("./gpt2", { task: "sequence-classification", numLabels: 3 });
 * // warns: Some weights of GPT2ForSequenceClassification were not initialized ... ['score.weight']
 * await saveModel(model, "./out");
 * ```
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { ConfigError, type GenerationConfig, loadGenerationConfig, readJsonFile } from "../formats/hf-config.ts";
import { type ResolveOptions, resolveModelPath } from "../formats/hub.ts";
import { loadSafetensorsDir, type RawTensor, writeFileAtomic, writeSafetensors } from "../formats/safetensors.ts";
import { rawToTensor, tensorToRaw } from "../formats/tensors.ts";
import { type Module, StateDictError } from "../nn/module.ts";
import { cast } from "../ops/index.ts";
import type { DType } from "../tensor/dtype.ts";
import { fmtShape } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Tokenizer } from "../tokenize/tokenizer.ts";
import { allParameterNames, assignParameter } from "./common.ts";
import "./index.ts";
import { type Architecture, getArchitecture, type PretrainedModel, type Task } from "./registry.ts";

export type LoadDType = "float32" | "bfloat16" | "float16" | "auto";

export interface LoadOptions {
  /** Head to build; default from `architectures` in config.json (causal LM for decoders). */
  task?: Task;
  /** Classifier size; a different count than the checkpoint's re-initialises the head. */
  numLabels?: number;
  /** Class names by id (sets num_labels, label2id). */
  id2label?: readonly string[];
  /** Parameter dtype: float32 (default, as HF), bf16/f16, or "auto" = as stored. */
  dtype?: LoadDType;
  /** Load tokenizer.json when present (default true). */
  tokenizer?: boolean;
  /** Hub options for `hf:` ids (cache dir, endpoint, offline, progress). */
  hub?: ResolveOptions;
  /** Where load warnings go (default `console.warn`). */
  onWarning?: (message: string) => void;
}

/** What happened to each checkpoint key, like HF's `output_loading_info`. */
export interface LoadReport {
  /** Model parameters the checkpoint lacked (or had at another shape), now randomly initialised. */
  newlyInitialized: string[];
  /** Checkpoint keys of another shape than the model's (their values were not used). */
  mismatched: { key: string; checkpoint: number[]; model: number[] }[];
  /** Checkpoint keys the model has no place for. */
  unexpected: string[];
  /** Keys renamed by prefix rules (e.g. `wte.weight` -> `transformer.wte.weight`). */
  renamed: number;
  /** Warnings as printed. */
  warnings: string[];
}

/** A loaded model plus what came with it. */
export type LoadedModel = PretrainedModel & {
  tokenizer?: Tokenizer;
  generationConfig?: GenerationConfig;
  loadReport: LoadReport;
  /** The local folder the files came from. */
  sourceDir: string;
};

const TASK_SUFFIX: [RegExp, Task][] = [
  [/(ForCausalLM|LMHeadModel)$/, "causal-lm"],
  [/ForSequenceClassification$/, "sequence-classification"],
  [/ForTokenClassification$/, "token-classification"],
  [/ForImageClassification$/, "image-classification"],
];

/** The task config.json's `architectures` names (e.g. `GPT2LMHeadModel` -> causal-lm), else the architecture's first. */
export function taskFromConfig(raw: Record<string, unknown>, arch: Architecture): Task {
  const a = Array.isArray(raw.architectures) ? raw.architectures[0] : undefined;
  for (const [re, t] of TASK_SUFFIX) if (typeof a === "string" && re.test(a) && arch.tasks.includes(t)) return t;
  return arch.tasks.includes("causal-lm") ? "causal-lm" : arch.tasks[0];
}

/** config.json with the requested labels applied (HF: setting num_labels regenerates id2label). */
function withLabels(raw: Record<string, unknown>, file: string, opts: LoadOptions): Record<string, unknown> {
  const out = { ...raw };
  let names = opts.id2label ? [...opts.id2label] : undefined;
  if (names && opts.numLabels !== undefined && names.length !== opts.numLabels) {
    throw new ConfigError(
      file,
      "num_labels",
      "inconsistent",
      `numLabels ${opts.numLabels} but id2label has ${names.length} names`,
    );
  }
  const current =
    raw.id2label && typeof raw.id2label === "object"
      ? Object.keys(raw.id2label).length
      : typeof raw.num_labels === "number"
        ? raw.num_labels
        : undefined;
  if (!names && opts.numLabels !== undefined && opts.numLabels !== current)
    names = Array.from({ length: opts.numLabels }, (_, i) => `LABEL_${i}`);
  if (names) {
    out.id2label = Object.fromEntries(names.map((n, i) => [String(i), n]));
    out.label2id = Object.fromEntries(names.map((n, i) => [n, i]));
    out.num_labels = names.length;
  }
  return out;
}

/**
 * Loads a model folder or `hf:owner/name[@revision]`: config.json -> architecture (registry) ->
 * weights from model.safetensors or a sharded index, assigned by HF parameter name without a copy
 * where dtypes agree. Returns the model in eval mode with `tokenizer`, `generationConfig` and a
 * `loadReport` attached.
 *
 * @example
 * ```ts
 * const lm = await loadPretrained("hf:HuggingFaceTB/SmolLM2-135M");
 * const clf = await loadPretrained("./gpt2", { task: "sequence-classification", id2label: ["neg", "pos"] });
 * clf.loadReport.newlyInitialized; // ["score.weight"]
 * ```
 */
export async function loadPretrained(pathOrId: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  const dir = await resolveModelPath(pathOrId, opts.hub);
  const file = join(dir, "config.json");
  const raw0 = await readJsonFile(file, { maxBytes: 4 << 20 });
  if (!raw0 || typeof raw0 !== "object" || Array.isArray(raw0))
    throw new ConfigError(file, undefined, "not_object", "expected a JSON object");
  const rawIn = raw0 as Record<string, unknown>;
  const modelType = rawIn.model_type ?? rawIn.architecture; // torchvision configs name the architecture
  if (typeof modelType !== "string")
    throw new ConfigError(file, "model_type", "missing_key", "expected a non-empty string");
  const arch = getArchitecture(modelType, file);
  const task = opts.task ?? taskFromConfig(rawIn, arch);
  const raw = withLabels(rawIn, file, opts);
  const model = arch.create(raw, task, file, { skipInit: true });
  const weights = await loadSafetensorsDir(dir);
  const report = assignWeights(model, weights, arch, { raw, task, file, dtype: opts.dtype ?? "float32", dir });
  const warn = opts.onWarning ?? ((m: string) => console.warn(m));
  for (const w of report.warnings) warn(w);
  model.eval();
  const loaded = model as LoadedModel;
  loaded.loadReport = report;
  loaded.sourceDir = dir;
  if ((opts.tokenizer ?? true) && existsSync(join(dir, "tokenizer.json")))
    loaded.tokenizer = await Tokenizer.fromDir(dir);
  if (task === "causal-lm") loaded.generationConfig = await loadGenerationConfig(dir);
  return loaded;
}

interface AssignContext {
  raw: Record<string, unknown>;
  task: Task;
  file: string;
  dtype: LoadDType;
  dir: string;
}

function convert(t: Tensor, dtype: LoadDType): Tensor {
  const isFloat = t.dtype === "float32" || t.dtype === "float64" || t.dtype === "bfloat16" || t.dtype === "float16";
  if (!isFloat || dtype === "auto" || t.dtype === dtype) return t;
  return cast(t, dtype as DType).detach();
}

/** Assigns checkpoint tensors to the model by name (prefix rules, ignore lists), then initialises what is missing. */
function assignWeights(
  model: PretrainedModel,
  weights: Map<string, RawTensor>,
  arch: Architecture,
  ctx: AssignContext,
): LoadReport {
  const params = allParameterNames(model);
  const buffers = new Map(model.namedBuffers().filter(([, b]) => b.persistent));
  const tied = new Set(model.tiedKeys ?? []);
  const prefix = arch.basePrefix;
  const report: LoadReport = { newlyInitialized: [], mismatched: [], unexpected: [], renamed: 0, warnings: [] };
  const loaded = new Set<string>();
  const bufferValues = new Map<string, Tensor>();
  const has = (k: string) => params.has(k) || buffers.has(k);
  for (const [key, rawT] of weights) {
    if (arch.ignoreKeys?.some((re) => re.test(key))) continue;
    let name = arch.renameKey ? arch.renameKey(key) : key;
    if (name === null) continue;
    if (!has(name) && prefix) {
      if (has(`${prefix}.${name}`)) name = `${prefix}.${name}`;
      else if (name.startsWith(`${prefix}.`) && has(name.slice(prefix.length + 1)))
        name = name.slice(prefix.length + 1);
      if (name !== key) report.renamed++;
    }
    const target = params.get(name) ?? buffers.get(name)?.value;
    if (!target) {
      report.unexpected.push(key);
      continue;
    }
    if (target.shape.join() !== rawT.shape.join()) {
      const inBackbone = prefix !== undefined && name.startsWith(`${prefix}.`);
      if (inBackbone || buffers.has(name)) {
        throw new StateDictError(
          `${ctx.dir}: ${key} has shape ${fmtShape(rawT.shape)} in the checkpoint but ${fmtShape(target.shape)} in the model (check config.json)`,
          [],
          [],
          [{ key: name, expected: [...target.shape], got: [...rawT.shape] }],
        );
      }
      report.mismatched.push({ key: name, checkpoint: [...rawT.shape], model: [...target.shape] });
      continue;
    }
    const t = convert(rawToTensor(rawT, key, ctx.dir), ctx.dtype);
    if (params.has(name)) assignParameter(model, name, t);
    else bufferValues.set(name, t);
    loaded.add(name);
  }
  if (bufferValues.size) model.loadStateDict(bufferValues, { strict: false });
  (model as { tieWeights?: () => void }).tieWeights?.();
  const missing = [...params.keys(), ...buffers.keys()].filter((k) => !loaded.has(k) && !tied.has(k));
  if (missing.length) initialiseMissing(model, missing, arch, ctx);
  report.newlyInitialized = missing;
  const cls = Array.isArray(model.config.architectures) ? String(model.config.architectures[0]) : model.modelType;
  if (report.unexpected.length) {
    report.warnings.push(
      `Some weights of the model checkpoint at ${ctx.dir} were not used when initializing ${cls}: [${report.unexpected.map((k) => `'${k}'`).join(", ")}]`,
    );
  }
  if (missing.length) {
    const mm = report.mismatched.map(
      (m) =>
        `- ${m.key}: found shape ${fmtShape(m.checkpoint)} in the checkpoint and ${fmtShape(m.model)} in the model instantiated`,
    );
    report.warnings.push(
      `Some weights of ${cls} were not initialized from the model checkpoint at ${ctx.dir} and are newly initialized: [${missing.map((k) => `'${k}'`).join(", ")}]` +
        (mm.length ? `\n${mm.join("\n")}` : "") +
        "\nYou should probably TRAIN this model on a down-stream task to be able to use it for predictions and inference.",
    );
  }
  return report;
}

/**
 * Fresh values for `names`: `resetParameters()` of the owning module when it has one and none of
 * its parameters was loaded, else a randomly built twin's.
 */
function initialiseMissing(model: PretrainedModel, names: string[], arch: Architecture, ctx: AssignContext): void {
  const modules = new Map(model.namedModules());
  const missing = new Set(names);
  const owner = (n: string) => modules.get(n.includes(".") ? n.slice(0, n.lastIndexOf(".")) : "");
  const rest: string[] = [];
  const reset = new Set<Module>();
  for (const n of names) {
    const m = owner(n) as (Module & { resetParameters?: () => void }) | undefined;
    const path = n.slice(0, Math.max(0, n.lastIndexOf(".")));
    const allMissing = m?.ownParameters().every(([k]) => missing.has(path ? `${path}.${k}` : k));
    if (m?.resetParameters && allMissing) {
      if (!reset.has(m)) m.resetParameters();
      reset.add(m);
    } else rest.push(n);
  }
  if (!rest.length) return;
  const twin = arch.create(ctx.raw, ctx.task, ctx.file);
  const src = twin.stateDict();
  const all = allParameterNames(twin);
  const sd = new Map<string, Tensor>();
  for (const n of rest) {
    const v = all.get(n) ?? src.get(n);
    if (v) sd.set(n, v);
  }
  model.loadStateDict(sd, { strict: false });
}

export interface SaveOptions {
  /** Tokenizer files to write alongside (default: the one `loadPretrained` attached). */
  tokenizer?: Tokenizer | null;
  /** Store floats as this dtype (default: as the parameters are). */
  dtype?: "float32" | "bfloat16" | "float16";
  /** generation_config.json contents (default: the loaded one's raw object, when there is one). */
  generationConfig?: Record<string, unknown> | null;
}

const TORCH_DTYPE: Record<string, string> = { F32: "float32", BF16: "bfloat16", F16: "float16", F64: "float64" };
const ST_DTYPE = { float32: "F32", bfloat16: "BF16", float16: "F16" } as const;

/**
 * Writes `config.json` + `model.safetensors` (tied weights omitted, as HF) and the tokenizer /
 * generation config, each file atomically, in a form `transformers.AutoModel*.from_pretrained` reads.
 *
 * @example
 * ```ts
 * await saveModel(model, "./out", { dtype: "bfloat16" });
 * ```
 */
export async function saveModel(model: PretrainedModel, dir: string, opts: SaveOptions = {}): Promise<void> {
  await mkdir(dir, { recursive: true });
  const tied = new Set(model.tiedKeys ?? []);
  const tensors = new Map<string, RawTensor>();
  const counts = new Map<string, number>();
  for (const [k, t] of model.stateDict()) {
    if (tied.has(k)) continue;
    const r = tensorToRaw(t, opts.dtype ? ST_DTYPE[opts.dtype] : undefined);
    tensors.set(k, r);
    if (TORCH_DTYPE[r.dtype]) counts.set(r.dtype, (counts.get(r.dtype) ?? 0) + t.size);
  }
  const main = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "F32";
  await writeSafetensors(join(dir, "model.safetensors"), tensors, { format: "pt" });
  const config = { ...model.config, model_type: model.modelType, torch_dtype: TORCH_DTYPE[main] };
  await writeJson(join(dir, "config.json"), config);
  const loaded = model as unknown as Partial<LoadedModel>;
  const gen = opts.generationConfig === undefined ? loaded.generationConfig?.raw : opts.generationConfig;
  if (gen && Object.keys(gen).length) await writeJson(join(dir, "generation_config.json"), gen);
  const tok = opts.tokenizer === undefined ? loaded.tokenizer : opts.tokenizer;
  if (tok) await tok.save(dir);
}

async function writeJson(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, [new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`)]);
}
