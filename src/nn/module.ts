/**
 * `Module`: plain classes whose parameters and buffers are found by walking the object tree, named
 * with HF-style dotted paths (`encoder.layer.0.attention.self.query.weight`). Arrays of modules
 * (`ModuleList`) become numeric path segments. Fields whose name starts with `_` are skipped.
 */
import { ShapeError, TunekitError, fmtShape } from "../tensor/errors.ts";
import { Tensor } from "../tensor/tensor.ts";
import { shapesEqual } from "../tensor/shape.ts";

/** A trainable tensor. `frozen` parameters receive no gradient and no optimizer state. */
export class Parameter extends Tensor {
  constructor(t: Tensor, requiresGrad = true) {
    super(t.data, t.dtype, t.shape, t.strides, t.offset);
    if (requiresGrad && (t.dtype === "float32" || t.dtype === "float64")) this.requiresGrad = true;
  }
}

/** A non-trainable tensor saved in the state dict (BatchNorm running statistics). */
export class Buffer {
  constructor(public value: Tensor, public persistent = true) {}
}

export class StateDictError extends TunekitError {
  constructor(
    message: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: { key: string; expected: number[]; got: number[] }[],
  ) {
    super(message);
  }
}

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

/** Glob over dotted names: `*` matches within a segment, `**` across segments. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^.]*";
    else if (c === "?") re += "[^.]";
    else re += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** True when `name` matches a pattern exactly, as a glob, or as a dotted prefix (a module path). */
export function matchesAny(name: string, patterns: readonly string[]): boolean {
  return patterns.some((p) => p === name || name.startsWith(`${p}.`) || globToRegExp(p).test(name) || globToRegExp(`${p}.**`).test(name));
}

export abstract class Module {
  /** Training mode (dropout active, BatchNorm batch statistics). */
  training = true;

  /** Child modules by field name, in declaration order. */
  namedChildren(): [string, Module][] {
    const out: [string, Module][] = [];
    for (const [k, v] of Object.entries(this)) {
      if (k.startsWith("_")) continue;
      if (v instanceof Module) out.push([k, v]);
      else if (Array.isArray(v) && v.length && v.every((m) => m instanceof Module)) v.forEach((m, i) => out.push([`${k}.${i}`, m]));
    }
    return out;
  }

  /** Every module in the tree with its dotted path ("" for this one). */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [[prefix, this]];
    for (const [k, m] of this.namedChildren()) out.push(...m.namedModules(prefix ? `${prefix}.${k}` : k));
    return out;
  }

  /** Direct parameters of this module (not children). */
  ownParameters(): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [k, v] of Object.entries(this)) if (!k.startsWith("_") && v instanceof Parameter) out.push([k, v]);
    return out;
  }

  ownBuffers(): [string, Buffer][] {
    const out: [string, Buffer][] = [];
    for (const [k, v] of Object.entries(this)) if (!k.startsWith("_") && v instanceof Buffer) out.push([k, v]);
    return out;
  }

  /** All parameters with dotted names; a parameter shared by two modules (tied weights) appears once. */
  namedParameters(): [string, Parameter][] {
    const seen = new Set<Parameter>();
    const out: [string, Parameter][] = [];
    for (const [path, m] of this.namedModules()) {
      for (const [k, p] of m.ownParameters()) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push([path ? `${path}.${k}` : k, p]);
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  namedBuffers(): [string, Buffer][] {
    const out: [string, Buffer][] = [];
    for (const [path, m] of this.namedModules()) for (const [k, b] of m.ownBuffers()) out.push([path ? `${path}.${k}` : k, b]);
    return out;
  }

  /** Parameters and persistent buffers by dotted name (tied parameters once, under their first name). */
  stateDict(): Map<string, Tensor> {
    const sd = new Map<string, Tensor>();
    for (const [k, p] of this.namedParameters()) sd.set(k, p);
    for (const [k, b] of this.namedBuffers()) if (b.persistent) sd.set(k, b.value);
    return sd;
  }

  /**
   * Copies values from `sd` into this module's parameters and buffers (same dtype conversion as
   * PyTorch: the destination keeps its dtype). `strict` throws a `StateDictError` listing missing,
   * unexpected and shape-mismatched keys; non-strict returns missing and unexpected.
   */
  loadStateDict(sd: Map<string, Tensor> | Record<string, Tensor>, opts: { strict?: boolean } = {}): LoadResult {
    const src = sd instanceof Map ? sd : new Map(Object.entries(sd));
    const strict = opts.strict ?? true;
    const targets = this.assignableTensors();
    const missing = [...targets.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !targets.has(k));
    const mismatched: { key: string; expected: number[]; got: number[] }[] = [];
    for (const [k, v] of src) {
      const t = targets.get(k);
      if (t && !shapesEqual(t.get().shape, v.shape)) mismatched.push({ key: k, expected: [...t.get().shape], got: [...v.shape] });
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const parts = [];
      if (missing.length) parts.push(`missing keys: ${missing.join(", ")}`);
      if (unexpected.length) parts.push(`unexpected keys: ${unexpected.join(", ")}`);
      if (mismatched.length) parts.push(`shape mismatch: ${mismatched.map((m) => `${m.key} expected ${fmtShape(m.expected)} got ${fmtShape(m.got)}`).join(", ")}`);
      throw new StateDictError(`loadStateDict: ${parts.join("; ")}`, missing, unexpected, mismatched);
    }
    for (const [k, v] of src) targets.get(k)?.set(v);
    return { missing, unexpected };
  }

  /** name -> getter/setter for every parameter (all names, tied included) and persistent buffer. */
  private assignableTensors(): Map<string, { get(): Tensor; set(v: Tensor): void }> {
    const out = new Map<string, { get(): Tensor; set(v: Tensor): void }>();
    // A tied parameter is loaded under its first name only, matching `stateDict()`.
    const seen = new Set<Parameter>();
    for (const [path, m] of this.namedModules()) {
      const rec = m as unknown as Record<string, unknown>;
      for (const [k, p] of m.ownParameters()) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.set(path ? `${path}.${k}` : k, { get: () => rec[k] as Tensor, set: (v) => copyInto(rec[k] as Parameter, v) });
      }
      for (const [k, b] of m.ownBuffers()) if (b.persistent) out.set(path ? `${path}.${k}` : k, { get: () => b.value, set: (v) => copyInto(b.value, v) });
    }
    return out;
  }

  /** Stops gradients for parameters whose name matches a pattern (all when omitted). Returns the count. */
  freeze(patterns?: readonly string[]): number {
    return this.setTrainable(false, patterns);
  }

  /** Re-enables gradients for matching parameters (all when omitted). Returns the count. */
  unfreeze(patterns?: readonly string[]): number {
    return this.setTrainable(true, patterns);
  }

  /**
   * Hook: `freeze()`/`unfreeze()` call it on every module whose dotted path matches the patterns (all
   * modules when none are given), after the parameters changed. BatchNorm uses it to mark itself.
   */
  onFreezeChange?(frozen: boolean): void;

  private setTrainable(on: boolean, patterns?: readonly string[]): number {
    let n = 0;
    for (const [name, p] of this.namedParameters()) {
      if (patterns && !matchesAny(name, patterns)) continue;
      if (on && !(p.dtype === "float32" || p.dtype === "float64")) continue;
      p.requiresGrad = on;
      if (!on) p.grad = null;
      n++;
    }
    for (const [path, m] of this.namedModules()) {
      if (m.onFreezeChange && (!patterns || (path && matchesAny(path, patterns)))) m.onFreezeChange(!on);
    }
    return n;
  }

  /** Number of parameters (elements); `trainable: true` counts only those requiring grad. */
  numParameters(opts: { trainable?: boolean } = {}): number {
    let n = 0;
    for (const [, p] of this.namedParameters()) if (!opts.trainable || p.requiresGrad) n += p.size;
    return n;
  }

  /** Sets training mode on this module and all children. */
  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Clears `.grad` of every parameter. */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }
}

function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.dtype === src.dtype && src.isContiguous() && dst.isContiguous()) {
    dst.data.set(src.data.subarray(src.offset, src.offset + src.size), dst.offset);
    return;
  }
  if (!shapesEqual(dst.shape, src.shape)) throw new ShapeError(`loadStateDict: shape ${fmtShape(src.shape)} vs ${fmtShape(dst.shape)}`);
  const v = src.toFloat64Array();
  if (dst.dtype === "float32" || dst.dtype === "float64" || dst.dtype === "int32") {
    for (let i = 0; i < v.length; i++) dst.data[dst.offset + i] = v[i];
  } else {
    throw new TunekitError(`loadStateDict: cannot load ${src.dtype} into a ${dst.dtype} tensor`);
  }
}
