/**
 * Text datasets: read a file, map the user's columns onto the task's fields, validate every
 * value, and resolve labels. The result is a plain array of {@link TextExample}s, each knowing
 * its `file:line`, plus an exact report of the lines skipped with `skipInvalid`.
 *
 * Fields per task (map your column names with `columns`, e.g. `{ text: "review", label: "sentiment" }`):
 * - `text-classification`: `text`, optional `text_pair`, `label` (name, id, list for
 *   multi-label, number or list of numbers for regression);
 * - `causal-lm`: `text` (plain language modelling), or `prompt` + `completion`, or `messages`
 *   (a list of `{role, content}` rendered with the chat template). The first of these found in
 *   the file is used unless `lmFormat` says which.
 * - `token-classification` (NER, POS): `tokens`, a list of words, and `tags`, one label per word
 *   (names or ids; a JSON list, or a whitespace-separated string in CSV/TSV), as in the Hugging
 *   Face `conll2003` layout (map `tags: "ner_tags"`).
 *
 * @example
 * ```ts
 * const train = await loadTextDataset("reviews.csv", { task: "text-classification", columns: { text: "review" } });
 * const val = await loadTextDataset("val.csv", { task: "text-classification", labels: train.labels!.names });
 * ```
 */
import type { ChatMessage } from "../../tokenize/chat-template.ts";
import { closestMatch, DataError, quoteList, type SkippedLine } from "../errors.ts";
import { describe, isIntegerLike, LabelSet, type ProblemType } from "./labels.ts";
import { type DataFormat, type DataRecord, readRecords } from "./read.ts";

/** Tasks with a text data pipeline. */
export type TextTask = "text-classification" | "causal-lm" | "token-classification";

/** How a causal-LM file is laid out. */
export type LmFormat = "text" | "prompt-completion" | "messages";

/** Field name -> the file's column name. Fields not given keep their own name. */
export interface ColumnMap {
  text?: string;
  text_pair?: string;
  label?: string;
  prompt?: string;
  completion?: string;
  messages?: string;
  tokens?: string;
  tags?: string;
}

/** Options for {@link loadTextDataset}. */
export interface LoadTextOptions {
  task: TextTask;
  columns?: ColumnMap;
  format?: DataFormat;
  /** Skip malformed or invalid records and report them in `skipped`, instead of stopping. */
  skipInvalid?: boolean;
  /** Classification: `single_label_classification` (default), `multi_label_classification` or `regression`. */
  problemType?: ProblemType;
  /** Classification: label names in id order (from the training split or the model's `id2label`); unknown labels are errors. */
  labels?: readonly string[];
  /** Multi-label in CSV/TSV: separator inside the label cell (default `,`); a JSON list also works. */
  labelSeparator?: string;
  /** Causal LM: which layout to read; default: `messages`, else `prompt`+`completion`, else `text`, whichever the file has. */
  lmFormat?: LmFormat;
}

interface Source {
  file: string;
  line: number;
}

/** One classification example; `label` is a class id, a list of class ids (multi-label) or regression targets. */
export interface ClassificationExample extends Source {
  kind: "classification";
  text: string;
  textPair?: string;
  label: number | number[];
}

/** One causal-LM example. */
export type LmExample =
  | (Source & { kind: "text"; text: string })
  | (Source & { kind: "prompt-completion"; prompt: string; completion: string })
  | (Source & { kind: "messages"; messages: ChatMessage[] });

/** One token-classification example: words and one class id per word. */
export interface TokenExample extends Source {
  kind: "tokens";
  tokens: string[];
  tags: number[];
}

export type TextExample = ClassificationExample | LmExample | TokenExample;

/** A loaded dataset. */
export interface TextDataset<E extends TextExample = TextExample> {
  file: string;
  task: TextTask;
  examples: E[];
  /** Lines skipped with `skipInvalid`, in file order. */
  skipped: SkippedLine[];
  /** Classification labels (absent for regression and LM). */
  labels?: LabelSet;
  problemType?: ProblemType;
  /** Causal LM layout. */
  lmFormat?: LmFormat;
}

type Field = keyof ColumnMap;

/** The fields a task needs, from the first record's columns. */
function plan(
  task: TextTask,
  first: DataRecord,
  options: LoadTextOptions,
): { required: Field[]; optional: Field[]; lm?: LmFormat } {
  if (task === "text-classification") return { required: ["text", "label"], optional: ["text_pair"] };
  if (task === "token-classification") return { required: ["tokens", "tags"], optional: [] };
  const has = (f: Field) => col(f, options) in first.values;
  const lm: LmFormat =
    options.lmFormat ??
    (has("messages") ? "messages" : has("prompt") || has("completion") ? "prompt-completion" : "text");
  const required: Field[] =
    lm === "messages" ? ["messages"] : lm === "prompt-completion" ? ["prompt", "completion"] : ["text"];
  return { required, optional: [], lm };
}

function col(f: Field, options: LoadTextOptions): string {
  return options.columns?.[f] ?? f;
}

function missingColumn(file: string, name: string, found: string[], field: Field): DataError {
  const near = closestMatch(name, found);
  const hint = near !== undefined ? ` Did you mean ${JSON.stringify(near)}?` : "";
  const map = name === field ? ` Map another column with columns: { ${field}: "<name>" }.` : "";
  return new DataError(
    file,
    "missing_column",
    `no column ${JSON.stringify(name)}; the file has ${quoteList(found)}.${hint}${map}`,
    { key: name },
  );
}

/**
 * Loads a text dataset file for a task, validating every record.
 *
 * @example
 * ```ts
 * const ds = await loadTextDataset("chat.jsonl", { task: "causal-lm" }); // ds.lmFormat === "messages"
 * ```
 */
export async function loadTextDataset(path: string, options: LoadTextOptions): Promise<TextDataset> {
  const skipped: SkippedLine[] = [];
  const skipInvalid = options.skipInvalid ?? false;
  const problemType =
    options.task === "text-classification" ? (options.problemType ?? "single_label_classification") : undefined;
  const given = options.labels !== undefined ? LabelSet.fromNames(options.labels) : undefined;
  let fields: ReturnType<typeof plan> | undefined;
  const pending: { ex: TextExample; rawLabel?: unknown }[] = [];
  let sawRecord = false;
  for await (const rec of readRecords(path, {
    ...(options.format ? { format: options.format } : {}),
    skipInvalid,
    onSkip: (s) => skipped.push(s),
  })) {
    if (fields === undefined) {
      fields = plan(options.task, rec, options);
      const found = Object.keys(rec.values);
      for (const f of fields.required)
        if (!(col(f, options) in rec.values)) throw missingColumn(path, col(f, options), found, f);
      // A mapped optional column that is absent is a typo, not "no pair".
      for (const f of fields.optional)
        if (options.columns?.[f] && !(col(f, options) in rec.values))
          throw missingColumn(path, col(f, options), found, f);
    }
    sawRecord = true;
    try {
      pending.push(toExample(rec, fields, options, problemType, given));
    } catch (err) {
      if (!(err instanceof DataError) || !skipInvalid) throw err;
      skipped.push(err.toSkipped());
    }
  }
  if (pending.length === 0) {
    const why = !sawRecord ? "has no records" : `has no valid records (all ${skipped.length} were skipped)`;
    throw new DataError(path, "empty_dataset", `the dataset ${why}`);
  }
  skipped.sort((a, b) => a.line - b.line);
  const ds: TextDataset = { file: path, task: options.task, examples: [], skipped };
  if (fields?.lm) ds.lmFormat = fields.lm;
  if (options.task === "token-classification") return resolveTags(ds, pending, given, options, skipInvalid);
  if (problemType === undefined) {
    ds.examples = pending.map((p) => p.ex);
    return ds;
  }
  ds.problemType = problemType;
  if (problemType === "regression") {
    ds.examples = pending.map((p) => p.ex);
    return ds;
  }
  const labels =
    given ??
    LabelSet.infer(
      pending.map((p) => p.rawLabel),
      path,
    );
  ds.labels = labels;
  for (const p of pending) {
    const ex = p.ex as ClassificationExample;
    try {
      ex.label = Array.isArray(p.rawLabel)
        ? [...new Set(p.rawLabel.map((r) => labels.resolve(r, ex.file, ex.line)))].sort((a, b) => a - b)
        : labels.resolve(p.rawLabel, ex.file, ex.line);
      ds.examples.push(ex);
    } catch (err) {
      if (!(err instanceof DataError) || !skipInvalid) throw err;
      skipped.push(err.toSkipped());
    }
  }
  skipped.sort((a, b) => a.line - b.line);
  if (ds.examples.length === 0)
    throw new DataError(path, "empty_dataset", `the dataset has no valid records (all ${skipped.length} were skipped)`);
  if (options.labels === undefined && labels.size < 2 && problemType === "single_label_classification") {
    throw new DataError(
      path,
      "bad_labels",
      `only one class (${quoteList(labels.names)}) in the labels; classification needs at least two`,
      { key: col("label", options) },
    );
  }
  return ds;
}

/** Validates one record and builds its example (labels still raw for classification). */
function toExample(
  rec: DataRecord,
  fields: ReturnType<typeof plan>,
  options: LoadTextOptions,
  problemType: ProblemType | undefined,
  given: LabelSet | undefined,
): { ex: TextExample; rawLabel?: unknown } {
  const src = { file: rec.file, line: rec.line };
  const get = (f: Field, optional = false): unknown => {
    const name = col(f, options);
    const v = rec.values[name];
    if (v === undefined && !optional) {
      throw new DataError(
        rec.file,
        "missing_column",
        `the record has no ${JSON.stringify(name)}; it has ${quoteList(Object.keys(rec.values))}`,
        { line: rec.line, key: name },
      );
    }
    return v;
  };
  const str = (f: Field, optional = false): string | undefined => {
    const v = get(f, optional);
    if (optional && (v === undefined || v === null)) return undefined;
    if (typeof v !== "string") throw badValue(rec, col(f, options), "a string", v);
    return v;
  };
  if (options.task === "text-classification") {
    const text = str("text")!;
    const textPair = fields.optional.includes("text_pair") ? str("text_pair", true) : undefined;
    const raw = get("label");
    const label = readLabel(raw, rec, col("label", options), problemType!, options.labelSeparator ?? ",");
    const ex: ClassificationExample = {
      kind: "classification",
      ...src,
      text,
      label: typeof label === "number" || problemType === "regression" ? (label as number | number[]) : -1,
    };
    if (textPair !== undefined) ex.textPair = textPair;
    // Resolve eagerly when the label set is fixed, so the error comes in file order.
    if (given && problemType !== "regression") {
      ex.label = Array.isArray(label)
        ? label.map((l) => given.resolve(l, rec.file, rec.line))
        : given.resolve(label, rec.file, rec.line);
    }
    return { ex, rawLabel: label };
  }
  if (options.task === "token-classification") {
    const tokens = wordList(get("tokens"), rec, col("tokens", options));
    const tags = wordList(get("tags"), rec, col("tags", options), true);
    if (tags.length !== tokens.length)
      throw new DataError(
        rec.file,
        "bad_value",
        `${tokens.length} tokens but ${tags.length} tags; each word needs exactly one tag`,
        { line: rec.line, key: col("tags", options) },
      );
    if (tokens.length === 0) throw badValue(rec, col("tokens", options), "a non-empty list of words", []);
    const ex: TokenExample = { kind: "tokens", ...src, tokens: tokens as string[], tags: [] };
    if (given) ex.tags = tags.map((t) => given.resolve(t, rec.file, rec.line));
    return { ex, rawLabel: tags };
  }
  if (fields.lm === "messages")
    return { ex: { kind: "messages", ...src, messages: readMessages(get("messages"), rec, col("messages", options)) } };
  if (fields.lm === "prompt-completion")
    return { ex: { kind: "prompt-completion", ...src, prompt: str("prompt")!, completion: str("completion")! } };
  return { ex: { kind: "text", ...src, text: str("text")! } };
}

/** A list cell: a JSON list, or (CSV/TSV) a JSON list in a string or whitespace-separated items. */
function wordList(v: unknown, rec: DataRecord, name: string, tags = false): unknown[] {
  const list =
    typeof v === "string"
      ? v.trim().startsWith("[")
        ? parseJsonCell(v, rec, name)
        : v.split(/\s+/).filter(Boolean)
      : v;
  const ok = (x: unknown) => typeof x === "string" || (tags && isIntegerLike(x));
  if (!Array.isArray(list) || !list.every(ok))
    throw badValue(rec, name, tags ? "a list of tag names or ids" : "a list of words (strings)", v);
  if (!tags && list.some((w) => (w as string).length === 0)) throw badValue(rec, name, "words that are not empty", v);
  return list;
}

/** Token classification: the tag set (given, or inferred from every tag) and each word's class id. */
function resolveTags(
  ds: TextDataset,
  pending: { ex: TextExample; rawLabel?: unknown }[],
  given: LabelSet | undefined,
  options: LoadTextOptions,
  skipInvalid: boolean,
): TextDataset {
  const labels =
    given ??
    LabelSet.infer(
      pending.map((p) => p.rawLabel),
      ds.file,
    );
  ds.labels = labels;
  for (const p of pending) {
    const ex = p.ex as TokenExample;
    try {
      if (!given) ex.tags = (p.rawLabel as unknown[]).map((t) => labels.resolve(t, ex.file, ex.line));
      ds.examples.push(ex);
    } catch (err) {
      if (!(err instanceof DataError) || !skipInvalid) throw err;
      ds.skipped.push(err.toSkipped());
    }
  }
  ds.skipped.sort((a, b) => a.line - b.line);
  if (ds.examples.length === 0)
    throw new DataError(
      ds.file,
      "empty_dataset",
      `the dataset has no valid records (all ${ds.skipped.length} were skipped)`,
    );
  if (options.labels === undefined && labels.size < 2)
    throw new DataError(
      ds.file,
      "bad_labels",
      `only one tag (${quoteList(labels.names)}); token classification needs at least two`,
      {
        key: col("tags", options),
      },
    );
  return ds;
}

function badValue(rec: DataRecord, name: string, want: string, got: unknown): DataError {
  return new DataError(rec.file, "bad_value", `column ${JSON.stringify(name)} must be ${want}, got ${describe(got)}`, {
    line: rec.line,
    key: name,
  });
}

/** Reads a raw label: a scalar (single-label), a list (multi-label) or numbers (regression). */
function readLabel(v: unknown, rec: DataRecord, name: string, problemType: ProblemType, sep: string): unknown {
  if (v === null || v === undefined || v === "") throw badValue(rec, name, "a label", v);
  if (problemType === "regression") {
    const list = typeof v === "string" && v.trim().startsWith("[") ? parseJsonCell(v, rec, name) : v;
    const nums = (Array.isArray(list) ? list : [list]).map((x) =>
      typeof x === "string" && x.trim() !== "" ? Number(x) : x,
    );
    if (nums.length === 0 || !nums.every((x) => typeof x === "number" && Number.isFinite(x)))
      throw badValue(rec, name, "a finite number (or a list of them) for regression", v);
    return nums as number[];
  }
  if (problemType === "multi_label_classification") {
    const list = Array.isArray(v)
      ? v
      : typeof v === "string"
        ? v.trim().startsWith("[")
          ? parseJsonCell(v, rec, name)
          : v
              .split(sep)
              .map((s) => s.trim())
              .filter((s) => s !== "")
        : [v];
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string" || isIntegerLike(x)))
      throw badValue(rec, name, "a list of label names or ids", v);
    return list;
  }
  if (typeof v === "string" || isIntegerLike(v) || typeof v === "boolean") return v;
  throw badValue(rec, name, "a label name or an integer id", v);
}

function parseJsonCell(v: string, rec: DataRecord, name: string): unknown {
  try {
    return JSON.parse(v);
  } catch (err) {
    throw new DataError(
      rec.file,
      "bad_value",
      `column ${JSON.stringify(name)} is not valid JSON: ${(err as Error).message}`,
      { line: rec.line, key: name },
    );
  }
}

/** Validates a chat: a non-empty list of `{role: string, content: string}` (a JSON string in CSV). */
function readMessages(v: unknown, rec: DataRecord, name: string): ChatMessage[] {
  const list = typeof v === "string" ? parseJsonCell(v, rec, name) : v;
  if (!Array.isArray(list) || list.length === 0)
    throw badValue(rec, name, "a non-empty list of {role, content} messages", v);
  return list.map((m, i) => {
    if (m === null || typeof m !== "object" || Array.isArray(m))
      throw badValue(rec, `${name}[${i}]`, "an object with role and content", m);
    const { role, content } = m as Record<string, unknown>;
    if (typeof role !== "string" || role === "") throw badValue(rec, `${name}[${i}].role`, "a non-empty string", role);
    if (typeof content !== "string") throw badValue(rec, `${name}[${i}].content`, "a string", content);
    return m as ChatMessage;
  });
}
