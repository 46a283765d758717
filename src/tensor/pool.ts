/**
 * Storage pool for the hot loops (DESIGN.md: "storage is ordinary ArrayBuffers left to the garbage
 * collector, except in the hot loops, which release intermediates explicitly through a scope/pool").
 *
 * While a `StepScope` is open (`stepScope(fn, { keep })` in `scope.ts`), every tensor storage the
 * creation functions allocate is taken from this pool (zero-filled, as a fresh array would be) and
 * logged by the scope with a `Lease`. At scope end the storage of every tensor that did not escape
 * goes back to the pool and its lease is marked released: tensors over released storage (views
 * included: they share the typed array's buffer, hence the lease) throw `ReleasedTensorError` when
 * their `.data` is read, so a released tensor can never silently alias the buffer's next owner.
 *
 * Outside a scope nothing changes: `allocate` is `allocStorage` and tensors carry no lease.
 */
import { allocStorage, type DType, type TypedArray } from "./dtype.ts";

/** One hand-out of a pooled buffer; `released` once the buffer went back to the pool. */
export interface Lease {
  released: boolean;
  /** Hand-out order (see `allocationMark`) and the scope log that took it. */
  readonly serial: number;
  readonly log: AllocationLog;
}

/** A point in the open scope's allocations: buffers handed out after it are "born since". */
export interface AllocationMark {
  readonly log: AllocationLog;
  readonly serial: number;
}

/** What the innermost open scope logs about the storage allocated while it is open. */
export interface AllocationLog {
  readonly allocated: TypedArray[];
  /** Backward passes in this scope release each forward tensor once they are past it. */
  readonly releaseActivations?: boolean;
}

const leases = new WeakMap<ArrayBufferLike, Lease>();
let log: AllocationLog | null = null;
let serial = 0;

/** The lease of the pooled buffer under `data` (null for ordinary storage). */
export function leaseOf(data: TypedArray): Lease | null {
  return leases.get(data.buffer) ?? null;
}

/** Sets the allocation log of the innermost open scope (returns the previous one). */
export function setAllocationLog(next: AllocationLog | null): AllocationLog | null {
  const prev = log;
  log = next;
  return prev;
}

/** Zeroed storage for `n` elements: from the pool (and logged) inside a scope, else fresh. */
export function allocate(dtype: DType, n: number): TypedArray {
  if (log === null) return allocStorage(dtype, n);
  const a = storagePool.take(dtype, n) ?? allocStorage(dtype, n);
  leases.set(a.buffer, { released: false, serial: ++serial, log });
  log.allocated.push(a);
  return a;
}

/** The current point of the open scope (null outside a scope). */
export function allocationMark(): AllocationMark | null {
  return log === null ? null : { log, serial };
}

/** True when `a` is pooled storage handed out after `mark` by the same scope and still leased. */
export function bornSince(mark: AllocationMark, a: TypedArray): boolean {
  const l = leases.get(a.buffer);
  return l !== undefined && !l.released && l.log === mark.log && l.serial > mark.serial;
}

/** True when `a` is pooled storage handed out by `mark`'s scope before `mark` and still leased. */
export function bornBefore(mark: AllocationMark, a: TypedArray): boolean {
  const l = leases.get(a.buffer);
  return l !== undefined && !l.released && l.log === mark.log && l.serial <= mark.serial;
}

/** Ends the lease on `a` (its tensors now throw on read) and returns it to the pool. */
export function releaseStorage(a: TypedArray): void {
  const l = leases.get(a.buffer);
  if (l) l.released = true;
  leases.delete(a.buffer);
  storagePool.put(a);
}

/** Keeps `a` as ordinary storage: it leaves the pool's bookkeeping for good. */
export function forgetStorage(a: TypedArray): void {
  leases.delete(a.buffer);
}

/**
 * Free buffers by (array type, length). A buffer not asked for during the last `keepScopes` scope
 * ends is dropped (to the GC), so shapes that stop occurring (a last short batch, a new sequence
 * length) do not pin memory: the pool holds at most about two steps' worth of intermediates.
 */
export class StoragePool {
  private free = new Map<string, TypedArray[]>();
  private lastUse = new Map<string, number>();
  private epoch = 0;
  /** Bytes held by free buffers. */
  bytes = 0;
  /** Buffers handed out again (reuses) and fresh allocations the pool could not serve. */
  hits = 0;
  misses = 0;
  /** Hits served by carving a view from a larger free buffer. */
  carved = 0;
  /**
   * Carving takes a free buffer at most this many times the request. 1.5 by default: a carved
   * activation that lives through backward wastes at most a third of its buffer (at 3x, DistilBERT's
   * training peak rose 10%; at 1.5x it fell 3%). `forwardChain`'s inference, where every buffer is
   * short-lived, raises it to 4 (ResNet's stem activations then serve the later stages).
   */
  carveRatio = 1.5;
  /** The whole buffer behind each carved view that is handed out. */
  private carvedFrom = new WeakMap<ArrayBufferLike, TypedArray>();

  constructor(readonly keepScopes = 2) {}

  take(dtype: DType, n: number): TypedArray | null {
    const key = keyOf(dtype, n);
    this.lastUse.set(key, this.epoch);
    const exact = this.free.get(key)?.pop();
    if (exact) this.bytes -= exact.byteLength;
    const a = exact ?? this.carve(dtype, n);
    if (!a) {
      this.misses++;
      return null;
    }
    this.hits++;
    a.fill(0);
    return a;
  }

  /**
   * No free buffer of the exact size: the front of the smallest free buffer at most `carveRatio`
   * times larger (any element type: a view over its bytes), which goes back whole when the view is
   * released. A big buffer idle for the rest of a step (the stem's activations while later, smaller
   * layers run) then serves the small requests instead of sitting beside fresh allocations.
   */
  private carve(dtype: DType, n: number): TypedArray | null {
    const Ctor = STORAGE[dtype];
    const need = n * Ctor.BYTES_PER_ELEMENT;
    if (need < CARVE_MIN_BYTES) return null;
    let best: { key: string; list: TypedArray[] } | null = null;
    for (const [key, list] of this.free) {
      const b = list[list.length - 1]?.byteLength ?? 0;
      if (b >= need && b <= need * this.carveRatio && (!best || b < best.list[best.list.length - 1].byteLength))
        best = { key, list };
    }
    if (!best) return null;
    const whole = best.list.pop() as TypedArray;
    this.lastUse.set(best.key, this.epoch);
    this.bytes -= whole.byteLength;
    this.carvedFrom.set(whole.buffer, whole);
    this.carved++;
    return new Ctor(whole.buffer, 0, n);
  }

  put(a: TypedArray): void {
    if (a.byteOffset !== 0 || a.byteLength !== a.buffer.byteLength) {
      // A carved view returns its whole buffer; any other part of a buffer is left to the GC.
      const whole = this.carvedFrom.get(a.buffer);
      if (!whole || a.byteOffset !== 0) return;
      this.carvedFrom.delete(a.buffer);
      a = whole;
    }
    const key = `${a.constructor.name}:${a.length}`;
    const list = this.free.get(key);
    if (list) list.push(a);
    else this.free.set(key, [a]);
    this.bytes += a.byteLength;
    if (!this.lastUse.has(key)) this.lastUse.set(key, this.epoch);
  }

  /** Called at each outermost scope end: drops buffers of sizes not asked for lately. */
  tick(): void {
    this.epoch++;
    for (const [key, at] of this.lastUse) {
      if (this.epoch - at <= this.keepScopes) continue;
      for (const a of this.free.get(key) ?? []) this.bytes -= a.byteLength;
      this.free.delete(key);
      this.lastUse.delete(key);
    }
  }

  /** Drops every free buffer. */
  clear(): void {
    this.free.clear();
    this.lastUse.clear();
    this.bytes = 0;
  }
}

/** Carving serves only requests of at least this many bytes (small buffers are cheap to allocate). */
const CARVE_MIN_BYTES = 1 << 18;

type StorageCtor = { new (b: ArrayBufferLike, off: number, n: number): TypedArray; readonly BYTES_PER_ELEMENT: number };

/** The typed array that holds each dtype (as `allocStorage` makes it). */
const STORAGE: Record<DType, StorageCtor> = {
  float32: Float32Array,
  float64: Float64Array,
  int32: Int32Array,
  bool: Uint8Array,
  bfloat16: Uint16Array,
  float16: Uint16Array,
};

function keyOf(dtype: DType, n: number): string {
  return `${STORAGE[dtype].name}:${n}`;
}

/** The process-wide pool that scopes fill and `allocate` draws from. */
export const storagePool = new StoragePool();
