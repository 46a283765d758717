/** `valueAndGrad(fn)`: MLX/JAX-style functional gradients of a scalar function of tensors. */
import type { Tensor } from "../tensor/tensor.ts";
import { grad } from "./backward.ts";
import { enableGrad } from "./tape.ts";

/**
 * Returns a function computing `fn(...args)` and its gradient with respect to every argument
 * (arguments are treated as inputs that require grad; `.grad` fields are not touched).
 * @example const [loss, [dw]] = valueAndGrad((w) => sum(mul(w, w)))(w);
 */
export function valueAndGrad(fn: (...args: Tensor[]) => Tensor): (...args: Tensor[]) => [Tensor, Tensor[]] {
  return (...args) => {
    const inputs = args.map((a) => {
      const d = a.detach();
      d.requiresGrad = true;
      return d;
    });
    const value = enableGrad(() => fn(...inputs));
    return [value.detach(), grad(value, inputs)];
  };
}
