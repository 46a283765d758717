/**
 * `stepScope`: the explicit release of a hot loop's intermediates (TF.js `tidy`, for a training
 * step). Storage allocated inside the scope comes from the storage pool (`pool.ts`); when the scope
 * ends, every such storage that did not escape goes back to the pool, and tensors over it throw
 * `ReleasedTensorError` when read. What escapes is found by walking the scope's return value and
 * the `keep` roots (the model, the optimizer, ...): plain objects, arrays, Maps and Sets, a tensor's
 * `.grad` and its graph inputs, and any typed array met on the way. Values only a closure holds
 * (an autograd node's saved tensors) are not seen: they are released, so run `backward` inside
 * the scope that built the graph. A raw typed array taken from `.data` inside the scope is only
 * safe afterwards if something in `keep` still reaches it (or its tensor): copy it otherwise.
 */
import type { TypedArray } from "./dtype.ts";
import { type AllocationLog, forgetStorage, leaseOf, releaseStorage, setAllocationLog, storagePool } from "./pool.ts";
import { Tensor } from "./tensor.ts";

export interface StepScopeOptions {
  /** Objects whose tensors (at any depth) outlive the scope: model, optimizer, metric buffers. */
  keep?: readonly unknown[];
  /**
   * During `backward` in this scope, each intermediate of the graph goes back to the pool as soon
   * as the backward pass is past it (PyTorch frees saved tensors the same way): a lower peak, but
   * reading an intermediate (logits, hidden states; not the loss or leaves) after `backward` in
   * the scope then throws `ReleasedTensorError`, and so does a second backward through the graph.
   * Default false.
   */
  releaseActivations?: boolean;
}

/**
 * Runs `fn` with pooled storage and releases what it allocated that neither its result nor
 * `keep` can reach. Scopes nest: what an inner scope keeps, the outer one may still release.
 * If `fn` throws, nothing is released (the storage is left to the garbage collector).
 * @example
 * const loss = stepScope(() => {
 *   const out = model.forward(batch);
 *   backward(out.loss);
 *   opt.step();
 *   opt.zeroGrad();
 *   return out.loss.item();
 * }, { keep: [model, opt] });
 */
export function stepScope<T>(fn: () => T, opts: StepScopeOptions = {}): T {
  const scope: AllocationLog = { allocated: [], releaseActivations: opts.releaseActivations === true };
  const parent = setAllocationLog(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    setAllocationLog(parent);
    if (parent) for (const a of scope.allocated) parent.allocated.push(a);
    else for (const a of scope.allocated) forgetStorage(a);
    throw e;
  }
  setAllocationLog(parent);
  const kept = reachableBuffers([result, ...(opts.keep ?? [])]);
  const done = new Set<ArrayBufferLike>();
  for (const a of scope.allocated) {
    // A buffer released early (backward's dead gradients) and handed out again is logged twice.
    if (done.has(a.buffer)) continue;
    done.add(a.buffer);
    if (!leaseOf(a)) continue; // released early and still in the pool
    if (!kept.has(a.buffer)) releaseStorage(a);
    else if (parent) parent.allocated.push(a);
    else forgetStorage(a);
  }
  if (!parent) storagePool.tick();
  return result;
}

/** The buffers of every tensor and typed array reachable from `roots`. */
function reachableBuffers(roots: readonly unknown[]): Set<ArrayBufferLike> {
  const out = new Set<ArrayBufferLike>();
  const seen = new Set<object>();
  const stack: unknown[] = [...roots];
  const push = (v: unknown) => {
    if (v !== null && typeof v === "object" && !seen.has(v)) stack.push(v);
  };
  while (stack.length) {
    const v = stack.pop();
    if (v === null || typeof v !== "object" || seen.has(v)) continue;
    seen.add(v);
    if (v instanceof Tensor) {
      out.add(v.storageUnchecked.buffer);
      push(v.grad);
      for (const inp of v.node?.inputs ?? []) push(inp);
    } else if (ArrayBuffer.isView(v)) {
      out.add((v as TypedArray).buffer);
    } else if (v instanceof Map) {
      for (const [k, x] of v) {
        push(k);
        push(x);
      }
    } else if (v instanceof Set || Array.isArray(v)) {
      for (const x of v) push(x);
    } else {
      for (const k of Object.keys(v)) push((v as Record<string, unknown>)[k]);
    }
  }
  return out;
}
