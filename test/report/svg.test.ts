import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  barChart,
  downsample,
  formatTick,
  linearScale,
  lineChart,
  logScale,
  logTicks,
  niceNum,
  niceTicks,
  pathData,
  smooth,
  tightTicks,
} from "../../src/report/svg.ts";

/** `[x, y]` pairs of a path's `d` attribute. */
function pathPoints(d: string): number[][] {
  return d
    .trim()
    .split(" ")
    .map((cmd) => cmd.slice(1).split(",").map(Number));
}

function paths(svg: string): { series: string; points: number; d: string }[] {
  return [...svg.matchAll(/<path [^>]*data-series="([^"]*)" data-points="(\d+)" d="([^"]*)"/g)].map((m) => ({
    series: m[1],
    points: Number(m[2]),
    d: m[3],
  }));
}

describe("nice ticks", () => {
  test("niceNum picks 1, 2, 5 or 10 times a power of ten", () => {
    assert.equal(niceNum(0.37, true), 0.5);
    assert.equal(niceNum(0.37, false), 0.5);
    assert.equal(niceNum(1.4, true), 1);
    assert.equal(niceNum(1.4, false), 2);
    assert.equal(niceNum(6.9, true), 5);
    assert.equal(niceNum(6.9, false), 10);
    assert.equal(niceNum(2300, true), 2000);
  });

  test("covers the range with round, evenly spaced, float-clean values", () => {
    assert.deepEqual(niceTicks(0, 2.37).values, [0, 0.5, 1, 1.5, 2, 2.5]);
    assert.deepEqual(niceTicks(0, 1).values, [0, 0.2, 0.4, 0.6, 0.8, 1]);
    assert.deepEqual(niceTicks(1, 300, 6).values, [0, 50, 100, 150, 200, 250, 300]);
    assert.deepEqual(niceTicks(0.1, 0.3, 5).values, [0.1, 0.15, 0.2, 0.25, 0.3]);
    assert.deepEqual(niceTicks(-3, 7).values, [-4, -2, 0, 2, 4, 6, 8]);
    const t = niceTicks(0.8123, 0.9377);
    assert.ok(t.min <= 0.8123 && t.max >= 0.9377, JSON.stringify(t));
    for (const v of t.values) assert.equal(v, Number(v.toFixed(6)), `float noise in ${v}`);
  });

  test("reversed and empty ranges", () => {
    assert.deepEqual(niceTicks(2.37, 0).values, niceTicks(0, 2.37).values);
    const one = niceTicks(5, 5);
    assert.ok(one.min < 5 && one.max > 5 && one.values.length >= 2, JSON.stringify(one));
    assert.ok(niceTicks(0, 0).values.includes(0));
    assert.throws(() => niceTicks(0, Number.NaN), RangeError);
  });

  test("tight ticks keep the axis to the data", () => {
    const t = tightTicks(1, 120, 6);
    assert.equal(t.min, 1);
    assert.equal(t.max, 120);
    assert.deepEqual(t.values, [20, 40, 60, 80, 100, 120]);
  });

  test("log ticks: powers of ten, 1-2-5 for short ranges, thinned for many decades", () => {
    const t = logTicks(0.05, 2.3);
    assert.deepEqual(t.values, [0.05, 0.1, 0.2, 0.5, 1, 2]);
    assert.ok(t.min < 0.05 && t.max > 2.3);
    assert.deepEqual(logTicks(1e-3, 10).values, [0.001, 0.01, 0.1, 1, 10]);
    const many = logTicks(1e-12, 1e6).values;
    assert.ok(many.length <= 8 && many.length >= 3, String(many));
    const narrow = logTicks(3.1, 4.4).values;
    assert.ok(narrow.length >= 2 && narrow.every((v) => v > 3 && v < 4.5), String(narrow));
    assert.throws(() => logTicks(0, 1), RangeError);
  });

  test("tick labels", () => {
    assert.equal(formatTick(0, 0.5), "0");
    assert.equal(formatTick(1.5, 0.5), "1.5");
    assert.equal(formatTick(2, 0.5), "2.0");
    assert.equal(formatTick(150, 50), "150");
    assert.equal(formatTick(25000, 5000), "25k");
    assert.equal(formatTick(1.5e6, 5e5), "1.5M");
    assert.equal(formatTick(2e-4, 1e-4), "2e-4");
    assert.equal(formatTick(1.5e-4, 5e-5), "1.5e-4");
    assert.equal(formatTick(0.05, 0), "0.05");
  });
});

describe("scales and paths", () => {
  test("linear and log scales map the domain ends to the range ends", () => {
    const x = linearScale(0, 10, 50, 550);
    assert.equal(x(0), 50);
    assert.equal(x(5), 300);
    assert.equal(x(10), 550);
    const y = logScale(0.01, 100, 200, 0);
    assert.equal(y(0.01), 200);
    assert.ok(Math.abs(y(1) - 100) < 1e-9);
    assert.ok(Math.abs(y(100)) < 1e-9);
  });

  test("pathData: one M then L per point, rounded to 0.1 px", () => {
    const x = linearScale(0, 2, 0, 100);
    const y = linearScale(0, 1, 50, 0);
    assert.equal(
      pathData(
        [
          [0, 0],
          [1, 0.5],
          [2, 1 / 3],
        ],
        x,
        y,
      ),
      "M0,50 L50,25 L100,33.3",
    );
    assert.equal(pathData([], x, y), "");
  });

  test("downsample keeps the count, the end points and the mean", () => {
    const pts = Array.from({ length: 1000 }, (_, i) => [i, i % 2] as const);
    const d = downsample(pts, 100);
    assert.equal(d.length, 100);
    assert.equal(d[0][0], 0);
    assert.equal(d[99][0], 999);
    for (const [, y] of d) assert.equal(y, 0.5);
    assert.equal(downsample(pts.slice(0, 10), 100).length, 10);
  });

  test("smooth is debiased: a constant series stays constant", () => {
    for (const [, y] of smooth(
      [
        [0, 2],
        [1, 2],
        [2, 2],
      ],
      0.9,
    ))
      assert.ok(Math.abs(y - 2) < 1e-12);
  });
});

describe("lineChart", () => {
  const train = Array.from({ length: 50 }, (_, i) => [i + 1, 2 / (i + 1)] as const);
  const evals = [10, 20, 30, 40, 50].map((s) => [s, 2.5 / s] as const);

  test("one path per series with one coordinate pair per point, inside the plot area", () => {
    const svg = lineChart(
      [
        { name: "train", points: train },
        { name: "eval", points: evals, markers: true },
      ],
      { title: "loss", xLabel: "step" },
    );
    const ps = paths(svg);
    assert.deepEqual(
      ps.map((p) => [p.series, p.points]),
      [
        ["train", 50],
        ["eval", 5],
      ],
    );
    for (const p of ps) {
      const pts = pathPoints(p.d);
      assert.equal(pts.length, p.points);
      assert.match(p.d, /^M[^ML]+( L[^ML]+)*$/);
      for (const [x, y] of pts) assert.ok(x >= 54 && x <= 544 && y >= 44 && y <= 240, `${x},${y} outside plot`);
    }
    // x is increasing in step order; the first train point is the leftmost and highest.
    const first = pathPoints(ps[0].d)[0];
    assert.deepEqual(first, [54, 44]);
    assert.equal((svg.match(/<circle /g) ?? []).length, 5, "markers for eval only");
    assert.match(svg, /<text class="title"[^>]*>loss/);
  });

  test("log scale when asked or when auto and the range spans a factor of 20", () => {
    assert.match(lineChart([{ name: "t", points: train }], { log: "auto" }), /class="chart lines log"/);
    assert.doesNotMatch(lineChart([{ name: "t", points: evals }], { log: "auto" }), /class="chart lines log"/);
    assert.match(
      lineChart([{ name: "t", points: evals }], { log: true, title: "loss" }),
      /loss<tspan class="muted"> \(log scale\)/,
    );
  });

  test("non-finite values are dropped and counted; nothing plottable gives ''", () => {
    const svg = lineChart([
      {
        name: "t",
        points: [
          [1, 1],
          [2, Number.NaN],
          [3, Number.POSITIVE_INFINITY],
          [4, 0.5],
        ],
      },
    ]);
    assert.equal(paths(svg)[0].points, 2);
    assert.match(svg, /2 non-finite values not shown/);
    assert.equal(lineChart([{ name: "t", points: [[1, Number.NaN]] }]), "");
    assert.equal(lineChart([]), "");
  });

  test("long series are downsampled to maxPoints", () => {
    const long = Array.from({ length: 5000 }, (_, i) => [i, Math.sin(i)] as const);
    assert.equal(paths(lineChart([{ name: "t", points: long }], { maxPoints: 400 }))[0].points, 400);
  });

  test("series names are escaped", () => {
    const svg = lineChart([{ name: `<b>"x"</b>`, points: train }]);
    assert.ok(!svg.includes("<b>"));
    assert.match(svg, /&lt;b&gt;&quot;x&quot;/);
  });
});

describe("barChart", () => {
  test("one bar per finite value, lengths proportional to value from zero", () => {
    const svg = barChart([
      { label: "fine-tuned", value: 0.9, tone: 0 },
      { label: "scratch", value: 0.45 },
      { label: "broken", value: Number.NaN },
    ]);
    const widths = [...svg.matchAll(/<rect [^>]*x="([\d.]+)"[^>]*width="([\d.]+)"/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]);
    assert.equal(widths.length, 2);
    assert.equal(widths[0][0], widths[1][0], "bars start at the same x (zero)");
    assert.ok(Math.abs(widths[0][1] / widths[1][1] - 2) < 0.01, JSON.stringify(widths));
    assert.equal(barChart([]), "");
  });

  test("negative values extend left of the zero line", () => {
    const svg = barChart([
      { label: "a", value: -1 },
      { label: "b", value: 1 },
    ]);
    const xs = [...svg.matchAll(/<rect [^>]*x="([\d.]+)"[^>]*width="([\d.]+)"/g)].map((m) => Number(m[1]));
    assert.ok(xs[0] < xs[1]);
  });
});
