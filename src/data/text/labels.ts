/**
 * Labels: names mapped to ids (as `id2label`/`label2id` in a Hugging Face config), numeric ids,
 * multi-label lists and regression targets.
 *
 * With no label set given, names are collected from the training file and sorted (so the mapping
 * does not depend on the order of the rows); integer labels are taken as ids. Validation and test
 * files reuse the training set's labels, and a label outside it is an error naming `file:line`.
 *
 * @example
 * ```ts
 * const labels = LabelSet.fromNames(["neg", "pos"]);
 * labels.resolve("pos", "train.csv", 3); // 1
 * ```
 */
import { closestMatch, DataError, quoteList } from "../errors.ts";

/** HF `problem_type`: how labels are read and which loss applies. */
export type ProblemType = "single_label_classification" | "multi_label_classification" | "regression";

const INT_RE = /^\s*-?\d+\s*$/;
const DEFAULT_NAME_RE = /^LABEL_(\d+)$/;

/** A fixed list of class names; ids are positions in the list. */
export class LabelSet {
  readonly names: readonly string[];
  private readonly ids: Map<string, number>;

  private constructor(names: string[]) {
    this.names = names;
    this.ids = new Map(names.map((n, i) => [n, i]));
  }

  /**
   * A label set from names in id order (e.g. a model config's `id2label`, or a `labels` option).
   *
   * @example LabelSet.fromNames(["negative", "positive"]).id("positive") // 1
   */
  static fromNames(names: readonly string[], where = "options"): LabelSet {
    if (names.length === 0) throw new DataError(where, "bad_labels", "the label list is empty", { key: "labels" });
    const seen = new Set<string>();
    for (const n of names) {
      if (typeof n !== "string" || n === "")
        throw new DataError(where, "bad_labels", `label names must be non-empty strings, got ${JSON.stringify(n)}`, {
          key: "labels",
        });
      if (seen.has(n))
        throw new DataError(where, "bad_labels", `label ${JSON.stringify(n)} appears twice`, { key: "labels" });
      seen.add(n);
    }
    return new LabelSet([...names]);
  }

  /**
   * The label set implied by the raw labels of a training file: integer ids when every label is
   * an integer (names `LABEL_i`, as transformers' default `id2label`), else the sorted unique names.
   */
  static infer(raw: readonly unknown[], where: string): LabelSet {
    const flat = raw.flatMap((r) => (Array.isArray(r) ? r : [r]));
    if (flat.length > 0 && flat.every(isIntegerLike)) {
      const ids = flat.map((v) => Number(v));
      const min = Math.min(...ids);
      if (min < 0)
        throw new DataError(where, "bad_labels", `integer labels must be >= 0, found ${min}`, { key: "label" });
      const max = ids.reduce((a, b) => Math.max(a, b), 0);
      if (max > 100_000)
        throw new DataError(where, "bad_labels", `integer label ${max} is too large for a class id`, { key: "label" });
      return new LabelSet(Array.from({ length: max + 1 }, (_, i) => `LABEL_${i}`));
    }
    const names = [...new Set(flat.map((v) => String(v)))].sort();
    return new LabelSet(names);
  }

  get size(): number {
    return this.names.length;
  }

  /** `{id: name}` for a model config. */
  get id2label(): Record<string, string> {
    return Object.fromEntries(this.names.map((n, i) => [String(i), n]));
  }

  /** `{name: id}` for a model config. */
  get label2id(): Record<string, number> {
    return Object.fromEntries(this.names.map((n, i) => [n, i]));
  }

  /**
   * The id of one raw label: its name, or an integer id in range (so "0"/"1" in a CSV work with a
   * model whose labels are named). Unknown labels throw a `DataError` at `file:line`.
   */
  resolve(raw: unknown, file: string, line: number): number {
    const name =
      typeof raw === "string" ? raw : typeof raw === "number" || typeof raw === "boolean" ? String(raw) : undefined;
    if (name === undefined)
      throw new DataError(file, "bad_value", `label must be a string or an integer, got ${describe(raw)}`, {
        line,
        key: "label",
      });
    const byName = this.ids.get(name);
    if (byName !== undefined) return byName;
    if (isIntegerLike(raw)) {
      const id = Number(raw);
      if (id >= 0 && id < this.names.length) return id;
    }
    const near = closestMatch(name, this.names);
    const hint = near !== undefined ? ` (did you mean ${JSON.stringify(near)}?)` : "";
    throw new DataError(
      file,
      "unknown_label",
      `unknown label ${JSON.stringify(name)}${hint}; known labels: ${quoteList(this.names)}`,
      { line, key: "label" },
    );
  }
}

/** transformers' default id2label (`LABEL_0`, `LABEL_1`, ...) carries no names worth keeping. */
function isDefaultNames(names: string[]): boolean {
  return names.every((n, i) => DEFAULT_NAME_RE.exec(n)?.[1] === String(i));
}

/**
 * The label names in a model config's `id2label`, in id order, or undefined when the config has
 * none or only transformers' defaults (`LABEL_i`), in which case the data should define them.
 *
 * @example labelNamesFromConfig({ id2label: { "0": "NEG", "1": "POS" } }) // ["NEG", "POS"]
 */
export function labelNamesFromConfig(config: { id2label?: unknown }, where = "config.json"): string[] | undefined {
  const m = config.id2label;
  if (m === undefined || m === null) return undefined;
  if (typeof m !== "object" || Array.isArray(m))
    throw new DataError(where, "bad_labels", "id2label must be an object", { key: "id2label" });
  const entries = Object.entries(m as Record<string, unknown>);
  const names: string[] = new Array(entries.length);
  for (const [k, v] of entries) {
    const id = Number(k);
    if (!Number.isInteger(id) || id < 0 || id >= entries.length || typeof v !== "string" || names[id] !== undefined) {
      throw new DataError(
        where,
        "bad_labels",
        `id2label must map the ids 0..${entries.length - 1} to names; bad entry ${JSON.stringify(k)}: ${JSON.stringify(v)}`,
        { key: "id2label" },
      );
    }
    names[id] = v;
  }
  return isDefaultNames(names) ? undefined : names;
}

export function isIntegerLike(v: unknown): boolean {
  return (
    (typeof v === "number" && Number.isSafeInteger(v)) ||
    (typeof v === "string" && INT_RE.test(v) && Number.isSafeInteger(Number(v)))
  );
}

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v)}`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${String(v)}`;
}
