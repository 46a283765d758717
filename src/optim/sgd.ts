/** SGD with momentum, dampening, Nesterov and L2 weight decay (PyTorch `torch.optim.SGD`). */
import { ValueError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { Optimizer, type ParamGroup, type ParamsArg, storageOf, valuesOf, zerosLike } from "./optimizer.ts";

export interface SGDHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export interface SGDState {
  [k: string]: Tensor | number | null;
  /** Null until the first step (PyTorch seeds it with the first gradient, undamped). */
  momentumBuffer: Tensor | null;
  step: number;
}

/**
 * Stochastic gradient descent, PyTorch semantics:
 * d = g + wd*p; buf = d (first step) or momentum*buf + (1-dampening)*d;
 * d = nesterov ? d + momentum*buf : buf; p -= lr*d.
 * @example const opt = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9 });
 */
export class SGD extends Optimizer<SGDHyper, SGDState> {
  constructor(params: ParamsArg<SGDHyper>, opts: Partial<SGDHyper> & { lr: number }) {
    super(params, { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...opts });
  }

  protected override validate(g: ParamGroup<SGDHyper>): void {
    super.validate(g);
    if (g.momentum < 0) throw new ValueError(`SGD: invalid momentum ${g.momentum}`);
    if (g.weightDecay < 0) throw new ValueError(`SGD: invalid weightDecay ${g.weightDecay}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0))
      throw new ValueError("SGD: nesterov needs momentum > 0 and dampening 0");
  }

  protected initState(): SGDState {
    return { momentumBuffer: null, step: 0 };
  }

  protected updateParam(p: Tensor, grad: Tensor, st: SGDState, g: ParamGroup<SGDHyper>): void {
    const w = storageOf(p, "SGD");
    const gr = valuesOf(grad);
    const { lr, momentum, dampening, weightDecay: wd, nesterov } = g;
    const first = st.momentumBuffer === null;
    if (momentum !== 0 && first) st.momentumBuffer = zerosLike(p);
    const buf = st.momentumBuffer ? storageOf(st.momentumBuffer, "SGD") : null;
    for (let i = 0; i < w.length; i++) {
      let d = wd !== 0 ? gr[i] + wd * w[i] : gr[i];
      if (buf) {
        buf[i] = first ? d : momentum * buf[i] + (1 - dampening) * d;
        d = nesterov ? d + momentum * buf[i] : buf[i];
      }
      w[i] = w[i] - lr * d;
    }
    st.step++;
  }
}
