/**
 * Gradient checkpointing: run `fn` without keeping its graph, and recompute it during backward.
 * The default generator's state is replayed so dropout masks are identical in the recomputation.
 */
import { defaultGenerator } from "../tensor/rng.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { runBackward } from "./backward.ts";
import { enableGrad, isGradEnabled, noGrad } from "./tape.ts";

/**
 * @example const h = checkpoint((x) => block.forward(x), hidden);
 */
export function checkpoint(fn: (...inputs: Tensor[]) => Tensor, ...inputs: Tensor[]): Tensor {
  if (!isGradEnabled()) return fn(...inputs);
  const rng = defaultGenerator.getState();
  const out = noGrad(() => fn(...inputs));
  // Parameters used inside fn are not inputs of this node; their gradients are accumulated
  // directly by the inner backward, so the node must exist even when no input requires grad.
  out.requiresGrad = true;
  out.node = {
    op: "checkpoint",
    inputs,
    vjp: (g) => {
      const saved = defaultGenerator.getState();
      defaultGenerator.setState(rng);
      const detached = inputs.map((x) => {
        const d = x.detach();
        d.requiresGrad = x.requiresGrad;
        return d;
      });
      let y: Tensor;
      try {
        y = enableGrad(() => fn(...detached));
      } finally {
        defaultGenerator.setState(saved);
      }
      if (!y.requiresGrad) return detached.map(() => null);
      const m = runBackward(y, g, { capture: detached });
      return detached.map((d) => m.get(d) ?? null);
    },
  };
  return out;
}
