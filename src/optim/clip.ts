/** Gradient clipping by global norm (PyTorch `clip_grad_norm_`). */
import { ValueError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { valuesOf } from "./optimizer.ts";

/**
 * Clips the gradients of `params` (those with a `.grad`) in place so that their global norm is at
 * most `maxNorm`; returns the norm before clipping. The norm is accumulated in float64 (`normType`
 * 2 by default, any p > 0, or Infinity for max-abs). As torch 1.13, grads are multiplied by
 * min(1, maxNorm / (norm + 1e-6)). A non-finite norm (NaN/Infinity) is returned without touching
 * the gradients: skipping the step or failing is the caller's policy.
 * @example const norm = clipGradNorm(model.parameters(), 1.0); if (!Number.isFinite(norm)) skipStep();
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, normType = 2): number {
  if (!(normType > 0)) throw new ValueError(`clipGradNorm: normType must be > 0, got ${normType}`);
  const grads: Tensor[] = [];
  for (const p of params) if (p.grad) grads.push(p.grad);
  if (grads.length === 0) return 0;
  const norm = globalNorm(grads, normType);
  if (!Number.isFinite(norm)) return norm;
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) for (const g of grads) scaleInPlace(g, coef);
  return norm;
}

/** The `normType` norm of all `tensors` together (float64 accumulation). */
export function globalNorm(tensors: readonly Tensor[], normType = 2): number {
  let acc = 0;
  for (const t of tensors) {
    const v = valuesOf(t);
    if (normType === Number.POSITIVE_INFINITY) {
      for (let i = 0; i < v.length; i++) {
        const a = Math.abs(v[i]);
        if (!(a <= acc)) acc = Number.isNaN(a) ? Number.NaN : a;
        if (Number.isNaN(acc)) return acc;
      }
    } else if (normType === 2) {
      for (let i = 0; i < v.length; i++) acc += v[i] * v[i];
    } else {
      for (let i = 0; i < v.length; i++) acc += Math.abs(v[i]) ** normType;
    }
  }
  return normType === Number.POSITIVE_INFINITY ? acc : normType === 2 ? Math.sqrt(acc) : acc ** (1 / normType);
}

function scaleInPlace(g: Tensor, c: number): void {
  if (g.dtype !== "float32" && g.dtype !== "float64")
    throw new ValueError(`clipGradNorm: gradient dtype ${g.dtype} is not float32/float64`);
  if (g.isContiguous()) {
    const d = g.data;
    for (let i = g.offset; i < g.offset + g.size; i++) d[i] *= c;
    return;
  }
  throw new ValueError("clipGradNorm: gradients must be contiguous");
}
