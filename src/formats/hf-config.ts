/**
 * Reading and validating Hugging Face `config.json` / `generation_config.json`.
 *
 * Every value that later sizes an allocation comes through one of the typed getters here, so a
 * malformed or hostile file fails early with a {@link ConfigError} that names the file, the key and
 * what was expected. Per-architecture config types live in `src/models/` and use these helpers.
 *
 * @example
 * ```ts
 * const cfg = await loadConfig("./smollm-135m");
 * const hidden = getNumber(cfg, "hidden_size", undefined, { min: 1, integer: true });
 * ```
 */
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { FormatError } from "./errors.ts";

/** Codes a {@link ConfigError} can carry. */
export type ConfigErrorCode =
  | "io" // the file could not be read
  | "too_large" // over the size cap
  | "bad_json" // not valid JSON
  | "proto_key" // a `__proto__` key
  | "not_object" // top level (or a map such as id2label) is not a JSON object
  | "missing_key" // a required key is absent or null
  | "bad_value" // wrong type, out of range, not an allowed value
  | "inconsistent"; // keys that contradict each other (id2label vs label2id vs num_labels)

/**
 * Thrown for unreadable, malformed or invalid config files; names the file, the key and what
 * was expected.
 *
 * @example
 * ```ts
 * new ConfigError("config.json", "hidden_size", "bad_value", "expected an integer >= 1, got 0");
 * // Error: config.json: hidden_size: expected an integer >= 1, got 0 [bad_value]
 * ```
 */
export class ConfigError extends FormatError {
  declare readonly code: ConfigErrorCode;
  /** The offending key (dotted for nested keys), when there is one. */
  readonly key: string | undefined;
  constructor(
    file: string,
    key: string | undefined,
    code: ConfigErrorCode,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(file, code, key === undefined ? detail : `${key}: ${detail}`, options);
    this.key = key;
  }
}

/** Options for {@link readJsonFile}. */
export interface ReadJsonOptions {
  /** Largest accepted file in bytes (default 64 MiB: big enough for any tokenizer.json). */
  maxBytes?: number;
}

const DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024;

/**
 * Reads and parses a JSON file defensively: size cap, parse errors with line/column, and any
 * `__proto__` key rejected (it would turn into a prototype write if the object is ever spread).
 *
 * @example
 * ```ts
 * const raw = await readJsonFile("./model/config.json", { maxBytes: 1 << 20 });
 * ```
 */
export async function readJsonFile(path: string, options: ReadJsonOptions = {}): Promise<unknown> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_JSON_BYTES;
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch (err) {
    throw new ConfigError(path, undefined, "io", `cannot read file (${(err as Error).message})`, { cause: err });
  }
  if (size > maxBytes) {
    throw new ConfigError(path, undefined, "too_large", `file is ${size} bytes, over the ${maxBytes}-byte limit`);
  }
  const text = await readFile(path, "utf8");
  return parseJsonText(text, path);
}

/**
 * Parses JSON text the same way as {@link readJsonFile} (for text already in memory).
 * `file` is only used in error messages.
 */
export function parseJsonText(text: string, file: string): unknown {
  // The reviver is slow on 10 MB tokenizer files; only pay for it when the key can occur.
  const reviver = text.includes("__proto__")
    ? (key: string, value: unknown) => {
        if (key === "__proto__") throw new ConfigError(file, "__proto__", "proto_key", "key is not allowed");
        return value;
      }
    : undefined;
  try {
    return JSON.parse(text, reviver);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const msg = (err as Error).message;
    // V8 only sometimes reports a position; find the first syntax error ourselves.
    const m = /position (\d+)/.exec(msg);
    const pos = m ? Number(m[1]) : jsonErrorOffset(text);
    let where = "";
    if (pos >= 0) {
      const before = text.slice(0, pos);
      const line = before.split("\n").length;
      const column = pos - before.lastIndexOf("\n");
      where = ` at line ${line}, column ${column}`;
    }
    throw new ConfigError(file, undefined, "bad_json", `invalid JSON${where}: ${msg}`, { cause: err });
  }
}

/**
 * Offset of the first JSON syntax error in `text` (-1 if none found): a small scanner run only
 * after `JSON.parse` has failed, so error messages can always say where.
 */
function jsonErrorOffset(text: string): number {
  let i = 0;
  const ws = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const fail = () => {
    throw i;
  };
  const value = (depth: number): void => {
    if (depth > 10_000) fail();
    ws();
    const c = text[i];
    if (c === "{" || c === "[") {
      const close = c === "{" ? "}" : "]";
      i++;
      ws();
      if (text[i] === close) {
        i++;
        return;
      }
      for (;;) {
        if (c === "{") {
          ws();
          if (text[i] !== '"') fail();
          string();
          ws();
          if (text[i] !== ":") fail();
          i++;
        }
        value(depth + 1);
        ws();
        if (text[i] === ",") i++;
        else if (text[i] === close) {
          i++;
          return;
        } else fail();
      }
    } else if (c === '"') string();
    else {
      const lit = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(i, i + 400));
      if (!lit) fail();
      i += lit![0].length;
    }
  };
  const string = () => {
    i++;
    while (i < text.length && text[i] !== '"') {
      if (text.charCodeAt(i) < 0x20) fail();
      if (text[i] === "\\") {
        i++;
        if (text[i] === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) fail();
          i += 4;
        } else if (!'"\\/bfnrt'.includes(text[i] ?? "x")) fail();
      }
      i++;
    }
    if (i >= text.length) fail();
    i++;
  };
  try {
    value(0);
    ws();
    if (i < text.length) fail();
    return -1;
  } catch (e) {
    return typeof e === "number" ? Math.min(e, text.length) : -1;
  }
}

/** A parsed config file: its raw object plus where it came from, for error messages. */
export interface LoadedConfig {
  /** `model_type` (required in config.json). */
  modelType: string;
  /** The parsed object, untouched. */
  raw: Record<string, unknown>;
  /** Path of the file, used in errors. */
  file: string;
}

/** A raw object plus its file name: what the getters need. */
export type ConfigSource = Pick<LoadedConfig, "raw" | "file">;

const CONFIG_MAX_BYTES = 4 * 1024 * 1024;

function asObject(value: unknown, file: string, key?: string): Record<string, unknown> {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(file, key, "not_object", `expected a JSON object, got ${describe(value)}`);
  }
  return value as Record<string, unknown>;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "string")
    return `string ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)}`;
  if (typeof value === "object") return "an object";
  return `${typeof value} ${String(value)}`;
}

/**
 * Loads `<dir>/config.json`, checks it is an object with a string `model_type`.
 *
 * @example
 * ```ts
 * const { modelType, raw } = await loadConfig("./distilbert");   // modelType === "distilbert"
 * ```
 */
export async function loadConfig(dir: string): Promise<LoadedConfig> {
  const file = join(dir, "config.json");
  const raw = asObject(await readJsonFile(file, { maxBytes: CONFIG_MAX_BYTES }), file);
  const modelType = raw.model_type;
  if (typeof modelType !== "string" || modelType.length === 0) {
    const code = modelType === undefined || modelType === null ? "missing_key" : "bad_value";
    throw new ConfigError(file, "model_type", code, `expected a non-empty string, got ${describe(modelType)}`);
  }
  return { modelType, raw, file };
}

/** Range/integer constraints for {@link getNumber}. */
export interface NumberRule {
  min?: number;
  max?: number;
  integer?: boolean;
}

/**
 * Reads a number. Missing or `null` gives `fallback`; with no fallback the key is required.
 *
 * @example
 * ```ts
 * const layers = getNumber(cfg, "num_hidden_layers", undefined, { min: 1, max: 1024, integer: true });
 * const eps = getNumber(cfg, "rms_norm_eps", 1e-6, { min: 0 });
 * ```
 */
export function getNumber(cfg: ConfigSource, key: string, fallback?: number, rule: NumberRule = {}): number {
  const v = cfg.raw[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new ConfigError(cfg.file, key, "missing_key", "required number is missing");
    return fallback;
  }
  return checkNumber(v, cfg.file, key, rule);
}

function checkNumber(v: unknown, file: string, key: string, rule: NumberRule): number {
  const want = `${rule.integer ? "an integer" : "a number"}${rangeText(rule)}`;
  if (typeof v !== "number" || !Number.isFinite(v))
    throw new ConfigError(file, key, "bad_value", `expected ${want}, got ${describe(v)}`);
  if (rule.integer && !Number.isSafeInteger(v))
    throw new ConfigError(file, key, "bad_value", `expected ${want}, got ${v}`);
  if ((rule.min !== undefined && v < rule.min) || (rule.max !== undefined && v > rule.max)) {
    throw new ConfigError(file, key, "bad_value", `expected ${want}, got ${v}`);
  }
  return v;
}

function rangeText(rule: NumberRule): string {
  if (rule.min !== undefined && rule.max !== undefined) return ` in [${rule.min}, ${rule.max}]`;
  if (rule.min !== undefined) return ` >= ${rule.min}`;
  if (rule.max !== undefined) return ` <= ${rule.max}`;
  return "";
}

/** Reads a string; missing or `null` gives `fallback`, with no fallback the key is required. */
export function getString(cfg: ConfigSource, key: string, fallback?: string): string {
  const v = cfg.raw[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new ConfigError(cfg.file, key, "missing_key", "required string is missing");
    return fallback;
  }
  if (typeof v !== "string") throw new ConfigError(cfg.file, key, "bad_value", `expected a string, got ${describe(v)}`);
  return v;
}

/** Reads a boolean; missing or `null` gives `fallback`, with no fallback the key is required. */
export function getBool(cfg: ConfigSource, key: string, fallback?: boolean): boolean {
  const v = cfg.raw[key];
  if (v === undefined || v === null) {
    if (fallback === undefined) throw new ConfigError(cfg.file, key, "missing_key", "required boolean is missing");
    return fallback;
  }
  if (typeof v !== "boolean")
    throw new ConfigError(cfg.file, key, "bad_value", `expected true or false, got ${describe(v)}`);
  return v;
}

/**
 * Reads a string that must be one of `allowed`.
 *
 * @example
 * ```ts
 * const act = getEnum(cfg, "hidden_act", ["gelu", "silu", "relu"] as const, "gelu");
 * ```
 */
export function getEnum<T extends string>(cfg: ConfigSource, key: string, allowed: readonly T[], fallback?: T): T {
  const v = cfg.raw[key];
  if (v === undefined || v === null) {
    if (fallback === undefined)
      throw new ConfigError(cfg.file, key, "missing_key", `required, expected one of ${allowed.join(", ")}`);
    return fallback;
  }
  if (typeof v !== "string" || !(allowed as readonly string[]).includes(v)) {
    throw new ConfigError(cfg.file, key, "bad_value", `expected one of ${allowed.join(", ")}, got ${describe(v)}`);
  }
  return v as T;
}

/** Reads `number | number[]` (e.g. `eos_token_id`) as an array; missing or `null` gives `[]`. */
export function getIdList(cfg: ConfigSource, key: string): number[] {
  const v = cfg.raw[key];
  if (v === undefined || v === null) return [];
  const rule = { min: 0, integer: true };
  if (Array.isArray(v)) return v.map((x, i) => checkNumber(x, cfg.file, `${key}[${i}]`, rule));
  return [checkNumber(v, cfg.file, key, rule)];
}

function getOptionalId(cfg: ConfigSource, key: string): number | undefined {
  const v = cfg.raw[key];
  if (v === undefined || v === null) return undefined;
  return checkNumber(v, cfg.file, key, { min: 0, integer: true });
}

/** Normalised classification labels. */
export interface Labels {
  /** Index = class id. */
  id2label: string[];
  label2id: Record<string, number>;
  numLabels: number;
}

const MAX_LABELS = 1_000_000;

/**
 * Normalises `id2label` / `label2id` / `num_labels` the way `transformers`' `PretrainedConfig`
 * does: JSON's string keys become numbers, a missing map is generated as `LABEL_i`, and with
 * nothing given there are 2 labels. Stricter than transformers (which only warns): ids must be
 * 0..n-1, `label2id` must be the inverse of `id2label`, and `num_labels` must agree.
 *
 * @example
 * ```ts
 * const { id2label, numLabels } = getLabels(cfg);   // {"0":"NEG","1":"POS"} -> ["NEG","POS"], 2
 * ```
 */
export function getLabels(cfg: ConfigSource): Labels {
  const { file, raw } = cfg;
  const numLabelsRaw = raw.num_labels;
  const declared =
    numLabelsRaw === undefined || numLabelsRaw === null
      ? undefined
      : checkNumber(numLabelsRaw, file, "num_labels", { min: 1, max: MAX_LABELS, integer: true });
  let id2label: string[];
  if (raw.id2label !== undefined && raw.id2label !== null) {
    const obj = asObject(raw.id2label, file, "id2label");
    const keys = Object.keys(obj);
    if (keys.length > MAX_LABELS)
      throw new ConfigError(file, "id2label", "bad_value", `more than ${MAX_LABELS} labels`);
    id2label = new Array<string>(keys.length);
    for (const k of keys) {
      if (!/^(0|[1-9]\d*)$/.test(k) || Number(k) >= keys.length) {
        throw new ConfigError(file, `id2label.${k}`, "inconsistent", `ids must be the integers 0..${keys.length - 1}`);
      }
      const name = obj[k];
      if (typeof name !== "string")
        throw new ConfigError(file, `id2label.${k}`, "bad_value", `expected a string label, got ${describe(name)}`);
      id2label[Number(k)] = name;
    }
    if (declared !== undefined && declared !== keys.length) {
      throw new ConfigError(
        file,
        "num_labels",
        "inconsistent",
        `is ${declared} but id2label has ${keys.length} entries`,
      );
    }
  } else {
    id2label = Array.from({ length: declared ?? 2 }, (_, i) => `LABEL_${i}`);
  }
  const label2id: Record<string, number> = Object.create(null);
  id2label.forEach((name, i) => {
    label2id[name] = i;
  });
  if (raw.label2id !== undefined && raw.label2id !== null) {
    const obj = asObject(raw.label2id, file, "label2id");
    for (const [name, id] of Object.entries(obj)) {
      const n = checkNumber(id, file, `label2id.${name}`, { min: 0, integer: true });
      if (id2label[n] !== name) {
        throw new ConfigError(
          file,
          `label2id.${name}`,
          "inconsistent",
          `is ${n} but id2label.${n} is ${JSON.stringify(id2label[n])}`,
        );
      }
    }
    if (Object.keys(obj).length !== id2label.length) {
      throw new ConfigError(
        file,
        "label2id",
        "inconsistent",
        `has ${Object.keys(obj).length} entries but id2label has ${id2label.length}`,
      );
    }
  }
  return { id2label, label2id, numLabels: id2label.length };
}

/** Generation settings with transformers' `GenerationConfig` defaults filled in. */
export interface GenerationConfig {
  maxLength: number;
  maxNewTokens: number | undefined;
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  repetitionPenalty: number;
  /** Always an array: HF allows `number | number[]`. Empty when unknown. */
  eosTokenId: number[];
  bosTokenId: number | undefined;
  padTokenId: number | undefined;
  /** The parsed file (or `{}` when there was none). */
  raw: Record<string, unknown>;
  /** Where the values came from: the generation_config.json path, or config.json when absent. */
  file: string;
}

/**
 * Loads `<dir>/generation_config.json` with HF defaults (max_length 20, do_sample false,
 * temperature 1, top_k 50, top_p 1, repetition_penalty 1). When the file is absent the token ids
 * come from `config.json` if present, as `GenerationConfig.from_model_config` does.
 *
 * @example
 * ```ts
 * const gen = await loadGenerationConfig("./smollm-135m");
 * if (gen.eosTokenId.includes(next)) break;
 * ```
 */
export async function loadGenerationConfig(dir: string): Promise<GenerationConfig> {
  const genFile = join(dir, "generation_config.json");
  let src: ConfigSource;
  try {
    await stat(genFile);
    src = { file: genFile, raw: asObject(await readJsonFile(genFile, { maxBytes: CONFIG_MAX_BYTES }), genFile) };
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const cfgFile = join(dir, "config.json");
    let raw: Record<string, unknown> = {};
    try {
      await stat(cfgFile);
      raw = asObject(await readJsonFile(cfgFile, { maxBytes: CONFIG_MAX_BYTES }), cfgFile);
    } catch (e) {
      if (e instanceof ConfigError) throw e;
    }
    const picked: Record<string, unknown> = {};
    for (const k of ["bos_token_id", "eos_token_id", "pad_token_id"]) if (k in raw) picked[k] = raw[k];
    src = { file: cfgFile, raw: picked };
  }
  return parseGenerationConfig(src);
}

/** Validates an already-parsed generation config object (see {@link loadGenerationConfig}). */
export function parseGenerationConfig(src: ConfigSource): GenerationConfig {
  const maxNew = src.raw.max_new_tokens;
  const topK = getNumber(src, "top_k", 50, { min: 0, integer: true });
  const repetitionPenalty = getNumber(src, "repetition_penalty", 1, { min: 0 });
  if (repetitionPenalty === 0)
    throw new ConfigError(src.file, "repetition_penalty", "bad_value", "expected a number > 0, got 0");
  return {
    maxLength: getNumber(src, "max_length", 20, { min: 0, integer: true }),
    maxNewTokens:
      maxNew === undefined || maxNew === null
        ? undefined
        : getNumber(src, "max_new_tokens", 0, { min: 0, integer: true }),
    doSample: getBool(src, "do_sample", false),
    temperature: getNumber(src, "temperature", 1, { min: 0 }),
    topK,
    topP: getNumber(src, "top_p", 1, { min: 0, max: 1 }),
    repetitionPenalty,
    eosTokenId: getIdList(src, "eos_token_id"),
    bosTokenId: getOptionalId(src, "bos_token_id"),
    padTokenId: getOptionalId(src, "pad_token_id"),
    raw: src.raw,
    file: src.file,
  };
}
