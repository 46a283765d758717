// Finite-difference gradient checks in float64 for every primitive with a gradient, each on at
// least 5 shapes including size-1 dims, broadcasting and non-contiguous (permuted, sliced) inputs.
import { describe, test } from "node:test";
import { referenceBackend, setBackend } from "../../src/backend/index.ts";
import * as F from "../../src/ops/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { broadcastShapes } from "../../src/tensor/shape.ts";
import { tensor } from "../../src/tensor/tensor.ts";
import { type Tensor, randint, randn } from "../../src/tensor/tensor.ts";
import { gradcheck } from "./gradcheck.ts";

setBackend(referenceBackend);
const gen = new Generator(1234);

/** A float64 leaf of `shape`; layout "perm" makes it a permuted view, "slice" a strided slice. */
function leaf(shape: number[], layout: "contig" | "perm" | "slice" = "contig", positive = false): Tensor {
  let t: Tensor;
  if (layout === "perm" && shape.length >= 2) {
    const rev = [...shape].reverse();
    const base = randn(rev, { dtype: "float64", generator: gen });
    const dims = [...shape.keys()].reverse();
    t = base.view_(shape, dims.map((d) => base.strides[d]), 0);
  } else if (layout === "slice" && shape.length >= 1) {
    const big = [...shape];
    big[big.length - 1] = shape[shape.length - 1] * 2 + 1;
    const base = randn(big, { dtype: "float64", generator: gen });
    const st = [...base.strides];
    st[st.length - 1] *= 2;
    t = base.view_(shape, st, 1);
  } else {
    t = randn(shape, { dtype: "float64", generator: gen });
  }
  if (positive) for (let i = 0; i < t.data.length; i++) t.data[i] = 0.5 + Math.abs(t.data[i]);
  return t.requiresGrad_(true);
}

const UNARY_SHAPES: [number[], "contig" | "perm" | "slice"][] = [
  [[], "contig"],
  [[1], "contig"],
  [[3, 1, 4], "contig"],
  [[2, 5], "perm"],
  [[4, 3], "slice"],
  [[2, 1, 3], "perm"],
];

const unary: [string, (x: Tensor) => Tensor, boolean][] = [
  ["neg", F.neg, false], ["abs", F.abs, false], ["exp", F.exp, false], ["log", F.log, true], ["sqrt", F.sqrt, true],
  ["rsqrt", F.rsqrt, true], ["reciprocal", F.reciprocal, true], ["sin", F.sin, false], ["cos", F.cos, false],
  ["tanh", F.tanh, false], ["sigmoid", F.sigmoid, false], ["relu", F.relu, false], ["erf", F.erf, false],
];

describe("gradcheck: unary primitives", () => {
  for (const [name, f, pos] of unary) {
    test(name, () => {
      for (const [s, layout] of UNARY_SHAPES) gradcheck(`${name}${JSON.stringify(s)}/${layout}`, f, [leaf(s, layout, pos)]);
    });
  }
});

const BIN_SHAPES: [number[], number[], "contig" | "perm" | "slice"][] = [
  [[3, 4], [3, 4], "contig"],
  [[4, 1, 5], [3, 1], "contig"],
  [[1], [2, 3], "perm"],
  [[2, 3], [3], "slice"],
  [[], [2, 2], "contig"],
  [[2, 1, 3], [1, 4, 1], "perm"],
];
const binary: [string, (a: Tensor, b: Tensor) => Tensor, boolean][] = [
  ["add", F.add, false], ["sub", F.sub, false], ["mul", F.mul, false], ["div", F.div, true],
  ["pow", F.pow, true], ["maximum", F.maximum, false], ["minimum", F.minimum, false],
];

describe("gradcheck: binary primitives (broadcasting)", () => {
  for (const [name, f, pos] of binary) {
    test(name, () => {
      for (const [sa, sb, layout] of BIN_SHAPES) gradcheck(`${name}${JSON.stringify([sa, sb])}/${layout}`, f, [leaf(sa, layout, pos), leaf(sb, "contig", pos)]);
    });
  }
  test("where", () => {
    for (const [sa, sb, layout] of BIN_SHAPES) {
      const a = leaf(sa, layout);
      const b = leaf(sb);
      const c = F.gt(randn(broadcastShapes(a.shape, b.shape), { dtype: "float64", generator: gen }), 0);
      gradcheck(`where${JSON.stringify([sa, sb])}`, (x, y) => F.where(c, x, y), [a, b]);
    }
  });
});

describe("gradcheck: reductions", () => {
  const cases: [number[], number | number[] | undefined, "contig" | "perm" | "slice"][] = [
    [[5], 0, "contig"], [[3, 4], 1, "perm"], [[2, 3, 4], [0, 2], "contig"], [[1, 3, 1], undefined, "contig"], [[4, 3], 0, "slice"], [[2, 1, 3], 1, "perm"],
  ];
  for (const [name, f] of [["sum", F.sum], ["amax", F.amax], ["amin", F.amin]] as const) {
    test(name, () => {
      for (const [s, d, layout] of cases) gradcheck(`${name}${JSON.stringify(s)} dim ${d}`, (x) => f(x, d, true), [leaf(s, layout)]);
    });
  }
  test("cumsum", () => {
    for (const [s, d, layout] of cases) gradcheck(`cumsum${JSON.stringify(s)}`, (x) => F.cumsum(x, typeof d === "number" ? d : 0), [leaf(s, layout)]);
  });
});

describe("gradcheck: views, copies and joins", () => {
  test("reshape / view", () => {
    gradcheck("reshape contig", (x) => F.reshape(x, [6, 2]), [leaf([3, 4])]);
    gradcheck("reshape perm", (x) => F.reshape(x, [-1]), [leaf([3, 4], "perm")]);
    gradcheck("reshape slice", (x) => F.reshape(x, [2, 6]), [leaf([4, 3], "slice")]);
    gradcheck("reshape size-1", (x) => F.reshape(x, [1, 3, 1]), [leaf([3])]);
    gradcheck("reshape scalar", (x) => F.reshape(x, [1, 1]), [leaf([])]);
  });
  test("permute / transpose", () => {
    gradcheck("permute 3d", (x) => F.permute(x, [2, 0, 1]), [leaf([2, 3, 4])]);
    gradcheck("permute perm", (x) => F.permute(x, [1, 0]), [leaf([2, 5], "perm")]);
    gradcheck("transpose slice", (x) => F.transpose(x), [leaf([4, 3], "slice")]);
    gradcheck("permute size-1", (x) => F.permute(x, [1, 2, 0]), [leaf([1, 3, 1])]);
    gradcheck("permute identity", (x) => F.permute(x, [0]), [leaf([5])]);
  });
  test("expand", () => {
    gradcheck("expand lead", (x) => F.expand(x, [3, 4, 5]), [leaf([4, 1])]);
    gradcheck("expand scalar", (x) => F.expand(x, [2, 3]), [leaf([])]);
    gradcheck("expand perm", (x) => F.expand(x, [2, 3, 2]), [leaf([3, 2], "perm")]);
    gradcheck("expand slice", (x) => F.expand(x, [2, 4, 3]), [leaf([4, 3], "slice")]);
    gradcheck("expand ones", (x) => F.expand(x, [1, 3, 1]), [leaf([1, 3, 1])]);
  });
  test("slice (steps)", () => {
    gradcheck("slice step", (x) => F.slice(x, 1, 1, 4, 2), [leaf([2, 5])]);
    gradcheck("slice neg", (x) => F.slice(x, 0, -2), [leaf([4, 3], "perm")]);
    gradcheck("slice of slice", (x) => F.slice(x, 1, 0, 3, 3), [leaf([3, 4], "slice")]);
    gradcheck("slice size-1", (x) => F.slice(x, 0, 0, 1), [leaf([1, 3])]);
    gradcheck("select", (x) => F.select(x, 1, -1), [leaf([2, 3, 2])]);
  });
  test("copy (contiguous, cast)", () => {
    gradcheck("contiguous perm", (x) => F.contiguous(x), [leaf([3, 4], "perm")]);
    gradcheck("contiguous slice", (x) => F.contiguous(x), [leaf([4, 3], "slice")]);
    gradcheck("clone", (x) => F.clone(x), [leaf([2, 1, 3])]);
    gradcheck("clone scalar", (x) => F.clone(x), [leaf([])]);
    gradcheck("cast f64->f64", (x) => F.mul(F.cast(x, "float64"), 2), [leaf([3])]);
  });
  test("cat / stack / pad", () => {
    gradcheck("cat dim1", (a, b) => F.cat([a, b], 1), [leaf([2, 3]), leaf([2, 1])]);
    gradcheck("cat perm", (a, b) => F.cat([a, b], 0), [leaf([2, 3], "perm"), leaf([1, 3])]);
    gradcheck("stack", (a, b) => F.stack([a, b], 2), [leaf([2, 3]), leaf([2, 3], "slice")]);
    gradcheck("pad 2d", (x) => F.pad(x, [1, 2, 0, 1]), [leaf([3, 4])]);
    gradcheck("pad value perm", (x) => F.pad(x, [2, 0], 1.5), [leaf([2, 3], "perm")]);
  });
});

describe("gradcheck: matmul and indexing", () => {
  test("matmul", () => {
    gradcheck("mm", F.matmul, [leaf([3, 4]), leaf([4, 2])]);
    gradcheck("mm transposed operands", F.matmul, [leaf([3, 4], "perm"), leaf([4, 2], "perm")]);
    gradcheck("batched broadcast", F.matmul, [leaf([2, 1, 3, 4]), leaf([3, 4, 2])]);
    gradcheck("matvec", F.matmul, [leaf([3, 4]), leaf([4])]);
    gradcheck("vecmat size-1", F.matmul, [leaf([1]), leaf([1, 5], "slice")]);
    gradcheck("linear", (x, w, b) => F.linear(x, w, b), [leaf([2, 3, 4]), leaf([5, 4]), leaf([5])]);
  });
  test("gather / scatterAdd / indexSelect / embedding", () => {
    const idx = randint(0, 4, [3, 2], { generator: gen });
    gradcheck("gather", (x) => F.gather(x, 1, idx), [leaf([3, 4])]);
    gradcheck("gather perm", (x) => F.gather(x, 1, idx), [leaf([3, 4], "perm")]);
    gradcheck("scatterAdd", (x, s) => F.scatterAdd(x, 1, idx, s), [leaf([3, 4]), leaf([3, 2])]);
    const sel = randint(0, 5, [7], { generator: gen });
    gradcheck("indexSelect dup", (x) => F.indexSelect(x, 0, sel), [leaf([5, 3])]);
    const sel1 = randint(0, 2, [3], { generator: gen });
    gradcheck("indexSelect dim1 slice", (x) => F.indexSelect(x, 1, sel1), [leaf([2, 2], "slice")]);
    const ids = randint(0, 6, [2, 3], { generator: gen });
    gradcheck("embedding", (w) => F.embedding(w, ids), [leaf([6, 4])]);
  });
});

describe("gradcheck: conv2d and pooling", () => {
  const convCases: [number[], number[], F.Conv2dOptions][] = [
    [[1, 2, 5, 5], [3, 2, 3, 3], { padding: 1 }],
    [[2, 3, 6, 7], [4, 3, 3, 3], { stride: 2 }],
    [[1, 4, 5, 5], [4, 1, 3, 3], { padding: 1, groups: 4 }],
    [[1, 4, 6, 6], [2, 2, 3, 3], { dilation: 2, padding: 2, groups: 2 }],
    [[2, 3, 4, 4], [5, 3, 1, 1], {}],
    [[1, 1, 7, 5], [1, 1, 2, 3], { stride: [2, 1], padding: [1, 0] }],
  ];
  test("conv2d", () => {
    for (const [xs, ws, o] of convCases) gradcheck(`conv2d ${JSON.stringify([xs, ws, o])}`, (x, w, b) => F.conv2d(x, w, b, o), [leaf(xs), leaf(ws), leaf([ws[0]])]);
  });
  test("conv2d non-contiguous input", () => {
    gradcheck("conv2d perm", (x, w) => F.conv2d(x, w, null, { padding: 1 }), [leaf([1, 2, 4, 4], "perm"), leaf([2, 2, 3, 3])]);
  });
  const poolShapes = [[1, 1, 4, 4], [2, 3, 5, 5], [1, 2, 6, 7], [1, 1, 3, 3], [2, 1, 8, 6]];
  test("maxPool2d", () => {
    for (const s of poolShapes) gradcheck(`maxPool2d ${s}`, (x) => F.maxPool2d(x, 3, 2, 1), [leaf(s)]);
    gradcheck("maxPool2d perm", (x) => F.maxPool2d(x, 2), [leaf([1, 2, 4, 4], "perm")]);
  });
  test("avgPool2d", () => {
    for (const s of poolShapes) gradcheck(`avgPool2d ${s}`, (x) => F.avgPool2d(x, 2, 1, 1), [leaf(s)]);
    gradcheck("avgPool2d no pad count", (x) => F.avgPool2d(x, 3, 2, 1, false, false), [leaf([1, 2, 5, 5])]);
  });
  test("adaptiveAvgPool2d", () => {
    for (const s of poolShapes) gradcheck(`adaptive ${s}`, (x) => F.adaptiveAvgPool2d(x, [2, 3]), [leaf(s)]);
    gradcheck("adaptive 1 slice", (x) => F.adaptiveAvgPool2d(x, 1), [leaf([1, 2, 3, 3], "slice")]);
  });
});

describe("gradcheck: composites", () => {
  test("softmax / logSoftmax / logsumexp / var", () => {
    gradcheck("softmax", (x) => F.softmax(x, 1), [leaf([3, 4, 2])]);
    gradcheck("logSoftmax perm", (x) => F.logSoftmax(x, -1), [leaf([3, 5], "perm")]);
    gradcheck("logsumexp", (x) => F.logsumexp(x, [0, 1]), [leaf([2, 3])]);
    gradcheck("variance", (x) => F.variance(x, 0, false, 1), [leaf([4, 3], "slice")]);
  });
  test("norms", () => {
    gradcheck("layerNorm", (x, w, b) => F.layerNorm(x, [4], w, b), [leaf([3, 4]), leaf([4]), leaf([4])]);
    gradcheck("rmsNorm", (x, w) => F.rmsNorm(x, w), [leaf([2, 3, 4], "perm"), leaf([4])]);
    gradcheck("batchNorm train", (x, w, b) => F.batchNorm(x, null, null, w, b, { training: true }), [leaf([3, 2, 2, 2]), leaf([2]), leaf([2])]);
    gradcheck("groupNorm", (x, w, b) => F.groupNorm(x, 2, w, b), [leaf([2, 4, 3]), leaf([4]), leaf([4])]);
  });
  test("losses and attention", () => {
    const t = randint(0, 5, [4], { generator: gen });
    gradcheck("crossEntropy smooth", (x) => F.crossEntropy(x, t, { labelSmoothing: 0.2 }), [leaf([4, 5])]);
    gradcheck("bceWithLogits", (x, y) => F.bceWithLogits(x, y), [leaf([3, 2]), leaf([3, 2])]);
    // key 0 always visible so no row is fully masked
    const mask = tensor(Uint8Array.from([1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 0, 1]), { shape: [1, 1, 3, 5], dtype: "bool" });
    gradcheck("sdpa gqa causal mask", (q, k, v) => F.scaledDotProductAttention(q, k, v, { causal: true, mask }), [leaf([1, 4, 3, 2]), leaf([1, 2, 5, 2]), leaf([1, 2, 5, 2])]);
  });
});
