/**
 * Which modules LoRA wraps, with PEFT's matching rules (`peft/tuners/tuners_utils.py`
 * `check_target_module_exists`, `_maybe_include_all_linear_layers`; `peft/utils/other.py`
 * `get_pattern_key`, `_set_trainable`), so a PEFT `adapter_config.json` selects the same modules here.
 */
import { Linear } from "../nn/layers.ts";
import { globToRegExp, type Module, Parameter } from "../nn/module.ts";

/** `target_modules` value meaning "every linear layer except the output head" (PEFT `INCLUDE_LINEAR_LAYERS_SHORTHAND`). */
export const ALL_LINEAR = "all-linear";

/** Heads that `all-linear` leaves alone: the LM head and PEFT's `SEQ_CLS_HEAD_NAMES`. */
const OUTPUT_HEAD_NAMES = ["lm_head", "score", "classifier"];

/** What can be wrapped: `nn.Linear`, a model file's own `Linear`, or GPT-2's `Conv1D` (weight stored (in, out)). */
export type LinearKind = "linear" | "conv1d";

/**
 * The kind of linear layer `m` is, or null. Duck-typed on the class name as well as `instanceof`
 * because model files may define their own `Linear` (same fields, same forward).
 */
export function linearKind(m: Module): LinearKind | null {
  const w = (m as unknown as { weight?: unknown }).weight;
  if (!(w instanceof Parameter) || w.ndim !== 2) return null;
  if (m instanceof Linear || m.constructor.name === "Linear") return "linear";
  if (m.constructor.name === "Conv1D") return "conv1d";
  return null;
}

/** PEFT's "rank/alpha pattern" lookup: the first key `k` with `^(.*\.)?(k)$` matching the module path. */
export function patternValue(pattern: Readonly<Record<string, number>>, path: string, fallback: number): number {
  for (const [k, v] of Object.entries(pattern)) if (new RegExp(`^(.*\\.)?(${k})$`).test(path)) return v;
  return fallback;
}

const isGlob = (s: string) => /[*?]/.test(s);

/**
 * PEFT's list matching (exact name or `.`-suffix: "q_proj" matches `model.layers.0.self_attn.q_proj`),
 * plus dotted globs (`layers.*.self_attn.q_proj`, `**.v_proj`) as a tunekit extension.
 */
export function matchesName(path: string, names: readonly string[]): boolean {
  return names.some((t) => path === t || path.endsWith(`.${t}`) || (isGlob(t) && globToRegExp(t).test(path)));
}

/** Python `re.fullmatch` for a `target_modules` regex string. */
export function fullMatch(regex: string, path: string): boolean {
  return new RegExp(`^(?:${regex})$`).test(path);
}

/** The selection part of a LoRA config, in PEFT's terms. */
export interface TargetSpec {
  targetModules: string | readonly string[];
  excludeModules?: string | readonly string[] | null;
  modulesToSave?: readonly string[] | null;
  layersToTransform?: number | readonly number[] | null;
  layersPattern?: string | readonly string[] | null;
}

function layerIndexOk(spec: TargetSpec, path: string): boolean {
  const want = spec.layersToTransform;
  if (want === null || want === undefined) return true;
  const pats = typeof spec.layersPattern === "string" ? [spec.layersPattern] : (spec.layersPattern ?? []);
  const res = pats.length === 0 ? [/^.*\.[^.]*\.(\d+)\./] : pats.map((p) => new RegExp(`^.*\\.${p}\\.(\\d+)\\.`));
  const m = res.map((re) => path.match(re)).find((x) => x !== null) ?? null;
  if (!m) return false;
  const i = Number(m[1]);
  return typeof want === "number" ? i === want : want.includes(i);
}

/** PEFT's `modules_to_save` matching: a plain string suffix (so "classifier" also matches "pre_classifier", as in PEFT). */
export function isModuleToSave(path: string, modulesToSave: readonly string[] | null | undefined): boolean {
  return !!path && !!modulesToSave?.some((m) => path.endsWith(m));
}

/** True when `path` lies inside (or is) a module that `modules_to_save` keeps trainable: LoRA is never put there. */
function insideModuleToSave(path: string, modulesToSave: readonly string[] | null | undefined): boolean {
  return !!modulesToSave?.some((m) => new RegExp(`(^|.*\\.)${m}($|\\..*)`).test(path));
}

/** Output heads `all-linear` skips: `getOutputEmbeddings()` when the model has it, else the conventional names. */
function outputHeads(model: Module): Set<Module> {
  const out = new Set<Module>();
  const rec = model as unknown as Record<string, unknown> & { getOutputEmbeddings?: () => unknown };
  const emb = rec.getOutputEmbeddings?.();
  if (emb && typeof emb === "object") out.add(emb as Module);
  for (const n of OUTPUT_HEAD_NAMES) if (rec[n] && typeof rec[n] === "object") out.add(rec[n] as Module);
  return out;
}

/** True when the module at `path` (with `module`) is selected by `spec` (ignoring whether it is a linear layer). */
function selected(spec: TargetSpec, path: string, module: Module, heads: Set<Module>): boolean {
  if (!path) return false;
  const ex = spec.excludeModules;
  if (ex && (typeof ex === "string" ? fullMatch(ex, path) : matchesName(path, ex))) return false;
  if (insideModuleToSave(path, spec.modulesToSave)) return false;
  const t = spec.targetModules;
  if (typeof t === "string") {
    if (t.toLowerCase() === ALL_LINEAR) return linearKind(module) !== null && !heads.has(module);
    return fullMatch(t, path);
  }
  if (t.includes(path)) return true;
  return matchesName(path, t) && layerIndexOk(spec, path);
}

/**
 * Module paths selected by `spec`, in model order. `all-linear` picks every linear layer except the
 * output head; names and regexes may select any module and the caller rejects non-linear ones.
 */
export function findTargets(model: Module, spec: TargetSpec): [string, Module][] {
  const heads = outputHeads(model);
  return model.namedModules().filter(([path, m]) => selected(spec, path, m, heads));
}

/**
 * The shortest dotted suffixes that select exactly `targets` among `allPaths` with PEFT's suffix rule
 * (as PEFT's `_find_minimal_target_modules` writes a resolved `all-linear`): "q_proj" where it is
 * unambiguous, "mlp.0" where "0" would also select `model.layers.0`.
 */
export function minimalTargetNames(targets: readonly string[], allPaths: readonly string[]): string[] {
  const want = new Set(targets);
  const others = allPaths.filter((p) => p && !want.has(p));
  const out = new Set<string>();
  for (const t of targets) {
    const parts = t.split(".");
    if ([...out].some((s) => t === s || t.endsWith(`.${s}`))) continue;
    for (let k = 1; k <= parts.length; k++) {
      const suffix = parts.slice(-k).join(".");
      if (k === parts.length || !others.some((o) => o === suffix || o.endsWith(`.${suffix}`))) {
        out.add(suffix);
        break;
      }
    }
  }
  return [...out].sort();
}
