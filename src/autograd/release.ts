/**
 * Early release during `backward` inside a step scope (`src/tensor/scope.ts`): an intermediate
 * gradient born in this backward pass goes back to the storage pool as soon as no pending gradient
 * shares its storage, so the backward pass reuses its own buffers instead of holding every
 * activation gradient until the step ends. With the scope's `releaseActivations`, the forward
 * intermediates go too, once every graph tensor over their storage had its turn (all of a tensor's
 * consumers come before it in the reverse order, so no later VJP reads it); leaves, the root,
 * captured tensors and the inputs outside the graph (which VJPs may read) are never released.
 */
import {
  type AllocationMark,
  allocationMark,
  bornBefore,
  bornSince,
  leaseOf,
  releaseStorage,
  storagePool,
} from "../tensor/pool.ts";
import { stepScope } from "../tensor/scope.ts";
import type { Tensor } from "../tensor/tensor.ts";
import { isGradEnabled } from "./tape.ts";

/** A step of `forwardChain`: a function of one tensor or a module with `forward(x)`. */
export type ChainStep = ((x: Tensor) => Tensor) | { forward(x: Tensor): Tensor };

/**
 * `x` through `steps` in order (a backbone's layers). Under `noGrad` inside a step scope, each step
 * runs in a scope of its own and the previous step's output goes back to the storage pool as soon
 * as the next output exists, as PyTorch's reference counting frees them: inference through a deep
 * backbone then holds about two activations instead of all of them. Otherwise (recording a graph,
 * or no scope open) it is the plain loop. A step must not keep its output anywhere but in the
 * step object itself (a module's state is kept).
 * @example const y = forwardChain(x, [this.conv1, this.bn1, relu, this.conv2, this.bn2]);
 */
export function forwardChain(x: Tensor, steps: readonly ChainStep[]): Tensor {
  const run = (f: ChainStep, t: Tensor) => (typeof f === "function" ? f(t) : f.forward(t));
  const mark = allocationMark();
  if (isGradEnabled() || mark === null) {
    for (const f of steps) x = run(f, x);
    return x;
  }
  const start = mark.serial;
  // Every buffer here is short-lived, so an idle large one may serve a request a quarter its size.
  const ratio = storagePool.carveRatio;
  storagePool.carveRatio = Math.max(ratio, 4);
  let cur = x;
  try {
    for (const f of steps) {
      const prev = cur;
      cur = stepScope(() => run(f, prev), { keep: [f] });
      // Only storage the chain itself allocated, and not when the step returned a view of it.
      const a = prev.storageUnchecked;
      const lease = leaseOf(a);
      if (lease && lease.serial > start && a.buffer !== cur.storageUnchecked.buffer) releaseStorage(a);
    }
  } finally {
    storagePool.carveRatio = ratio;
  }
  return cur;
}

export class GradReleaser {
  private count = new Map<ArrayBufferLike, number>();
  private pinned = new Set<ArrayBufferLike>();
  /** Graph tensors per storage that the pass has not reached yet (with `releaseActivations`). */
  private ahead: Map<ArrayBufferLike, number> | null = null;

  private constructor(private readonly mark: AllocationMark) {}

  /** A releaser for a backward pass starting now; null outside a step scope (nothing to do). */
  static start(): GradReleaser | null {
    const m = allocationMark();
    return m ? new GradReleaser(m) : null;
  }

  /** Before the pass (`order`: reverse topological): what the forward release must spare. */
  plan(order: readonly Tensor[], root: Tensor, captured: ReadonlySet<Tensor>): void {
    if (!this.mark.log.releaseActivations) return;
    const ahead = new Map<ArrayBufferLike, number>();
    const inGraph = new Set(order);
    for (const t of order) {
      const b = t.storageUnchecked.buffer;
      ahead.set(b, (ahead.get(b) ?? 0) + 1);
      if (!t.node) this.pin(t);
      else for (const inp of t.node.inputs) if (!inGraph.has(inp)) this.pin(inp);
    }
    this.pin(root);
    for (const c of captured) this.pin(c);
    this.ahead = ahead;
  }

  /** The pass is done with `t`: release its forward storage once no graph tensor ahead shares it. */
  passed(t: Tensor): void {
    if (!this.ahead) return;
    const a = t.storageUnchecked;
    const n = (this.ahead.get(a.buffer) ?? 1) - 1;
    this.ahead.set(a.buffer, n);
    if (n > 0 || this.pinned.has(a.buffer) || (this.count.get(a.buffer) ?? 0) > 0) return;
    if (bornBefore(this.mark, a)) releaseStorage(a);
  }

  /** `g` is pending (in backward's gradient map). */
  hold(g: Tensor): void {
    const b = g.storageUnchecked.buffer;
    this.count.set(b, (this.count.get(b) ?? 0) + 1);
  }

  /** `g` left the pending map. */
  unhold(g: Tensor): void {
    const b = g.storageUnchecked.buffer;
    this.count.set(b, (this.count.get(b) ?? 1) - 1);
  }

  /** `g` is handed to the caller (captured): never released here. */
  pin(g: Tensor): void {
    this.pinned.add(g.storageUnchecked.buffer);
  }

  /** True (and `g` pinned) when `g` can become a leaf's `.grad` as it is: this pass allocated it, it is dense, nothing else holds it. */
  adopt(g: Tensor): boolean {
    const a = g.storageUnchecked;
    if (this.pinned.has(a.buffer) || (this.count.get(a.buffer) ?? 0) > 0 || !bornSince(this.mark, a)) return false;
    if (g.offset !== 0 || g.size !== a.length || !g.isContiguous()) return false;
    this.pinned.add(a.buffer);
    return true;
  }

  /** Releases `g`'s storage if this pass allocated it and nothing pending or pinned shares it. */
  drop(g: Tensor): void {
    const a = g.storageUnchecked;
    if (this.pinned.has(a.buffer) || (this.count.get(a.buffer) ?? 0) > 0) return;
    if (bornSince(this.mark, a)) releaseStorage(a);
  }
}
