/** Grad mode and graph recording. Ops call `record()`; nothing here knows about any op. */
import type { GradNode, Tensor } from "../tensor/tensor.ts";

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Sets grad mode, returning the previous value. */
export function setGradEnabled(on: boolean): boolean {
  const prev = gradEnabled;
  gradEnabled = on;
  return prev;
}

/**
 * Runs `fn` without recording a graph (PyTorch `torch.no_grad()`).
 * @example const y = noGrad(() => model.forward(x));
 */
export function noGrad<T>(fn: () => T): T {
  const prev = setGradEnabled(false);
  try {
    return fn();
  } finally {
    setGradEnabled(prev);
  }
}

/** Runs `fn` with recording on (inside `noGrad`, e.g. for checkpoint recomputation). */
export function enableGrad<T>(fn: () => T): T {
  const prev = setGradEnabled(true);
  try {
    return fn();
  } finally {
    setGradEnabled(prev);
  }
}

/** True when an op over `inputs` must record a node. */
export function needsGrad(inputs: readonly Tensor[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t.requiresGrad) return true;
  return false;
}

/** Attaches a graph node to `out` when any input requires grad. */
export function record(out: Tensor, op: string, inputs: readonly Tensor[], vjp: GradNode["vjp"]): Tensor {
  if (needsGrad(inputs)) {
    out.requiresGrad = true;
    out.node = { op, inputs, vjp };
  }
  return out;
}
