/**
 * Early release of dead gradients during `backward` inside a step scope (`src/tensor/scope.ts`):
 * an intermediate gradient born in this backward pass goes back to the storage pool as soon as no
 * pending gradient shares its storage, so the backward pass reuses its own buffers instead of
 * holding every activation gradient until the step ends (PyTorch frees them the same way).
 */
import { type AllocationMark, allocationMark, bornSince, releaseStorage } from "../tensor/pool.ts";
import type { Tensor } from "../tensor/tensor.ts";

export class GradReleaser {
  private count = new Map<ArrayBufferLike, number>();
  private pinned = new Set<ArrayBufferLike>();

  private constructor(private readonly mark: AllocationMark) {}

  /** A releaser for a backward pass starting now; null outside a step scope (nothing to do). */
  static start(): GradReleaser | null {
    const m = allocationMark();
    return m ? new GradReleaser(m) : null;
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

  /** Releases `g`'s storage if this pass allocated it and nothing pending or pinned shares it. */
  drop(g: Tensor): void {
    const a = g.storageUnchecked;
    if (this.pinned.has(a.buffer) || (this.count.get(a.buffer) ?? 0) > 0) return;
    if (bornSince(this.mark, a)) releaseStorage(a);
  }
}
