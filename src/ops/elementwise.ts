/**
 * Elementwise primitives with broadcasting: unary math, binary arithmetic, comparisons, where.
 * Scalars (JS numbers) are accepted wherever a tensor is and take the tensor operand's dtype.
 */
import type { BinaryOp, UnaryOp } from "../backend/backend.ts";
import { type DType, isFloat, promote } from "../tensor/dtype.ts";
import { DTypeError } from "../tensor/errors.ts";
import { broadcastShapes } from "../tensor/shape.ts";
import { full, type Tensor } from "../tensor/tensor.ts";
import { canFuse, clampBackward, fusedClamp } from "./fused.ts";
import { sumTo } from "./reduce.ts";
import { defineOp } from "./table.ts";
import { expandView } from "./view.ts";

export type TensorLike = Tensor | number;

const NO_GRAD_INT = (t: Tensor) => !isFloat(t.dtype);

// ---- unary ------------------------------------------------------------------------------------

type UnaryVjp = (g: Tensor, x: Tensor, y: Tensor) => Tensor;

function defineUnary(op: UnaryOp, vjp?: UnaryVjp, keepInt = false) {
  const apply = defineOp<undefined>({
    name: op,
    infer: ([x]) => {
      let dtype: DType = x.dtype;
      if (op === "logicalNot") dtype = "bool";
      else if (!isFloat(x.dtype) && !keepInt) dtype = "float32";
      else if (x.dtype === "bool") dtype = "int32";
      return { shape: [...x.shape], dtype };
    },
    forward: (be, out, [x]) => be.unary(op, x, out),
    vjp: vjp ? (g, [x], y) => [NO_GRAD_INT(x) ? null : vjp(g, x, y)] : undefined,
  });
  return (x: Tensor) => apply([x], undefined);
}

export const neg = defineUnary("neg", (g) => neg(g), true);
export const abs = defineUnary("abs", (g, x) => mul(g, sign(x)), true);
export const exp = defineUnary("exp", (g, _x, y) => mul(g, y));
export const log = defineUnary("log", (g, x) => div(g, x));
export const sqrt = defineUnary("sqrt", (g, _x, y) => div(g, mul(y, 2)));
export const rsqrt = defineUnary("rsqrt", (g, _x, y) => mul(g, mul(pow(y, 3), -0.5)));
export const reciprocal = defineUnary("reciprocal", (g, _x, y) => neg(mul(g, mul(y, y))));
export const sin = defineUnary("sin", (g, x) => mul(g, cos(x)));
export const cos = defineUnary("cos", (g, x) => neg(mul(g, sin(x))));
export const tanh = defineUnary("tanh", (g, _x, y) => mul(g, sub(1, mul(y, y))));
export const sigmoid = defineUnary("sigmoid", (g, _x, y) => mul(g, mul(y, sub(1, y))));
// The gradient passes where x > 0; through the clamp kernel (x read once, no bool mask kept).
export const relu = defineUnary(
  "relu",
  (g, x) =>
    canFuse("clampBackward", x, g) ? clampBackward(x, g, 0, Number.POSITIVE_INFINITY, false) : where(gt(x, 0), g, 0),
  true,
);
export const sign = defineUnary("sign", undefined, true);
export const erf = defineUnary("erf", (g, x) => mul(g, mul(exp(neg(mul(x, x))), 2 / Math.sqrt(Math.PI))));
export const floor = defineUnary("floor", undefined, true);
export const logicalNot = defineUnary("logicalNot");

// ---- binary -----------------------------------------------------------------------------------

function binaryDtype(op: BinaryOp, a: DType, b: DType): DType {
  if (op === "eq" || op === "ne" || op === "lt" || op === "le" || op === "gt" || op === "ge") return "bool";
  const t = promote(a, b);
  if (t === "bool") return op === "div" || op === "pow" ? "float32" : "int32";
  if (t === "int32" && op === "div") return "float32";
  return t;
}

type BinaryVjp = (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor | null, Tensor | null];

function defineBinary(op: BinaryOp, vjp?: BinaryVjp) {
  const apply = defineOp<undefined>({
    name: op,
    infer: ([a, b]) => ({ shape: broadcastShapes(a.shape, b.shape, op), dtype: binaryDtype(op, a.dtype, b.dtype) }),
    forward: (be, out, [a, b]) => be.binary(op, expandView(a, out.shape), expandView(b, out.shape), out),
    vjp: vjp
      ? (g, [a, b], y) => {
          const [ga, gb] = vjp(g, a, b, y);
          return [
            ga && isFloat(a.dtype) ? sumTo(ga, a.shape) : null,
            gb && isFloat(b.dtype) ? sumTo(gb, b.shape) : null,
          ];
        }
      : undefined,
  });
  return (a: TensorLike, b: TensorLike) => {
    const [ta, tb] = lift(a, b, op);
    return apply([ta, tb], undefined);
  };
}

/** Turns JS numbers into 0-d tensors of the other operand's dtype (float32 if both numbers). */
export function lift(a: TensorLike, b: TensorLike, op: string): [Tensor, Tensor] {
  if (typeof a === "number" && typeof b === "number") return [full([], a), full([], b)];
  if (typeof a === "number") return [full([], a, { dtype: scalarDtype(a, (b as Tensor).dtype) }), b as Tensor];
  if (typeof b === "number") return [a, full([], b, { dtype: scalarDtype(b, a.dtype) })];
  if (a.dtype !== b.dtype && !(isFloat(a.dtype) || isFloat(b.dtype)) && a.dtype !== "bool" && b.dtype !== "bool") {
    throw new DTypeError(`${op}: cannot combine ${a.dtype} and ${b.dtype}`);
  }
  return [a, b];
}

function scalarDtype(v: number, other: DType): DType {
  if (isFloat(other)) return other;
  if (other === "bfloat16" || other === "float16") return "float32";
  return Number.isInteger(v) ? (other === "bool" ? "int32" : other) : "float32";
}

export const add = defineBinary("add", (g) => [g, g]);
export const sub = defineBinary("sub", (g) => [g, neg(g)]);
export const mul = defineBinary("mul", (g, a, b) => [mul(g, b), mul(g, a)]);
export const div = defineBinary("div", (g, a, b) => [div(g, b), neg(div(mul(g, a), mul(b, b)))]);
export const pow = defineBinary("pow", (g, a, b, y) => [
  mul(g, mul(b, pow(a, sub(b, 1)))),
  isFloat(b.dtype) && b.requiresGrad ? mul(g, mul(y, log(a))) : null,
]);
// Ties send the gradient half to each side, as PyTorch does for maximum/minimum.
export const maximum = defineBinary("maximum", (g, a, b) => {
  const w = add(mul(gt(a, b), 1), mul(eq(a, b), 0.5));
  return [mul(g, w), mul(g, sub(1, w))];
});
export const minimum = defineBinary("minimum", (g, a, b) => {
  const w = add(mul(lt(a, b), 1), mul(eq(a, b), 0.5));
  return [mul(g, w), mul(g, sub(1, w))];
});
export const eq = defineBinary("eq");
export const ne = defineBinary("ne");
export const lt = defineBinary("lt");
export const le = defineBinary("le");
export const gt = defineBinary("gt");
export const ge = defineBinary("ge");

// ---- where ------------------------------------------------------------------------------------

const whereOp = defineOp<undefined>({
  name: "where",
  infer: ([c, a, b]) => {
    if (c.dtype !== "bool") throw new DTypeError(`where: condition must be bool, got ${c.dtype}`);
    return {
      shape: broadcastShapes(c.shape, broadcastShapes(a.shape, b.shape, "where"), "where"),
      dtype: promote(a.dtype, b.dtype),
    };
  },
  forward: (be, out, [c, a, b]) =>
    be.where(expandView(c, out.shape), expandView(a, out.shape), expandView(b, out.shape), out),
  vjp: (g, [c, a, b]) => [
    null,
    isFloat(a.dtype) ? sumTo(where(c, g, 0), a.shape) : null,
    isFloat(b.dtype) ? sumTo(where(c, 0, g), b.shape) : null,
  ],
});

/**
 * `cond ? a : b` elementwise with broadcasting.
 * @example where(gt(x, 0), x, 0) // relu
 */
export function where(cond: Tensor, a: TensorLike, b: TensorLike): Tensor {
  const [ta, tb] = lift(a, b, "where");
  return whereOp([cond, ta, tb], undefined);
}

/**
 * Clamps into [min, max] (either bound may be omitted). Gradient passes on lo <= x <= hi
 * (`torch.clamp`). Float32 on a backend with the fused kernel: one pass, x is all the backward keeps.
 */
export function clamp(x: Tensor, lo?: number, hi?: number): Tensor {
  if (canFuse("clamp", x)) return fusedClamp(x, lo ?? Number.NEGATIVE_INFINITY, hi ?? Number.POSITIVE_INFINITY, true);
  let y = x;
  if (lo !== undefined) y = where(lt(x, lo), lo, y);
  if (hi !== undefined) y = where(gt(x, hi), hi, y);
  return y;
}

/** Square, `x * x`. */
export function square(x: Tensor): Tensor {
  return mul(x, x);
}
