// Native conv2d (forward, backward-input, backward-weight) and pooling against the reference:
// the im2col, pointwise (1x1) and depthwise paths, groups, stride, padding, dilation, odd sizes.
import { describe, test } from "node:test";
import type { Conv2dParams, Pool2dParams } from "../../src/backend/backend.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";
import { absT, assertClose, assertCloseScaled, nat, permutedView, randT, ref, skip, zerosT } from "./helpers.ts";

const outSize = (h: number, k: number, s: number, p: number, d: number) =>
  Math.floor((h + 2 * p - d * (k - 1) - 1) / s) + 1;

interface Case {
  N: number;
  C: number;
  H: number;
  W: number;
  O: number;
  k: [number, number];
  p: Conv2dParams;
  /** elementwise tolerance of fwd / bwd-input (long reductions round further from the reference) */
  tol?: number;
}
const P = (s: number, pad: number, d = 1, groups = 1): Conv2dParams => ({
  stride: [s, s],
  padding: [pad, pad],
  dilation: [d, d],
  groups,
});
const cases: Case[] = [
  { N: 2, C: 3, H: 9, W: 7, O: 5, k: [3, 3], p: P(1, 1) },
  { N: 1, C: 7, H: 33, W: 17, O: 8, k: [3, 3], p: P(2, 1) },
  { N: 3, C: 4, H: 8, W: 8, O: 6, k: [1, 1], p: P(1, 0) }, // pointwise, small plane (im2col path)
  { N: 2, C: 5, H: 17, W: 16, O: 7, k: [1, 1], p: P(1, 0) }, // pointwise direct GEMM (P >= 256)
  { N: 2, C: 6, H: 11, W: 13, O: 6, k: [3, 3], p: P(1, 1, 1, 6) }, // depthwise
  { N: 1, C: 4, H: 12, W: 9, O: 8, k: [5, 3], p: { stride: [2, 1], padding: [2, 1], dilation: [1, 2], groups: 4 } }, // depthwise x2
  { N: 2, C: 8, H: 10, W: 10, O: 4, k: [3, 3], p: P(1, 2, 2, 2) }, // grouped + dilated
  { N: 1, C: 3, H: 23, W: 23, O: 16, k: [7, 7], p: P(2, 3) }, // resnet stem
  { N: 9, C: 16, H: 3, W: 3, O: 33, k: [3, 3], p: P(1, 1) }, // many images side by side
  { N: 1, C: 1, H: 1, W: 1, O: 1, k: [1, 1], p: P(1, 0) },
  // implicit GEMM: long stride-2 rows (vector even-lane copies), 1x1 stride 2, dilated long rows
  { N: 2, C: 5, H: 9, W: 71, O: 6, k: [3, 3], p: P(2, 1) },
  { N: 3, C: 6, H: 7, W: 67, O: 5, k: [1, 1], p: P(2, 0) },
  { N: 2, C: 3, H: 8, W: 45, O: 4, k: [3, 3], p: P(1, 2, 2) },
  // planes >= 512 outputs (per-image column spans, output written in place), N below the threads
  { N: 2, C: 3, H: 24, W: 37, O: 7, k: [3, 3], p: P(1, 1) },
  { N: 1, C: 4, H: 33, W: 19, O: 9, k: [3, 3], p: P(1, 1) },
  // big weight (O * C*KH*KW >= 2^18): backward-weight split over the weight's columns
  { N: 3, C: 460, H: 5, W: 4, O: 70, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  // packed weights over 384 KB: few columns (shared packed im2col, threads split the output
  // channels); more columns: panels in groups of four, across image boundaries (emitters)
  { N: 3, C: 120, H: 9, W: 10, O: 100, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  { N: 4, C: 120, H: 12, W: 11, O: 100, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  // the narrow path's ragged last panel (<= 16 columns with an odd k slice; 17-32 columns)
  { N: 1, C: 119, H: 4, W: 3, O: 96, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  { N: 1, C: 200, H: 5, W: 5, O: 60, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  // depthwise vector path: rows of several 16-lane chunks plus a tail, stride 2 on odd sizes,
  // dilation, a channel multiplier of 2 (accumulating planes), padding beyond (K-1)*d (fallback)
  { N: 2, C: 5, H: 7, W: 37, O: 5, k: [3, 3], p: P(1, 1, 1, 5) },
  { N: 2, C: 3, H: 13, W: 71, O: 3, k: [3, 3], p: P(2, 1, 1, 3) },
  { N: 1, C: 4, H: 9, W: 35, O: 4, k: [3, 3], p: P(1, 2, 2, 4) },
  { N: 2, C: 3, H: 6, W: 19, O: 6, k: [5, 5], p: P(1, 2, 1, 3) },
  { N: 1, C: 2, H: 5, W: 18, O: 2, k: [3, 3], p: P(1, 3, 1, 2) },
  { N: 2, C: 2, H: 11, W: 40, O: 2, k: [5, 5], p: P(2, 2, 1, 2) },
  // pointwise backward-weight over images with private sums, both orientations, groups
  { N: 3, C: 9, H: 16, W: 17, O: 4, k: [1, 1], p: P(1, 0) },
  { N: 2, C: 6, H: 16, W: 20, O: 10, k: [1, 1], p: P(1, 0, 1, 2) },
  { N: 1, C: 3, H: 6, W: 21, O: 3, k: [3, 5], p: P(1, 1, 1, 3) },
  // direct stride-1 path (AVX-512; rows >= 24 wide): one image split among the threads, rows of
  // weights not a multiple of 6, backward-input as a forward conv (C >= 6), groups + dilation,
  // a 3x5 kernel with unequal padding, no padding
  { N: 1, C: 5, H: 11, W: 30, O: 13, k: [3, 3], p: P(1, 1) },
  { N: 3, C: 8, H: 9, W: 26, O: 7, k: [3, 3], p: P(1, 1) },
  { N: 2, C: 12, H: 7, W: 40, O: 12, k: [3, 3], p: P(1, 2, 2, 2) },
  { N: 2, C: 6, H: 10, W: 33, O: 8, k: [3, 5], p: { stride: [1, 1], padding: [1, 2], dilation: [1, 1], groups: 1 } },
  { N: 2, C: 7, H: 6, W: 30, O: 6, k: [3, 3], p: P(1, 0) },
  // direct backward-weight (>= 32 output channels): two ragged panels of 64 channels, taps not a
  // multiple of 6 (images split among threads; one image: the threads split the taps); groups +
  // dilation
  { N: 2, C: 5, H: 6, W: 28, O: 70, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  { N: 1, C: 5, H: 6, W: 28, O: 70, k: [3, 3], p: P(1, 1), tol: 1e-4 },
  { N: 2, C: 8, H: 5, W: 30, O: 64, k: [3, 3], p: P(1, 2, 2, 2) },
];

function check(c: Case, xv?: Tensor): void {
  const OH = outSize(c.H, c.k[0], c.p.stride[0], c.p.padding[0], c.p.dilation[0]);
  const OW = outSize(c.W, c.k[1], c.p.stride[1], c.p.padding[1], c.p.dilation[1]);
  const x = xv ?? randT([c.N, c.C, c.H, c.W]);
  const w = randT([c.O, c.C / c.p.groups, c.k[0], c.k[1]]);
  const dy = randT([c.N, c.O, OH, OW]);
  const name = JSON.stringify(c);
  const y1 = zerosT([c.N, c.O, OH, OW]);
  const y2 = zerosT([c.N, c.O, OH, OW]);
  const ys = zerosT([c.N, c.O, OH, OW]);
  nat().conv2d(x, w, y1, c.p);
  ref.conv2d(x, w, y2, c.p);
  ref.conv2d(absT(x), absT(w), ys, c.p);
  assertClose(y1, y2, c.tol ?? 1e-5, `fwd ${name}`);
  assertCloseScaled(y1, y2, ys, 1e-6, `fwd ${name}`);
  const dx1 = zerosT(x.shape);
  const dx2 = zerosT(x.shape);
  nat().conv2dBackwardInput(dy, w, dx1, c.p);
  ref.conv2dBackwardInput(dy, w, dx2, c.p);
  assertClose(dx1, dx2, c.tol ?? 1e-5, `bwd input ${name}`);
  const dw1 = zerosT(w.shape);
  const dw2 = zerosT(w.shape);
  const dws = zerosT(w.shape);
  nat().conv2dBackwardWeight(x, dy, dw1, c.p);
  ref.conv2dBackwardWeight(x, dy, dw2, c.p);
  ref.conv2dBackwardWeight(absT(x), absT(dy), dws, c.p);
  assertClose(dw1, dw2, 1e-4, `bwd weight ${name}`);
  assertCloseScaled(dw1, dw2, dws, 1e-6, `bwd weight ${name}`);
}

describe("native conv2d", { skip }, () => {
  test("forward and backward on every path", () => {
    for (const c of cases) check(c);
  });
  test("non-contiguous input", () => {
    const c = cases[0];
    check(c, permutedView([c.N, c.C, c.H, c.W], [0, 2, 3, 1]));
  });
  test("backward-weight gives the same bits on every call (exact resume depends on it)", () => {
    // Both paths that sum per-group private copies of dw: pointwise over images, and the implicit
    // GEMM's small-weight path over column spans. When the copies followed whichever thread ran a
    // task, the summation order changed from call to call. Also the direct stride-1 path (threads
    // split the taps; wide rows, >= 32 output channels).
    const direct: Case = { N: 3, C: 5, H: 6, W: 28, O: 70, k: [3, 3], p: P(1, 1) };
    for (const c of [cases[3], cases[8], { ...cases[3], N: 7 }, direct]) {
      const OH = outSize(c.H, c.k[0], c.p.stride[0], c.p.padding[0], c.p.dilation[0]);
      const OW = outSize(c.W, c.k[1], c.p.stride[1], c.p.padding[1], c.p.dilation[1]);
      const x = randT([c.N, c.C, c.H, c.W]);
      const dy = randT([c.N, c.O, OH, OW]);
      const first = zerosT([c.O, c.C / c.p.groups, c.k[0], c.k[1]]);
      nat().conv2dBackwardWeight(x, dy, first, c.p);
      for (let r = 0; r < 30; r++) {
        const dw = zerosT(first.shape);
        nat().conv2dBackwardWeight(x, dy, dw, c.p);
        assertClose(dw, first, 0, `call ${r} of ${JSON.stringify(c)}`);
      }
    }
  });
});

describe("native pooling", { skip }, () => {
  const pools: [number[], Pool2dParams][] = [
    [[2, 3, 9, 7], { kernel: [3, 3], stride: [2, 2], padding: [1, 1] }],
    [[1, 2, 8, 8], { kernel: [2, 2], stride: [2, 2], padding: [0, 0] }],
    [[1, 2, 7, 10], { kernel: [3, 2], stride: [2, 3], padding: [1, 1], countIncludePad: false }],
    [[2, 1, 7, 7], { kernel: [3, 3], stride: [2, 2], padding: [1, 1], ceilMode: true }],
  ];
  test("max / avg pool forward and backward", () => {
    for (const [xs, p] of pools) {
      const ceil = p.ceilMode ? Math.ceil : Math.floor;
      const OH = ceil((xs[2] + 2 * p.padding[0] - p.kernel[0]) / p.stride[0]) + 1;
      const OW = ceil((xs[3] + 2 * p.padding[1] - p.kernel[1]) / p.stride[1]) + 1;
      const ys = [xs[0], xs[1], OH, OW];
      const x = randT(xs);
      const [o1, o2] = [zerosT(ys), zerosT(ys)];
      const [i1, i2] = [zerosT(ys, "int32"), zerosT(ys, "int32")];
      nat().maxPool2d(x, o1, i1, p);
      ref.maxPool2d(x, o2, i2, p);
      assertClose(o1, o2, 0, "maxpool");
      assertClose(i1, i2, 0, "maxpool indices");
      const dy = randT(ys);
      const [d1, d2] = [zerosT(xs), zerosT(xs)];
      nat().maxPool2dBackward(dy, i2, d1);
      ref.maxPool2dBackward(dy, i2, d2);
      assertClose(d1, d2, 1e-6, "maxpool bwd");
      nat().avgPool2d(x, o1, p);
      ref.avgPool2d(x, o2, p);
      assertClose(o1, o2, 1e-6, "avgpool");
      nat().avgPool2dBackward(dy, d1, p);
      ref.avgPool2dBackward(dy, d2, p);
      assertClose(d1, d2, 1e-6, "avgpool bwd");
    }
  });
  test("adaptive avg pool", () => {
    for (const [xs, os] of [
      [
        [2, 3, 7, 9],
        [3, 4],
      ],
      [
        [1, 2, 5, 5],
        [1, 1],
      ],
      [
        [1, 1, 4, 6],
        [7, 5],
      ],
    ] as [number[], number[]][]) {
      const x = randT(xs);
      const ys = [xs[0], xs[1], ...os];
      const [o1, o2] = [zerosT(ys), zerosT(ys)];
      nat().adaptiveAvgPool2d(x, o1);
      ref.adaptiveAvgPool2d(x, o2);
      assertClose(o1, o2, 1e-6, "adaptive");
      const dy = randT(ys);
      const [d1, d2] = [zerosT(xs), zerosT(xs)];
      nat().adaptiveAvgPool2dBackward(dy, d1);
      ref.adaptiveAvgPool2dBackward(dy, d2);
      assertClose(d1, d2, 1e-6, "adaptive bwd");
    }
  });
  test("max pool with -inf and NaN", () => {
    const x = randT([1, 1, 4, 4]);
    x.data[5] = Number.NaN;
    x.data[10] = -Infinity;
    const p: Pool2dParams = { kernel: [2, 2], stride: [1, 1], padding: [1, 1] };
    const [o1, o2, i1, i2] = [
      zerosT([1, 1, 5, 5]),
      zerosT([1, 1, 5, 5]),
      zerosT([1, 1, 5, 5], "int32"),
      zerosT([1, 1, 5, 5], "int32"),
    ];
    nat().maxPool2d(x, o1, i1, p);
    ref.maxPool2d(x, o2, i2, p);
    assertClose(o1, o2, 0, "maxpool nan");
    assertClose(i1, i2, 0, "maxpool nan idx");
  });
});
