/**
 * Typed errors. Each names the op (or file/key) and the shapes or values involved, so that a user
 * can tell what went wrong without a debugger.
 */
export class TunekitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Incompatible shapes for an op, e.g. `matmul: inner dimensions differ: [2,3] @ [4,5]`. */
export class ShapeError extends TunekitError {}

/** An input has a dtype the op does not accept, e.g. float indices for `embedding`. */
export class DTypeError extends TunekitError {}

/** An index (dimension or element) is out of range. */
export class IndexError extends TunekitError {}

/** Misuse of autograd, e.g. `backward()` on a non-scalar without an upstream gradient. */
export class AutogradError extends TunekitError {}

/** Invalid argument value (negative size, unknown option, ...). */
export class ValueError extends TunekitError {}

/** A tensor whose storage a step scope released was read (see `stepScope`). */
export class ReleasedTensorError extends TunekitError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(",")}]`;
}
