/**
 * Adam and AdamW with PyTorch semantics (torch 1.13 single-tensor path, bias correction included).
 * AdamW uses the backend's fused kernel for float32 parameters when there is one; the TS loop in
 * `updateParam` is the definition it must match.
 */
import { backend } from "../backend/index.ts";
import { ValueError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Optimizer, type ParamGroup, type ParamsArg, storageOf, valuesOf, zerosLike } from "./optimizer.ts";

export interface AdamHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
}

export interface AdamState {
  [k: string]: Tensor | number | null;
  step: number;
  expAvg: Tensor;
  expAvgSq: Tensor;
  /** Only with amsgrad. */
  maxExpAvgSq: Tensor | null;
}

/**
 * Adam (PyTorch `torch.optim.Adam`): weight decay is L2 added to the gradient.
 * @example const opt = new Adam(model.parameters(), { lr: 1e-3 });
 */
export class Adam extends Optimizer<AdamHyper, AdamState> {
  /** Decoupled weight decay (AdamW) instead of L2 in the gradient. */
  protected decoupled = false;

  constructor(params: ParamsArg<AdamHyper>, opts: Partial<AdamHyper> & { lr?: number } = {}) {
    super(params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0, amsgrad: false, ...opts });
  }

  protected override validate(g: ParamGroup<AdamHyper>): void {
    super.validate(g);
    const [b1, b2] = g.betas;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1))
      throw new ValueError(`${this.constructor.name}: invalid betas (${b1}, ${b2})`);
    if (!(g.eps >= 0)) throw new ValueError(`${this.constructor.name}: invalid eps ${g.eps}`);
    if (!(g.weightDecay >= 0)) throw new ValueError(`${this.constructor.name}: invalid weightDecay ${g.weightDecay}`);
  }

  protected initState(p: Tensor, g: ParamGroup<AdamHyper>): AdamState {
    return { step: 0, expAvg: zerosLike(p), expAvgSq: zerosLike(p), maxExpAvgSq: g.amsgrad ? zerosLike(p) : null };
  }

  protected updateParam(p: Tensor, grad: Tensor, st: AdamState, g: ParamGroup<AdamHyper>): void {
    const w = storageOf(p, this.constructor.name);
    const gr = valuesOf(grad);
    const m = storageOf(st.expAvg, "Adam state");
    const v = storageOf(st.expAvgSq, "Adam state");
    const vmax = st.maxExpAvgSq ? storageOf(st.maxExpAvgSq, "Adam state") : null;
    const { lr, eps, weightDecay: wd } = g;
    const [b1, b2] = g.betas;
    st.step++;
    // Scalars exactly as torch 1.13 forms them.
    const bc1 = 1 - b1 ** st.step;
    const bc2 = 1 - b2 ** st.step;
    const stepSize = lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    const decay = 1 - lr * wd;
    for (let i = 0; i < w.length; i++) {
      let gi = gr[i];
      if (this.decoupled) w[i] = w[i] * decay;
      else if (wd !== 0) gi = gi + wd * w[i];
      m[i] = m[i] * b1 + (1 - b1) * gi;
      v[i] = v[i] * b2 + (1 - b2) * gi * gi;
      let vv = v[i];
      if (vmax) vv = vmax[i] = Math.max(vmax[i], v[i]);
      const denom = Math.sqrt(vv) / bc2Sqrt + eps;
      w[i] = w[i] + -stepSize * (m[i] / denom);
    }
  }
}

/**
 * AdamW (PyTorch `torch.optim.AdamW`): decoupled weight decay p *= 1 - lr*wd (default 0.01), then
 * the Adam update with bias correction.
 * @example const opt = new AdamW([{ params: decay, weightDecay: 0.01 }, { params: noDecay, weightDecay: 0 }], { lr: 2e-4 });
 */
export class AdamW extends Adam {
  /** Set false to force the TS loop even when the backend has a fused kernel. */
  useFused = true;

  constructor(params: ParamsArg<AdamHyper>, opts: Partial<AdamHyper> & { lr?: number } = {}) {
    super(params, { weightDecay: 0.01, ...opts });
    this.decoupled = true;
  }

  protected override stepGroup(group: ParamGroup<AdamHyper>): void {
    const fused = this.useFused && !group.amsgrad ? backend().fused.adamw : undefined;
    const items = this.active(group);
    if (!fused) {
      for (const [p, g, st] of items) this.updateParam(p, g, st, group);
      return;
    }
    // The fused kernel takes one step count per call: batch float32 parameters by step.
    const batches = new Map<number, [Float32Array[], Float32Array[], Float32Array[], Float32Array[]]>();
    for (const [p, g, st] of items) {
      if (p.dtype !== "float32" || !p.isContiguous() || g.dtype !== "float32" || !g.isContiguous()) {
        this.updateParam(p, g, st, group);
        continue;
      }
      st.step++;
      let b = batches.get(st.step);
      if (!b) {
        b = [[], [], [], []];
        batches.set(st.step, b);
      }
      b[0].push(storageOf(p, "AdamW") as Float32Array);
      b[1].push(valuesOf(g) as Float32Array);
      b[2].push(storageOf(st.expAvg, "AdamW") as Float32Array);
      b[3].push(storageOf(st.expAvgSq, "AdamW") as Float32Array);
    }
    for (const [step, [ps, gs, ms, vs]] of batches) {
      const hp = {
        lr: ps.map(() => group.lr),
        beta1: group.betas[0],
        beta2: group.betas[1],
        eps: group.eps,
        weightDecay: ps.map(() => group.weightDecay),
        step,
      };
      fused(ps, gs, ms, vs, hp);
    }
  }
}
