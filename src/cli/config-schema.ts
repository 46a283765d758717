/**
 * The YAML / command-line config of `tunekit train` and `tunekit plan`: one zod schema (every key
 * documented, unknown keys rejected with the closest valid key), dotted overrides
 * (`train.epochs=5`), flags mapped onto the same keys, and the mapping to the trainer's options.
 *
 * Sections: `model` (what to load), `data` (files, columns, lengths, image size/augmentation),
 * `strategy` + `lora` (what trains), `optimizer`, `schedule`, `train` (loop settings), `output`.
 *
 * @example
 * ```ts
 * const cfg = resolveCliConfig({ file: "recipes/text-classification-lora.yaml", overrides: ["train.epochs=5"] });
 * cfg.train.epochs; // 5
 * resolveCliConfig({ overrides: ["train.epoch=5"] }); // ConfigUsageError: unknown key 'train.epoch' (did you mean 'train.epochs'?)
 * ```
 */
import { readFileSync } from "node:fs";
import YAML from "yaml";
import * as z from "zod";
import { closestMatch } from "../data/errors.ts";
import { TunekitError } from "../tensor/errors.ts";

/** A usage error (bad flag, key, value or file): one line, exit code 2. */
export class UsageError extends TunekitError {
  readonly exitCode = 2;
}

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const fraction = z.number().min(0).lt(1);
const stringList = z.union([z.string(), z.array(z.string())]);

const earlyStopping = z.strictObject({
  metric: z.string().optional().describe("eval metric to watch (loss, accuracy, f1Macro, ...); default loss"),
  patience: posInt.optional().describe("evaluations without improvement before stopping (default 3)"),
  mode: z.enum(["min", "max"]).optional(),
  minDelta: z.number().nonnegative().optional(),
  restoreBest: z.boolean().optional().describe("put the best weights back at the end (default true)"),
});

/** The model to fine-tune. */
const modelSection = z.strictObject({
  path: z.string().min(1).optional().describe("model folder or hf:owner/name[@revision] (required)"),
  task: z
    .enum(["text-classification", "token-classification", "causal-lm", "image-classification"])
    .optional()
    .describe("default: image-classification for an image folder, else from the model's config.json"),
  numLabels: posInt.optional().describe("classifier size; default: the number of labels in the data"),
  dtype: z.enum(["float32", "bfloat16", "float16"]).optional().describe("parameter dtype (default float32)"),
});

const augment = z.strictObject({
  randomResizedCrop: z
    .union([
      z.boolean(),
      z.strictObject({
        scale: z.tuple([z.number(), z.number()]).optional(),
        ratio: z.tuple([z.number(), z.number()]).optional(),
      }),
    ])
    .optional(),
  horizontalFlip: z.number().min(0).max(1).optional().describe("flip probability (default 0.5)"),
  rotation: z.number().nonnegative().optional().describe("maximum rotation in degrees"),
  colorJitter: z
    .strictObject({
      brightness: z.number().optional(),
      contrast: z.number().optional(),
      saturation: z.number().optional(),
      hue: z.number().optional(),
    })
    .optional(),
  randomErasing: z
    .strictObject({
      p: z.number().optional(),
      scale: z.tuple([z.number(), z.number()]).optional(),
      ratio: z.tuple([z.number(), z.number()]).optional(),
      value: z.union([z.number(), z.literal("random")]).optional(),
    })
    .optional(),
});

const imageSection = z.strictObject({
  size: posInt.optional().describe("resize: shorter side (default: the model's preprocessor)"),
  cropSize: nonNegInt.optional().describe("centre crop (0 = none; default: the model's preprocessor)"),
  mean: z.array(z.number()).length(3).optional(),
  std: z.array(z.number().positive()).length(3).optional(),
  augment: z
    .union([z.literal(false), augment])
    .optional()
    .describe("train-time augmentation; false/absent = none"),
  mixupAlpha: z.number().positive().optional(),
  cutmixAlpha: z.number().positive().optional(),
  workers: nonNegInt.optional().describe("decoding worker threads (default: the loader's)"),
});

/** The user's data. */
const dataSection = z.strictObject({
  train: z
    .string()
    .min(1)
    .optional()
    .describe("training file (csv, tsv, jsonl, parquet), image folder or image list (required)"),
  validation: z.string().min(1).optional().describe("validation file; default: a seeded split of train"),
  test: z.string().min(1).optional(),
  format: z.enum(["csv", "tsv", "jsonl", "parquet"]).optional().describe("default: from the file extension"),
  columns: z
    .strictObject({
      text: z.string().optional(),
      text_pair: z.string().optional(),
      label: z.string().optional(),
      prompt: z.string().optional(),
      completion: z.string().optional(),
      messages: z.string().optional(),
      tokens: z.string().optional(),
      tags: z.string().optional(),
    })
    .optional()
    .describe("field -> column name in the file"),
  labels: z.array(z.string()).optional().describe("class names in id order (default: from the training data)"),
  problemType: z.enum(["single_label_classification", "multi_label_classification", "regression"]).optional(),
  lmFormat: z.enum(["text", "prompt-completion", "messages"]).optional(),
  maxLength: posInt.optional().describe("truncation length in tokens (default min(model_max_length, 512))"),
  blockSize: posInt.optional().describe("plain-text LM: packed block length (default maxLength)"),
  packing: z.boolean().optional(),
  validationSplit: fraction.optional().describe("fraction of train held out when no validation file (default 0.1)"),
  seed: z.number().int().optional().describe("split seed (default 42)"),
  skipInvalid: z.boolean().optional().describe("skip malformed records/images and report them instead of stopping"),
  image: imageSection.optional(),
});

/** What trains; a string (`head`, `top:N`, `full`, `two-phase`, `lora`) is normalised into this. */
const strategySection = z.strictObject({
  name: z.enum(["head", "top", "full", "two-phase", "lora"]).describe("head | top | full | two-phase | lora"),
  topN: nonNegInt.optional().describe("top: blocks to train; two-phase: blocks unfrozen in phase 2 (default all)"),
  headEpochs: posInt.optional().describe("two-phase: phase-1 (head only) epochs (default 1)"),
  headEarlyStopping: earlyStopping.optional(),
  lrFactor: z.number().positive().optional().describe("two-phase: phase-2 lr = lr * lrFactor (default 0.1)"),
  unfreezeEvery: posInt.optional().describe("gradual unfreezing: one more block every N epochs"),
  cacheFeatures: z
    .boolean()
    .optional()
    .describe("head on images without augmentation: cache backbone features (default true)"),
});

const loraSection = z.strictObject({
  targets: stringList.optional().describe("module names, globs, a regex or all-linear (required for lora)"),
  rank: posInt.optional().describe("r (default 8)"),
  alpha: z.number().positive().optional().describe("lora_alpha (default 8)"),
  dropout: z.number().min(0).lt(1).optional(),
  rsLoRA: z.boolean().optional().describe("scale by alpha/sqrt(r)"),
  rankPattern: z.record(z.string(), posInt).optional(),
  alphaPattern: z.record(z.string(), z.number().positive()).optional(),
  modulesToSave: z.array(z.string()).optional().describe("trained and saved in full (default: the new head)"),
  excludeModules: stringList.optional(),
});

const optimizerSection = z.strictObject({
  name: z.enum(["adamw", "adam", "sgd"]).optional().describe("default adamw"),
  lr: z.number().positive().optional().describe("default 5e-5"),
  weightDecay: z.number().nonnegative().optional(),
  betas: z.tuple([z.number(), z.number()]).optional(),
  eps: z.number().positive().optional(),
  momentum: z.number().nonnegative().optional(),
  nesterov: z.boolean().optional(),
  layerwiseLrDecay: z.number().positive().optional(),
  groups: z
    .array(
      z.strictObject({
        pattern: z.string(),
        lr: z.number().positive().optional(),
        weightDecay: z.number().nonnegative().optional(),
      }),
    )
    .optional(),
});

const scheduleSection = z.strictObject({
  name: z.enum(["constant", "constant_with_warmup", "linear", "cosine"]).optional().describe("default linear"),
  warmupSteps: nonNegInt.optional(),
  warmupRatio: fraction.optional(),
});

const trainSection = z.strictObject({
  epochs: posInt.optional().describe("default 3"),
  maxSteps: posInt.optional().describe("stop after this many optimizer steps"),
  batchSize: posInt.optional().describe("default 8"),
  evalBatchSize: posInt.optional(),
  gradAccumulation: posInt.optional(),
  clipGradNorm: z.number().nonnegative().nullable().optional().describe("default 1.0; 0/null = off"),
  evalEvery: posInt.optional().describe("evaluate every N steps"),
  evalEachEpoch: z.boolean().optional(),
  earlyStopping: earlyStopping.nullable().optional(),
  checkpoint: z
    .strictObject({
      every: nonNegInt.optional(),
      everyEpoch: z.boolean().optional(),
      keepLast: posInt.optional(),
      keepBest: z.boolean().optional(),
    })
    .optional(),
  nonFinite: z
    .strictObject({ policy: z.enum(["skip", "halt"]).optional(), maxConsecutive: posInt.optional() })
    .optional(),
  seed: z.number().int().optional().describe("default 42"),
  resume: z.boolean().optional().describe("continue from the newest complete checkpoint in output.runDir"),
  logEvery: posInt.optional().describe("a train row in metrics.jsonl every N steps (default 10)"),
});

const outputSection = z.strictObject({
  runDir: z.string().min(1).optional().describe("run folder (default ./runs/<model>-<time>)"),
  saveMerged: z.boolean().optional().describe("lora: also write the merged model"),
});

/** The whole config. Every section is optional; `model.path` and `data.train` are required at run time. */
export const cliConfigSchema = z.strictObject({
  model: modelSection.default({}),
  data: dataSection.default({}),
  strategy: strategySection.default({ name: "full" }),
  lora: loraSection.optional(),
  optimizer: optimizerSection.default({}),
  schedule: scheduleSection.default({}),
  train: trainSection.default({}),
  output: outputSection.default({}),
});

/** A validated config. */
export type CliConfig = z.infer<typeof cliConfigSchema>;

/** Flag name -> dotted key (the flags are shorthands for overrides). */
export const FLAG_KEYS: Record<string, string> = {
  model: "model.path",
  data: "data.train",
  validation: "data.validation",
  task: "model.task",
  strategy: "strategy",
  epochs: "train.epochs",
  maxSteps: "train.maxSteps",
  lr: "optimizer.lr",
  batchSize: "train.batchSize",
  out: "output.runDir",
  resume: "train.resume",
  skipInvalid: "data.skipInvalid",
  seed: "train.seed",
};

/** `"top:2"` -> `{ name: "top", topN: 2 }`; objects pass through. */
function normalizeStrategy(v: unknown): unknown {
  if (typeof v !== "string") return v;
  const m = /^top:(\d+)$/.exec(v);
  if (m) return { name: "top", topN: Number(m[1]) };
  return { name: v };
}

/** Parses an override value as YAML (`5`, `true`, `[a, b]`, `null`), else keeps the string. */
export function parseValue(s: string): unknown {
  if (s === "") return "";
  try {
    return YAML.parse(s);
  } catch {
    return s;
  }
}

/** Sets `obj[a][b][c] = value` for `a.b.c`, creating objects on the way. */
export function setDotted(obj: Record<string, unknown>, key: string, value: unknown): void {
  const parts = key.split(".");
  if (parts.some((p) => p === "")) throw new UsageError(`bad key '${key}'`);
  let o = obj;
  for (let i = 0; i < parts.length - 1; i++) {
    const p = parts[i];
    if (p === "strategy" && i === 0) o[p] = normalizeStrategy(o[p]);
    const next = o[p];
    if (next === undefined || next === null || typeof next !== "object" || Array.isArray(next)) {
      if (next !== undefined && next !== null)
        throw new UsageError(`cannot set '${key}': '${parts.slice(0, i + 1).join(".")}' is not a section`);
      o[p] = {};
    }
    o = o[p] as Record<string, unknown>;
  }
  o[parts[parts.length - 1]] = value;
}

/** `key=value` -> [key, parsed value]; anything else is a usage error. */
export function parseOverride(arg: string): [string, unknown] {
  const eq = arg.indexOf("=");
  if (eq <= 0) throw new UsageError(`expected key=value (e.g. train.epochs=5), got '${arg}'`);
  return [arg.slice(0, eq).trim(), parseValue(arg.slice(eq + 1))];
}

/** The zod object schema at a dotted path (through defaults, optionals and unions), or undefined. */
function objectAt(path: readonly (string | number)[]): z.ZodObject | undefined {
  let s: z.ZodType | undefined = cliConfigSchema;
  for (const p of path) {
    s = unwrapObject(s);
    if (!s) return undefined;
    s = (s as z.ZodObject).shape[String(p)] as z.ZodType | undefined;
  }
  return unwrapObject(s);
}

function unwrapObject(s: z.ZodType | undefined): z.ZodObject | undefined {
  for (let i = 0; s && i < 8; i++) {
    if (s instanceof z.ZodObject) return s;
    if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault)
      s = s.unwrap() as z.ZodType;
    else if (s instanceof z.ZodUnion) s = (s.options as z.ZodType[]).find((o) => unwrapObject(o) !== undefined);
    else return undefined;
  }
  return undefined;
}

/** Every valid dotted key (for suggestions and `--help`). */
export function validKeys(path: string[] = []): string[] {
  const o = objectAt(path);
  if (!o) return [];
  const out: string[] = [];
  for (const k of Object.keys(o.shape)) {
    const p = [...path, k];
    const sub = validKeys(p);
    out.push(p.join("."), ...sub);
  }
  return out;
}

function describeValue(v: unknown): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return `a list (${JSON.stringify(v)})`;
  if (typeof v === "object") return "a section";
  if (typeof v === "string") return `'${v}'`;
  return `${typeof v} ${String(v)}`;
}

function get(obj: unknown, path: readonly PropertyKey[]): unknown {
  let o = obj;
  for (const p of path) o = o && typeof o === "object" ? (o as Record<PropertyKey, unknown>)[p] : undefined;
  return o;
}

/** One zod issue as one line naming the key. */
function issueLine(issue: z.core.$ZodIssue, input: unknown, where: string): string {
  const key = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    const parentPath = issue.path.map(String);
    const siblings = Object.keys(objectAt(parentPath)?.shape ?? {});
    const lines = issue.keys.map((k) => {
      const full = [...parentPath, k].join(".");
      // A key that exists in another section ("lr" at the top) is suggested with its full path.
      const elsewhere = siblings.includes(k) ? undefined : validKeys().find((v) => v.endsWith(`.${k}`));
      const near = closestMatch(k, siblings);
      const hint = elsewhere ?? (near ? [...parentPath, near].join(".") : undefined);
      return `${where}unknown key '${full}'${hint ? ` (did you mean '${hint}'?)` : ""}`;
    });
    return lines.join("\n");
  }
  const got = get(input, issue.path);
  if (issue.code === "invalid_type")
    return `${where}${key}: expected ${issue.expected}${issue.expected === "object" ? " (a section)" : ""}, got ${describeValue(got)}`;
  if (issue.code === "invalid_value")
    return `${where}${key}: expected one of ${issue.values.map((v) => `'${String(v)}'`).join(", ")}, got ${describeValue(got)}`;
  if (issue.code === "too_small" || issue.code === "too_big") {
    const op = issue.code === "too_small" ? (issue.inclusive ? ">=" : ">") : issue.inclusive ? "<=" : "<";
    const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
    const what = issue.origin === "number" ? "" : ` ${issue.origin} length`;
    return `${where}${key}: expected${what} ${op} ${String(bound)}, got ${describeValue(got)}`;
  }
  if (issue.code === "invalid_union") return `${where}${key}: unexpected value ${describeValue(got)}`;
  return `${where}${key}: ${issue.message}${got !== undefined ? ` (got ${describeValue(got)})` : ""}`;
}

/** Validates a raw config object; errors name the key (first issue only: one clear line). */
export function validateConfig(raw: unknown, where = "config: "): CliConfig {
  const input = raw && typeof raw === "object" && !Array.isArray(raw) ? { ...(raw as object) } : raw;
  if (input && typeof input === "object" && "strategy" in input)
    (input as Record<string, unknown>).strategy = normalizeStrategy((input as Record<string, unknown>).strategy);
  const r = cliConfigSchema.safeParse(input ?? {});
  if (!r.success) throw new UsageError(issueLine(r.error.issues[0], input, where));
  return r.data;
}

/** Reads a YAML config file (an object at the top). */
export function readConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new UsageError(`${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new UsageError(`${file}: not valid YAML (${(e as Error).message.split("\n")[0]})`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== "object" || Array.isArray(doc))
    throw new UsageError(`${file}: expected a mapping of sections at the top`);
  return doc as Record<string, unknown>;
}

/** Inputs of {@link resolveCliConfig}. */
export interface ConfigSources {
  /** YAML file (`-c`). */
  file?: string;
  /** Flag values by {@link FLAG_KEYS} name. */
  flags?: Record<string, unknown>;
  /** `key=value` arguments, applied last. */
  overrides?: string[];
}

/** YAML file, then flags, then dotted overrides; validated. */
export function resolveCliConfig(src: ConfigSources): CliConfig {
  const raw: Record<string, unknown> = src.file ? readConfigFile(src.file) : {};
  const where = src.file ? `${src.file}: ` : "config: ";
  // The file alone first, so an error in it names the file.
  if (src.file) validateConfig(raw, where);
  for (const [flag, v] of Object.entries(src.flags ?? {})) {
    if (v === undefined) continue;
    const key = FLAG_KEYS[flag];
    if (!key) throw new UsageError(`unknown flag '${flag}'`);
    setDotted(raw, key, key === "strategy" ? normalizeStrategy(v) : v);
  }
  for (const o of src.overrides ?? []) {
    const [k, v] = parseOverride(o);
    setDotted(raw, k, k === "strategy" ? normalizeStrategy(v) : v);
  }
  return validateConfig(raw, "");
}

/** The config as YAML (what `plan` prints and `train` saves as `run.yaml`). */
export function configYaml(c: unknown): string {
  return YAML.stringify(JSON.parse(JSON.stringify(c)));
}

/** Checks what a run needs: a model and training data; lora targets for the lora strategy. */
export function requireRunnable(c: CliConfig): void {
  if (!c.model.path) throw new UsageError("no model: give --model <dir> or model.path=<dir>");
  if (!c.data.train) throw new UsageError("no training data: give --data <file|folder> or data.train=<path>");
  if (c.strategy.name === "lora" && !c.lora?.targets)
    throw new UsageError("strategy 'lora' needs lora.targets (e.g. lora.targets=[q_proj,v_proj] or all-linear)");
  if (c.strategy.name === "top" && c.strategy.topN === undefined)
    throw new UsageError("strategy 'top' needs a block count: strategy=top:N");
}
