/**
 * The freeze audit: freezing is a verified contract. Before the first optimiser step of a phase the
 * trainer fingerprints (SHA-256 of the bytes) every frozen parameter and every buffer of a frozen
 * module (BatchNorm running statistics); after the step it checks they are bitwise unchanged and
 * throws a {@link FreezeViolationError} naming the first one that moved.
 *
 * @example
 * ```ts
 * const snap = snapshotFrozen(model);
 * optimizer.step();
 * snap.verify(model);                         // throws FreezeViolationError("bert.embeddings...")
 * console.log(trainableSummary(model).line);  // trainable params: 1,538 || all params: ... || trainable%: ...
 * ```
 */
import { createHash } from "node:crypto";
import type { Module } from "../nn/module.ts";
import type { FreezeAudit } from "../report/types.ts";
import { TunekitError } from "../tensor/errors.ts";
import type { Tensor } from "../tensor/tensor.ts";

/** A frozen parameter or frozen-module buffer changed during a step. */
export class FreezeViolationError extends TunekitError {
  constructor(
    /** Dotted name of the tensor that changed. */
    readonly tensorName: string,
    readonly kind: "parameter" | "buffer",
  ) {
    super(
      `freeze audit: frozen ${kind} '${tensorName}' changed during the optimiser step (frozen tensors must stay bitwise unchanged)`,
    );
  }
}

/** SHA-256 of a tensor's elements in row-major order (its storage bytes when contiguous). */
export function tensorDigest(t: Tensor): string {
  const h = createHash("sha256");
  if (t.isContiguous()) {
    const a = t.data;
    h.update(new Uint8Array(a.buffer, a.byteOffset + t.offset * a.BYTES_PER_ELEMENT, t.size * a.BYTES_PER_ELEMENT));
  } else h.update(new Uint8Array(t.toFloat64Array().buffer));
  return h.digest("hex");
}

/** Buffers of modules that have parameters, all frozen (a frozen BatchNorm's running statistics). */
function frozenBuffers(model: Module): [string, Tensor][] {
  const out: [string, Tensor][] = [];
  for (const [path, m] of model.namedModules()) {
    const own = m.ownParameters();
    if (!own.length || own.some(([, p]) => p.requiresGrad)) continue;
    for (const [k, b] of m.ownBuffers()) out.push([path ? `${path}.${k}` : k, b.value]);
  }
  return out;
}

/** Fingerprints of the frozen tensors at one moment; `verify` compares against the model now. */
export class FrozenSnapshot {
  constructor(
    readonly params: Map<string, string>,
    readonly buffers: Map<string, string>,
  ) {}

  /** Number of tensors covered. */
  get size(): number {
    return this.params.size + this.buffers.size;
  }

  /** Throws {@link FreezeViolationError} naming the first frozen tensor that changed. */
  verify(model: Module): void {
    const params = new Map(model.namedParameters());
    for (const [n, d] of this.params) {
      const p = params.get(n);
      if (!p || tensorDigest(p) !== d) throw new FreezeViolationError(n, "parameter");
    }
    const bufs = new Map(model.namedBuffers().map(([n, b]) => [n, b.value]));
    for (const [n, d] of this.buffers) {
      const b = bufs.get(n);
      if (!b || tensorDigest(b) !== d) throw new FreezeViolationError(n, "buffer");
    }
  }
}

/** Fingerprints every frozen parameter and frozen-module buffer of `model`. */
export function snapshotFrozen(model: Module): FrozenSnapshot {
  const params = new Map<string, string>();
  for (const [n, p] of model.namedParameters()) if (!p.requiresGrad) params.set(n, tensorDigest(p));
  const buffers = new Map<string, string>();
  for (const [n, b] of frozenBuffers(model)) buffers.set(n, tensorDigest(b));
  return new FrozenSnapshot(params, buffers);
}

/** Trainable vs total parameters, overall and per top-level module (two levels for a backbone prefix). */
export interface TrainableSummary {
  trainable: number;
  total: number;
  /** PEFT's `print_trainable_parameters` line. */
  line: string;
  byModule: { name: string; trainable: number; frozen: number }[];
}

/**
 * Counts trainable and total parameter elements like PEFT's `print_trainable_parameters`, and per
 * module: top-level children, and the children of a single backbone child (`bert.embeddings`,
 * `bert.encoder`) so the report shows where training happens.
 */
export function trainableSummary(model: Module): TrainableSummary {
  let trainable = 0;
  let total = 0;
  const named = model.namedParameters();
  const tops = new Set(named.map(([n]) => n.split(".")[0]));
  const key = (n: string) => {
    const parts = n.split(".");
    // One big backbone child: split it one level further (but keep numbered blocks together).
    if (tops.size <= 3 && parts.length > 2) return parts.slice(0, 2).join(".");
    return parts.length > 1 ? parts[0] : n;
  };
  const by = new Map<string, { name: string; trainable: number; frozen: number }>();
  for (const [n, p] of named) {
    total += p.size;
    if (p.requiresGrad) trainable += p.size;
    const k = key(n);
    let e = by.get(k);
    if (!e) {
      e = { name: k, trainable: 0, frozen: 0 };
      by.set(k, e);
    }
    if (p.requiresGrad) e.trainable += p.size;
    else e.frozen += p.size;
  }
  const fmt = (x: number) => x.toLocaleString("en-US");
  const pct = total ? ((100 * trainable) / total).toFixed(4) : "0.0000";
  return {
    trainable,
    total,
    line: `trainable params: ${fmt(trainable)} || all params: ${fmt(total)} || trainable%: ${pct}`,
    byModule: [...by.values()],
  };
}

/** The report's freeze-audit section from a summary and the verification outcome. */
export function freezeAuditRecord(s: TrainableSummary, verified: boolean, note?: string): FreezeAudit {
  const out: FreezeAudit = { trainable: s.trainable, total: s.total, byModule: s.byModule, verified };
  if (note) out.note = note;
  return out;
}
