/**
 * The op table. Each primitive is one `defineOp` entry holding its name, its shape and dtype rule
 * (`infer`, which also validates and throws typed errors naming the op and shapes), its forward
 * (dispatch to the active backend) and its VJP. Composites are plain functions of primitives.
 */
import { record } from "../autograd/tape.ts";
import { type Backend, backend } from "../backend/index.ts";
import { type DType, isHalf } from "../tensor/dtype.ts";
import { type Tensor, empty } from "../tensor/tensor.ts";

export interface OpSpec<A> {
  name: string;
  /** Shape + dtype rule: validates the inputs, returns the output's shape and dtype. */
  infer(inputs: Tensor[], attrs: A): { shape: number[]; dtype: DType };
  /** Fills the freshly allocated contiguous `out`; may return values the VJP needs. */
  forward(be: Backend, out: Tensor, inputs: Tensor[], attrs: A): unknown;
  /** d(loss)/d(inputs) from d(loss)/d(out); null for inputs that take no gradient. */
  vjp?(g: Tensor, inputs: Tensor[], out: Tensor, attrs: A, saved: unknown): (Tensor | null)[];
  /** Accepts bf16/f16 inputs as they are (else they are widened to float32 first). */
  acceptsHalf?: boolean;
}

/** All registered primitives by name (for docs, tests and introspection). */
export const OPS = new Map<string, OpSpec<never>>();

/** Registers a primitive and returns its apply function. */
export function defineOp<A = undefined>(spec: OpSpec<A>): (inputs: Tensor[], attrs: A) => Tensor {
  OPS.set(spec.name, spec as OpSpec<never>);
  return (inputs, attrs) => {
    const ins = spec.acceptsHalf ? inputs : inputs.map(widen);
    const { shape, dtype } = spec.infer(ins, attrs);
    const out = empty(shape, dtype);
    const saved = spec.forward(backend(), out, ins, attrs);
    const vjp = spec.vjp;
    if (vjp) record(out, spec.name, inputs, (g) => vjp(g, ins, out, attrs, saved));
    return out;
  };
}

/** bf16/f16 storage -> float32 (no autograd: half tensors are frozen storage). */
export function widen(t: Tensor): Tensor {
  if (!isHalf(t.dtype)) return t;
  const out = empty(t.shape, "float32");
  backend().copy(t, out);
  return out;
}
