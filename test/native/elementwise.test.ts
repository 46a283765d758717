// Native elementwise, copy, where, reductions, argmax and cumsum against the reference, on
// contiguous, permuted, sliced and broadcast (stride-0) views.
import { describe, test } from "node:test";
import type { BinaryOp, UnaryOp } from "../../src/backend/backend.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { assertClose, expandTo, nat, permutedView, randT, ref, rnd, skip, slicedView, zerosT } from "./helpers.ts";

const UNARY: UnaryOp[] = ["neg", "abs", "exp", "log", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tanh", "sigmoid", "relu", "sign", "erf", "floor", "logicalNot"];
const BINARY: BinaryOp[] = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge"];
const CMP = new Set<BinaryOp>(["eq", "ne", "lt", "le", "gt", "ge"]);

/** A few layouts of the same logical shape. */
function layouts(shape: number[]): [string, Tensor][] {
  const perm = shape.map((_, i) => shape.length - 1 - i);
  return [
    ["contiguous", randT(shape, 0.1, 3)],
    ["permuted", (() => {
      const t = permutedView(shape, perm);
      for (let i = 0; i < t.data.length; i++) t.data[i] = 0.1 + 2.9 * rnd();
      return t;
    })()],
    ["sliced", (() => {
      const t = slicedView(shape);
      for (let i = 0; i < t.data.length; i++) t.data[i] = 0.1 + 2.9 * rnd();
      return t;
    })()],
  ];
}

const SHAPES = [[1], [7], [33, 257], [2, 7, 33], [1023, 3], [4, 1, 5, 7]];

describe("native elementwise", { skip }, () => {
  test("unary ops on every layout", () => {
    for (const shape of SHAPES)
      for (const [lay, x] of layouts(shape))
        for (const op of UNARY) {
          const neg = op === "neg" || op === "abs" || op === "sign" || op === "relu" || op === "floor" || op === "erf" || op === "tanh";
          const xin = neg ? x : x;
          if (neg) for (let i = 0; i < 5 && i < x.data.length; i++) x.data[i] = -x.data[i];
          const [o1, o2] = [zerosT(shape), zerosT(shape)];
          nat().unary(op, xin, o1);
          ref.unary(op, xin, o2);
          assertClose(o1, o2, 1e-5, `${op} ${lay} ${shape}`);
        }
  });
  test("binary ops with broadcasting", () => {
    for (const op of BINARY)
      for (const [as, bs, os] of [[[33, 257], [33, 257], [33, 257]], [[7, 1], [1, 33], [7, 33]], [[2, 7, 33], [33], [2, 7, 33]], [[1], [1023], [1023]], [[4, 1, 5, 7], [1, 3, 1, 7], [4, 3, 5, 7]]]) {
        const a = expandTo(randT(as, 0.5, 2), os);
        const b = expandTo(randT(bs, 0.5, 2), os);
        if (a.data.length > 2) a.data[1] = b.data[0]; // exercise equality
        const dt = CMP.has(op) ? "bool" : "float32";
        const [o1, o2] = [zerosT(os, dt), zerosT(os, dt)];
        nat().binary(op, a, b, o1);
        ref.binary(op, a, b, o2);
        assertClose(o1, o2, 1e-5, `${op} ${as} ${bs}`);
      }
    const a = permutedView([33, 7, 5], [2, 0, 1]);
    const b = slicedView([33, 7, 5]);
    const [o1, o2] = [zerosT([33, 7, 5]), zerosT([33, 7, 5])];
    nat().binary("mul", a, b, o1);
    ref.binary("mul", a, b, o2);
    assertClose(o1, o2, 1e-6, "mul strided");
    const nan = randT([4]);
    nan.data[1] = Number.NaN;
    nat().binary("maximum", nan, randT([4]), o1.view_([4], [1], 0));
    ref.binary("maximum", nan, randT([4]), o2.view_([4], [1], 0));
  });
  test("where and copy into strided views", () => {
    const os = [7, 33, 5];
    const cond = zerosT([7, 1, 5], "bool");
    for (let i = 0; i < cond.data.length; i++) cond.data[i] = rnd() < 0.5 ? 1 : 0;
    const a = permutedView(os, [2, 1, 0]);
    const b = expandTo(randT([33, 1]), os);
    const [o1, o2] = [zerosT(os), zerosT(os)];
    nat().where(expandTo(cond, os), a, b, o1);
    ref.where(expandTo(cond, os), a, b, o2);
    assertClose(o1, o2, 0, "where");
    // copy into a transposed view of a bigger buffer
    const big1 = zerosT([40, 9]);
    const big2 = zerosT([40, 9]);
    const x = slicedView([7, 33]);
    nat().copy(x, big1.view_([7, 33], [1, 9], 2));
    ref.copy(x, big2.view_([7, 33], [1, 9], 2));
    assertClose(big1, big2, 0, "copy into view");
    const bc = expandTo(randT([1, 257]), [33, 257]);
    const [c1, c2] = [zerosT([33, 257]), zerosT([33, 257])];
    nat().copy(bc, c1);
    ref.copy(bc, c2);
    assertClose(c1, c2, 0, "copy broadcast");
  });
});

describe("native reductions", { skip }, () => {
  test("sum / max / min over dim sets", () => {
    const cases: [number[], number[]][] = [
      [[33, 257], [1]], [[33, 257], [0]], [[33, 257], [0, 1]], [[2, 7, 33], [0, 2]], [[2, 7, 33], [1]], [[1023, 3], [0]], [[4, 1, 5, 7], [1, 3]], [[7], [0]],
    ];
    for (const [shape, dims] of cases)
      for (const [lay, x] of layouts(shape))
        for (const op of ["sum", "max", "min"] as const) {
          const os = shape.map((s, d) => (dims.includes(d) ? 1 : s));
          const [o1, o2] = [zerosT(os), zerosT(os)];
          nat().reduce(op, x, dims, o1);
          ref.reduce(op, x, dims, o2);
          assertClose(o1, o2, 1e-5, `${op} ${lay} ${shape} ${dims}`);
        }
  });
  test("argmax (first on ties, NaN wins) and cumsum", () => {
    for (const shape of [[33, 257], [2, 7, 33], [1023, 3], [7]])
      for (const [lay, x] of layouts(shape))
        for (let dim = 0; dim < shape.length; dim++) {
          x.data[3] = x.data[5];
          const os = shape.map((s, d) => (d === dim ? 1 : s));
          const [o1, o2] = [zerosT(os, "int32"), zerosT(os, "int32")];
          nat().argmax(x, dim, o1);
          ref.argmax(x, dim, o2);
          assertClose(o1, o2, 0, `argmax ${lay} ${shape} ${dim}`);
          const [c1, c2] = [zerosT(shape), zerosT(shape)];
          nat().cumsum(x, dim, c1);
          ref.cumsum(x, dim, c2);
          assertClose(c1, c2, 1e-5, `cumsum ${lay} ${shape} ${dim}`);
        }
    const x = randT([3, 4]);
    x.data[5] = Number.NaN;
    const [o1, o2] = [zerosT([3, 1], "int32"), zerosT([3, 1], "int32")];
    nat().argmax(x, 1, o1);
    ref.argmax(x, 1, o2);
    assertClose(o1, o2, 0, "argmax NaN");
  });
});
