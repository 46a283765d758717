/**
 * What `train`, `plan`, `eval`, `merge` and `predict` share: the backend, number parsing for
 * flags, the task of a model folder, loading the user's data for a task (text or images), and
 * loading a model, a run folder or an adapter for inference.
 *
 * @example
 * ```ts
 * await setupBackend();
 * const run = await prepareRun(resolveCliConfig({ file: "recipe.yaml" }));   // model + encoded data
 * const m = await loadForInference("./runs/reviews");                         // model/, merged/ or base + adapter/
 * ```
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, extname, join, resolve } from "node:path";
import { initBackend } from "../backend/index.ts";
import {
  type AugmentOptions,
  formatClassCounts,
  type ImageDataset,
  indexImageFolder,
  indexImageList,
  type Preprocessor,
  type PreprocessorOverrides,
  preprocessorFromConfig,
  stratifiedSplit,
} from "../data/images/index.ts";
import { formatLengthStats, type PreparedTextData, prepareTextData } from "../data/text/index.ts";
import { readJsonFile } from "../formats/hf-config.ts";
import { resolveModelPath } from "../formats/hub.ts";
import { getArchitecture, type PretrainedModel, type Task } from "../models/index.ts";
import { type LoadedModel, loadPretrained, taskFromConfig } from "../models/pretrained.ts";
import { loadAdapter } from "../peft/index.ts";
import { manualSeed } from "../tensor/rng.ts";
import { Tokenizer } from "../tokenize/tokenizer.ts";
import type { ImageDataSpec } from "../train/data.ts";
import type { CliConfig } from "./config-schema.ts";
import { UsageError } from "./config-schema.ts";

export { UsageError };

/** The CLI's tasks. */
export type CliTask = "text-classification" | "token-classification" | "causal-lm" | "image-classification";

/** Native backend when built (TUNEKIT_BACKEND overrides), as `import "tunekit"` does. */
export async function setupBackend(): Promise<void> {
  await initBackend();
}

export { int, num, posInt } from "./args.ts";

/** Folder's `config.json`, the architecture and the head it names. */
export async function modelInfo(pathOrId: string): Promise<{ dir: string; raw: Record<string, unknown>; task: Task }> {
  const dir = await resolveModelPath(pathOrId);
  const raw = (await readJsonFile(join(dir, "config.json"), { maxBytes: 4 << 20 })) as Record<string, unknown>;
  const arch = getArchitecture(String(raw.model_type ?? raw.architecture), join(dir, "config.json"));
  return { dir, raw, task: taskFromConfig(raw, arch) };
}

const isDir = (p: string) => {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
};

/** The CLI task: given, else images for a folder of images, else from the model's head. */
export function pickTask(given: CliTask | undefined, modelTask: Task, dataPath: string | undefined): CliTask {
  if (given) return given;
  if (modelTask === "image-classification" || (dataPath && isDir(dataPath))) return "image-classification";
  if (modelTask === "causal-lm") return "causal-lm";
  if (modelTask === "token-classification") return "token-classification";
  return "text-classification";
}

/** The loader's model head for a CLI task. */
export function modelTaskOf(t: CliTask): Task {
  return t === "text-classification" ? "sequence-classification" : t;
}

/** Image preprocessing from the model folder (preprocessor_config.json, else torchvision defaults by architecture). */
export function imagePreprocessor(
  dir: string,
  raw: Record<string, unknown>,
  image: CliConfig["data"]["image"] = {},
): Preprocessor {
  const o: PreprocessorOverrides = {};
  if (image.size !== undefined) o.size = image.size;
  if (image.cropSize !== undefined) o.cropSize = image.cropSize;
  if (image.mean) o.mean = image.mean;
  if (image.std) o.std = image.std;
  const src = existsSync(join(dir, "preprocessor_config.json"))
    ? dir
    : String(raw.architecture ?? raw.model_type ?? dir);
  return preprocessorFromConfig(src, o);
}

/** An HF `preprocessor_config.json` for a preprocessor (written next to a fine-tuned image model). */
export function preprocessorJson(p: Preprocessor): Record<string, unknown> {
  const pil = ["nearest", "lanczos", "bilinear", "bicubic", "box", "hamming"].indexOf(p.resample);
  const size = p.resize
    ? "shortestEdge" in p.resize
      ? { shortest_edge: p.resize.shortestEdge }
      : p.resize
    : undefined;
  return {
    do_resize: p.resize !== null,
    ...(size ? { size } : {}),
    do_center_crop: p.centerCrop !== null,
    ...(p.centerCrop ? { crop_size: p.centerCrop } : {}),
    do_rescale: p.rescaleFactor !== null,
    ...(p.rescaleFactor !== null ? { rescale_factor: p.rescaleFactor } : {}),
    do_normalize: p.mean !== null,
    ...(p.mean ? { image_mean: p.mean, image_std: p.std } : {}),
    resample: pil,
    image_processor_type: "ViTImageProcessor",
  };
}

/** An image folder or a CSV/JSONL list of `path,label`. */
export async function indexImages(path: string): Promise<ImageDataset> {
  if (isDir(path)) return indexImageFolder(path);
  if ([".csv", ".jsonl"].includes(extname(path).toLowerCase())) return indexImageList(path);
  throw new UsageError(`${path}: expected an image folder (one sub-folder per class) or a .csv/.jsonl list`);
}

/** Relabels `ds` onto `names` (a model's labels) by class name; unknown classes are errors. */
export function relabel(ds: ImageDataset, names: readonly string[]): ImageDataset {
  const id = new Map(names.map((n, i) => [n, i]));
  const map = ds.classes.map((c) => {
    const i = id.get(c);
    if (i === undefined)
      throw new UsageError(`${ds.root}: class '${c}' is not a label of the model (${names.join(", ")})`);
    return i;
  });
  const items = ds.items.map((it) => ({ path: it.path, label: map[it.label] }));
  const classCounts = names.map((_, i) => items.filter((it) => it.label === i).length);
  return { ...ds, classes: [...names], items, classCounts };
}

/** A model and data, ready for the trainer (or for `plan` to describe). */
export interface PreparedRun {
  task: CliTask;
  modelDir: string;
  model: LoadedModel;
  tokenizer?: Tokenizer;
  text?: PreparedTextData;
  images?: { train: ImageDataset; validation?: ImageDataset; transform: ImageDataSpec["transform"] };
  train: unknown;
  eval?: unknown;
  labels?: readonly string[];
  preprocessor?: Preprocessor;
  warnings: string[];
}

/** Loads the data (before the model: the labels decide the head) and then the model. */
export async function prepareRun(c: CliConfig): Promise<PreparedRun> {
  const info = await modelInfo(c.model.path as string);
  const task = pickTask(c.model.task, info.task, c.data.train);
  const d = c.data;
  const warnings: string[] = [];
  const seed = c.train.seed ?? 42;
  let labels: readonly string[] | undefined = d.labels;
  const out: Partial<PreparedRun> = { task, modelDir: resolve(info.dir), warnings };
  if (task === "image-classification") {
    const all = await indexImages(d.train as string);
    warnings.push(...all.warnings);
    let train = all;
    let validation: ImageDataset | undefined;
    if (d.validation) validation = await indexImages(d.validation);
    else if ((d.validationSplit ?? 0.1) > 0)
      ({ train, validation } = stratifiedSplit(all, {
        validationFraction: d.validationSplit ?? 0.1,
        seed: d.seed ?? 42,
      }));
    if (labels) train = relabel(train, labels);
    else labels = train.classes;
    if (validation) validation = relabel(validation, labels);
    const preprocessor = imagePreprocessor(info.dir, info.raw, d.image);
    const aug = d.image?.augment;
    const rrc = aug ? aug.randomResizedCrop : undefined;
    const augment: AugmentOptions | null = aug
      ? ({ ...aug, randomResizedCrop: rrc === true || rrc === undefined ? {} : rrc } as AugmentOptions)
      : null;
    const transform = { preprocessor, augment };
    const mix =
      d.image?.mixupAlpha || d.image?.cutmixAlpha
        ? { mixupAlpha: d.image.mixupAlpha, cutmixAlpha: d.image.cutmixAlpha }
        : null;
    const spec = (ds: ImageDataset): ImageDataSpec => ({
      dataset: ds,
      transform,
      mix,
      skipInvalid: d.skipInvalid ?? false,
      ...(d.image?.workers !== undefined ? { workers: d.image.workers } : {}),
    });
    out.images = { train, ...(validation?.items.length ? { validation } : {}), transform };
    out.train = spec(train);
    if (validation?.items.length) out.eval = { ...spec(validation), mix: null };
    out.preprocessor = preprocessor;
  } else {
    if (!existsSync(join(info.dir, "tokenizer.json")))
      throw new UsageError(`${info.dir}: no tokenizer.json; text fine-tuning needs the model's tokenizer`);
    const tok = await Tokenizer.fromDir(info.dir);
    const data = await prepareTextData({
      train: d.train as string,
      ...(d.validation ? { validation: d.validation } : {}),
      ...(d.test ? { test: d.test } : {}),
      task: task === "causal-lm" || task === "token-classification" ? task : "text-classification",
      tokenizer: tok,
      ...(d.columns ? { columns: d.columns } : {}),
      ...(d.format ? { format: d.format } : {}),
      ...(labels ? { labels } : {}),
      ...(d.problemType ? { problemType: d.problemType } : {}),
      ...(d.lmFormat ? { lmFormat: d.lmFormat } : {}),
      ...(d.maxLength ? { maxLength: d.maxLength } : {}),
      ...(d.blockSize ? { blockSize: d.blockSize } : {}),
      ...(d.packing !== undefined ? { packing: d.packing } : {}),
      validationSplit: d.validationSplit ?? 0.1,
      seed: d.seed ?? 42,
      skipInvalid: d.skipInvalid ?? false,
    });
    if (data.labels) labels = data.labels.names;
    out.tokenizer = tok;
    out.text = data;
    out.train = data.train;
    if (data.validation) out.eval = data.validation;
  }
  // New heads are initialised from the seed, so a run is reproducible from its config.
  manualSeed(seed);
  const model = await loadPretrained(info.dir, {
    task: modelTaskOf(task),
    ...(task !== "causal-lm" && labels && !c.model.numLabels ? { id2label: labels } : {}),
    ...(c.model.numLabels ? { numLabels: c.model.numLabels } : {}),
    ...(task === "text-classification" && !labels && out.text?.train.numLabels
      ? { numLabels: out.text.train.numLabels }
      : {}),
    ...(c.model.dtype ? { dtype: c.model.dtype } : {}),
    onWarning: (w) => warnings.push(shortWarning(w)),
  });
  return { ...(out as PreparedRun), model, labels };
}

/** Data statistics as lines (printed by `train` before the first step, and by `plan`). */
export function dataLines(r: PreparedRun): string[] {
  const out: string[] = [];
  if (r.text) {
    for (const [name, ds] of [
      ["train", r.text.train],
      ["validation", r.text.validation],
      ["test", r.text.test],
    ] as const)
      if (ds) out.push(`${name}: ${formatLengthStats(ds.stats).replaceAll("\n", `\n${" ".repeat(name.length + 2)}`)}`);
    if (r.text.skipped.length) {
      out.push(`skipped ${r.text.skipped.length} invalid record(s):`);
      for (const s of r.text.skipped.slice(0, 20)) out.push(`  ${s.file}:${s.line}: ${s.reason}`);
      if (r.text.skipped.length > 20) out.push(`  ... and ${r.text.skipped.length - 20} more`);
    }
  }
  if (r.images) {
    out.push(`train: ${r.images.train.items.length} images in ${r.images.train.classes.length} classes`);
    out.push(
      ...formatClassCounts(r.images.train)
        .split("\n")
        .map((l) => `  ${l}`),
    );
    if (r.images.validation) out.push(`validation: ${r.images.validation.items.length} images`);
  }
  if (r.labels && r.task !== "causal-lm") out.push(`labels: ${r.labels.join(", ")}`);
  return out;
}

/** transformers' long "newly initialized" warning as one line. */
export function shortWarning(w: string): string {
  const m = /newly initialized: \[(.*?)\]/.exec(w);
  if (m) return `new weights (randomly initialised, trained from scratch): ${m[1].replaceAll("'", "")}`;
  return w.split("\n")[0];
}

/** Run-folder metadata written by `tunekit train` next to the trainer's files. */
export interface RunMeta {
  task: CliTask;
  /** The base model folder (resolved). */
  modelPath: string;
  labels?: string[];
  preprocessor?: Preprocessor;
}

export const RUN_META = "run.json";

function readMeta(dir: string): RunMeta | undefined {
  const f = join(dir, RUN_META);
  if (!existsSync(f)) return undefined;
  return JSON.parse(readFileSync(f, "utf8")) as RunMeta;
}

/** A model ready for inference, with what is needed to feed it. */
export interface InferenceModel {
  model: PretrainedModel & Partial<LoadedModel>;
  task: CliTask;
  tokenizer?: Tokenizer;
  labels?: string[];
  preprocessor?: Preprocessor;
  /** What was loaded, in words. */
  source: string;
}

/**
 * Loads a model folder, a run folder (`model/`, else `merged/`, else base + `adapter/`) or a PEFT
 * adapter folder (base from `base`, the run's metadata or `base_model_name_or_path`).
 */
export async function loadForInference(path: string, opts: { base?: string } = {}): Promise<InferenceModel> {
  const quiet = { onWarning: () => {} };
  const p = path.startsWith("hf:") ? path : resolve(path);
  if (!p.startsWith("hf:") && !existsSync(p)) throw new UsageError(`${path}: no such file or folder`);
  const runMeta = p.startsWith("hf:") ? undefined : (readMeta(p) ?? readMeta(dirname(p)));
  let dir = p;
  if (!p.startsWith("hf:") && readMeta(p)) {
    const sub = ["model", "merged", "adapter"].find((s) => existsSync(join(p, s)));
    if (!sub) throw new UsageError(`${path}: the run has no model/, merged/ or adapter/ folder yet (did it finish?)`);
    dir = join(p, sub);
  }
  let model: LoadedModel;
  let source = dir;
  if (!dir.startsWith("hf:") && existsSync(join(dir, "adapter_config.json"))) {
    const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8")) as Record<string, unknown>;
    const base = opts.base ?? runMeta?.modelPath ?? (cfg.base_model_name_or_path as string | undefined);
    if (!base) throw new UsageError(`${dir}: adapter without a base model; give --base <model>`);
    const info = await modelInfo(base);
    const task =
      runMeta?.task ?? pickTask(undefined, cfg.task_type === "CAUSAL_LM" ? "causal-lm" : info.task, undefined);
    model = await loadPretrained(info.dir, {
      ...quiet,
      task: modelTaskOf(task),
      ...(runMeta?.labels && task !== "causal-lm" ? { id2label: runMeta.labels } : {}),
    });
    await loadAdapter(model, dir);
    source = `${info.dir} + adapter ${dir}`;
  } else {
    const info = await modelInfo(dir);
    // A saved classifier whose config.json lacks `architectures` still has its labels.
    const headless = info.task === "base" && info.raw.id2label !== undefined;
    const task = runMeta?.task ?? (headless ? "text-classification" : undefined);
    model = await loadPretrained(dir, { ...quiet, ...(task ? { task: modelTaskOf(task) } : {}) });
  }
  model.eval();
  const task: CliTask = runMeta?.task ?? pickTask(undefined, model.task as Task, undefined);
  const id2label = model.config.id2label as Record<string, string> | undefined;
  const labels = id2label ? Object.keys(id2label).map((k) => id2label[k]) : runMeta?.labels;
  let preprocessor = runMeta?.preprocessor;
  if (task === "image-classification" && !preprocessor)
    preprocessor = imagePreprocessor(model.sourceDir, model.config as Record<string, unknown>);
  return {
    model,
    task,
    ...(model.tokenizer ? { tokenizer: model.tokenizer } : {}),
    ...(labels ? { labels } : {}),
    ...(preprocessor ? { preprocessor } : {}),
    source,
  };
}

/** `runs/<model>-<yyyymmdd-hhmmss>` for a run without `output.runDir`. */
export function defaultRunDir(modelPath: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return join("runs", `${basename(modelPath.replace(/^hf:/, "").replace(/@.*$/, "")) || "model"}-${t}`);
}

/** 1234567 -> "1.23M". */
export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

/** Bytes as "12.3 MiB". */
export function fmtBytes(b: number): string {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = b;
  while (x >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i === 0 ? x : x.toFixed(1)} ${u[i]}`;
}
