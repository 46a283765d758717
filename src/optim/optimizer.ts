/**
 * The optimiser base (MLX style): a subclass says how to create one parameter's state
 * (`initState`) and how to update one parameter (`updateParam`); the base owns parameter groups,
 * skipping frozen parameters, `zeroGrad` and the state dict used for exact resume.
 */
import { noGrad } from "../autograd/tape.ts";
import type { TypedArray } from "../tensor/dtype.ts";
import { DTypeError, fmtShape, ShapeError, TunekitError, ValueError } from "../tensor/errors.ts";
import { shapesEqual } from "../tensor/shape.ts";
import { Tensor, zeros } from "../tensor/tensor.ts";

/** Hyper-parameters every optimiser has; subclasses add theirs (weightDecay, betas, ...). */
export interface BaseHyper {
  lr: number;
}

/** A parameter group: its parameters and its own hyper-parameters (PyTorch `param_groups`). */
export type ParamGroup<H extends BaseHyper> = H & {
  params: Tensor[];
  /** The lr a scheduler multiplies (set by the first scheduler attached; PyTorch `initial_lr`). */
  initialLr?: number;
};

/** What a constructor accepts: a list of tensors, or groups overriding some defaults. */
export type ParamsArg<H extends BaseHyper> = Iterable<Tensor> | readonly (Partial<H> & { params: Iterable<Tensor> })[];

/** One parameter's state: step counts and buffers (moments, momentum). */
export type ParamState = Record<string, Tensor | number | null>;

/**
 * A serialisable snapshot (tensors are copies): `state` keyed by the parameter's index over all
 * groups in order (PyTorch numbering), and each group's hyper-parameters with its parameter indices.
 * Frozen parameters that never stepped have no `state` entry.
 */
export interface OptimizerStateDict {
  state: Record<number, Record<string, Tensor | number | null>>;
  paramGroups: (Record<string, unknown> & { params: number[] })[];
}

export class OptimizerError extends TunekitError {}

/** The contiguous storage of a parameter (updated in place). */
export function storageOf(p: Tensor, op: string): TypedArray {
  if (!p.isContiguous())
    throw new ValueError(`${op}: parameters must be contiguous, got a view of shape ${fmtShape(p.shape)}`);
  if (p.dtype !== "float32" && p.dtype !== "float64")
    throw new DTypeError(`${op}: parameters must be float32/float64, got ${p.dtype}`);
  return p.data.subarray(p.offset, p.offset + p.size);
}

/** A gradient's values as a flat array (the storage itself when contiguous, else a float64 copy). */
export function valuesOf(g: Tensor): ArrayLike<number> {
  if (g.isContiguous() && (g.dtype === "float32" || g.dtype === "float64"))
    return g.data.subarray(g.offset, g.offset + g.size);
  return g.toFloat64Array();
}

/** A zero buffer shaped and typed like `p` (PyTorch `zeros_like`). */
export function zerosLike(p: Tensor): Tensor {
  return zeros(p.shape, { dtype: p.dtype });
}

export abstract class Optimizer<H extends BaseHyper = BaseHyper, S extends ParamState = ParamState> {
  readonly paramGroups: ParamGroup<H>[];
  /** Per-parameter state, created lazily at a parameter's first update. */
  readonly state = new Map<Tensor, S>();
  readonly defaults: H;

  constructor(params: ParamsArg<H>, defaults: H) {
    this.defaults = defaults;
    const list = [...(params as Iterable<unknown>)];
    const isGroups = list.length > 0 && !(list[0] instanceof Tensor);
    const groups = isGroups
      ? (list as (Partial<H> & { params: Iterable<Tensor> })[])
      : [{ params: list as Tensor[] } as unknown as Partial<H> & { params: Iterable<Tensor> }];
    const seen = new Set<Tensor>();
    this.paramGroups = groups.map((g, gi) => {
      const ps = [...g.params];
      for (const p of ps) {
        if (!(p instanceof Tensor))
          throw new OptimizerError(`optimizer: group ${gi} contains something that is not a Tensor`);
        if (seen.has(p))
          throw new OptimizerError(
            `optimizer: a parameter of shape ${fmtShape(p.shape)} appears in more than one group`,
          );
        seen.add(p);
      }
      const group = { ...defaults, ...g, params: ps } as ParamGroup<H>;
      this.validate(group);
      return group;
    });
  }

  /** Checks a group's hyper-parameters (throws ValueError naming the bad one). */
  protected validate(group: ParamGroup<H>): void {
    if (!(group.lr >= 0)) throw new ValueError(`optimizer: invalid learning rate ${group.lr}`);
  }

  /** Creates the state of `p` (called at its first update). */
  protected abstract initState(p: Tensor, group: ParamGroup<H>): S;

  /** Updates `p` in place from `grad`, advancing `state`. The plain-TS loop is the definition. */
  protected abstract updateParam(p: Tensor, grad: Tensor, state: S, group: ParamGroup<H>): void;

  /** One optimisation step over every parameter that requires grad and has a gradient. */
  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) this.stepGroup(group);
    });
  }

  /** The parameters of `group` that take part in a step, with their (lazily created) state. */
  protected active(group: ParamGroup<H>): [Tensor, Tensor, S][] {
    const out: [Tensor, Tensor, S][] = [];
    for (const p of group.params) {
      // Frozen parameters get no state and are never touched, whatever .grad holds.
      if (!p.requiresGrad || !p.grad) continue;
      if (!shapesEqual(p.grad.shape, p.shape))
        throw new ShapeError(
          `optimizer: gradient ${fmtShape(p.grad.shape)} does not match parameter ${fmtShape(p.shape)}`,
        );
      let st = this.state.get(p);
      if (!st) {
        st = this.initState(p, group);
        this.state.set(p, st);
      }
      out.push([p, p.grad, st]);
    }
    return out;
  }

  protected stepGroup(group: ParamGroup<H>): void {
    for (const [p, g, st] of this.active(group)) this.updateParam(p, g, st, group);
  }

  /** Clears the gradients of every parameter (PyTorch `zero_grad(set_to_none=True)`). */
  zeroGrad(): void {
    for (const g of this.paramGroups) for (const p of g.params) p.grad = null;
  }

  /** Adds a group (PyTorch `add_param_group`); missing hyper-parameters come from the defaults. */
  addParamGroup(g: Partial<H> & { params: Iterable<Tensor> }): void {
    const group = { ...this.defaults, ...g, params: [...g.params] } as ParamGroup<H>;
    this.validate(group);
    this.paramGroups.push(group);
  }

  /** A copy of the state and hyper-parameters (see `OptimizerStateDict`). */
  stateDict(): OptimizerStateDict {
    const state: OptimizerStateDict["state"] = {};
    const paramGroups: OptimizerStateDict["paramGroups"] = [];
    let idx = 0;
    for (const g of this.paramGroups) {
      const { params, ...hyper } = g;
      const ids: number[] = [];
      for (const p of params) {
        const st = this.state.get(p);
        if (st)
          state[idx] = Object.fromEntries(
            Object.entries(st).map(([k, v]) => [k, v instanceof Tensor ? copyTensor(v) : v]),
          );
        ids.push(idx++);
      }
      paramGroups.push({ ...structuredClone(hyper), params: ids });
    }
    return { state, paramGroups };
  }

  /**
   * Restores a `stateDict()` snapshot onto the same parameter structure (groups and sizes must
   * match; state tensors must have their parameter's shape). Values are copied.
   */
  loadStateDict(sd: OptimizerStateDict): void {
    if (sd.paramGroups.length !== this.paramGroups.length)
      throw new OptimizerError(
        `loadStateDict: ${sd.paramGroups.length} parameter groups in the state dict, the optimizer has ${this.paramGroups.length}`,
      );
    const byIndex = new Map<number, Tensor>();
    sd.paramGroups.forEach((sg, gi) => {
      const g = this.paramGroups[gi];
      if (sg.params.length !== g.params.length)
        throw new OptimizerError(
          `loadStateDict: group ${gi} has ${sg.params.length} parameters in the state dict, ${g.params.length} in the optimizer`,
        );
      sg.params.forEach((id, i) => {
        byIndex.set(id, g.params[i]);
      });
    });
    const next = new Map<Tensor, S>();
    for (const [k, st] of Object.entries(sd.state)) {
      const p = byIndex.get(Number(k));
      if (!p) throw new OptimizerError(`loadStateDict: state for parameter index ${k}, which no group lists`);
      const copy: ParamState = {};
      for (const [name, v] of Object.entries(st)) {
        if (v instanceof Tensor && !shapesEqual(v.shape, p.shape))
          throw new ShapeError(
            `loadStateDict: state '${name}' of parameter ${k} has shape ${fmtShape(v.shape)}, the parameter ${fmtShape(p.shape)}`,
          );
        copy[name] = v instanceof Tensor ? copyTensor(v, p.dtype) : v;
      }
      next.set(p, copy as S);
    }
    this.state.clear();
    for (const [p, s] of next) this.state.set(p, s);
    sd.paramGroups.forEach((sg, gi) => {
      const { params: _ids, ...hyper } = sg;
      Object.assign(this.paramGroups[gi], structuredClone(hyper));
    });
  }
}

/** A contiguous copy (optionally converted to `dtype`). */
function copyTensor(t: Tensor, dtype = t.dtype): Tensor {
  const out = zeros(t.shape, { dtype });
  if (dtype === t.dtype && t.isContiguous()) out.data.set(t.data.subarray(t.offset, t.offset + t.size));
  else out.data.set(t.toFloat64Array());
  return out;
}
