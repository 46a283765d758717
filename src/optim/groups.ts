/** Building parameter groups from a model's named parameters. */
import type { Tensor } from "../tensor/tensor.ts";

export interface DecayGroupOptions {
  /** Which parameters skip weight decay; default: fewer than 2 dims (biases, norm weights), as HF/nanoGPT. */
  noDecay?: (name: string, p: Tensor) => boolean;
}

/**
 * Two groups, trainable parameters only: matrices/embeddings with `weightDecay`, the rest (biases,
 * LayerNorm/RMSNorm/BatchNorm weights) with 0, the split HF's Trainer makes. Empty groups are left out.
 * @example new AdamW(weightDecayGroups(model.namedParameters(), 0.01), { lr: 2e-4 })
 */
export function weightDecayGroups(
  named: Iterable<[string, Tensor]>,
  weightDecay: number,
  opts: DecayGroupOptions = {},
): { params: Tensor[]; weightDecay: number }[] {
  const skip = opts.noDecay ?? ((_n: string, p: Tensor) => p.ndim < 2);
  const decay: Tensor[] = [];
  const plain: Tensor[] = [];
  for (const [name, p] of named) {
    if (!p.requiresGrad) continue;
    (skip(name, p) ? plain : decay).push(p);
  }
  return [
    { params: decay, weightDecay },
    { params: plain, weightDecay: 0 },
  ].filter((g) => g.params.length > 0);
}
