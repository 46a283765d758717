/**
 * Small inline-SVG chart helpers for the run report: nice axis ticks (linear and log), a line chart
 * with several series, and a horizontal bar chart. No chart library, no script: each function
 * returns an `<svg>` string for inline use in HTML (no `xmlns`, so the report holds no URL at all)
 * whose colours come from CSS classes (`c0`…`c5`), with presentation attributes as a fallback.
 *
 * @example
 * ```ts
 * niceTicks(0, 2.37).values;   // [0, 0.5, 1, 1.5, 2, 2.5]
 * const svg = lineChart([{ name: "train", points: [[1, 2.3], [2, 1.1], [3, 0.7]] }],
 *                       { title: "loss", xLabel: "step", log: "auto" });
 * ```
 */
import { escapeHtml as esc } from "./format.ts";

export type Point = readonly [x: number, y: number];

/** Tick positions and the (padded) axis range they cover. */
export interface Ticks {
  min: number;
  max: number;
  values: number[];
  /** Spacing of linear ticks; 0 for log ticks. */
  step: number;
}

/** Fallback colours for `c0`…`c5` (the report's CSS overrides them, e.g. for dark mode). */
export const PALETTE = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#64748b", "#db2777"];

/** The "nice" number (1, 2, 5 or 10 times a power of ten) closest to `x` (`round`) or above it. */
export function niceNum(x: number, round: boolean): number {
  const exp = Math.floor(Math.log10(x));
  const f = x / 10 ** exp;
  const nf = round ? (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) : f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
  return nf * 10 ** exp;
}

/** Removes float noise such as 0.30000000000000004 given the tick spacing. */
function clean(v: number, step: number): number {
  const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  return Number(v.toFixed(Math.min(digits, 20)));
}

/**
 * About `target` evenly spaced round ticks covering [lo, hi] (a 1-2-5 step as in Heckbert's "nice
 * numbers", taken from range / (target - 1) directly, which lands closer to `target`). The range is
 * widened to the outer ticks; an empty range (lo == hi) is widened around the value.
 */
export function niceTicks(lo: number, hi: number, target = 5): Ticks {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) throw new RangeError(`niceTicks: non-finite range [${lo}, ${hi}]`);
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const step = niceNum((hi - lo) / Math.max(1, target - 1), true);
  const min = Math.floor(lo / step + 1e-9) * step;
  const max = Math.ceil(hi / step - 1e-9) * step;
  const values: number[] = [];
  for (let i = 0; min + i * step <= max + step * 1e-9; i++) values.push(clean(min + i * step, step));
  return { min: clean(min, step), max: clean(max, step), values, step };
}

/**
 * Ticks for a log axis over [lo, hi] (both > 0): powers of ten, or 1-2-5 / 1…9 multiples when the
 * range spans too few decades, or linear nice ticks for a very narrow range. The range is padded by
 * 3% of its log width on each side.
 */
export function logTicks(lo: number, hi: number): Ticks {
  if (!(lo > 0) || !(hi > 0)) throw new RangeError(`logTicks: range must be positive, got [${lo}, ${hi}]`);
  if (lo > hi) [lo, hi] = [hi, lo];
  if (lo === hi) [lo, hi] = [lo / 2, hi * 2];
  const pad = (hi / lo) ** 0.03;
  const min = lo / pad;
  const max = hi * pad;
  for (const mantissas of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const values: number[] = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of mantissas) {
        const v = Number((m * 10 ** e).toPrecision(12));
        if (v >= min && v <= max) values.push(v);
      }
    }
    if (values.length >= 3) {
      // Many decades: keep every k-th power of ten so labels don't collide.
      const k = Math.ceil(values.length / 8);
      return { min, max, values: values.filter((_, i) => i % k === 0), step: 0 };
    }
  }
  const lin = niceTicks(min, max, 4);
  return { min, max, values: lin.values.filter((v) => v >= min && v <= max && v > 0), step: 0 };
}

/**
 * Nice ticks that stay inside [lo, hi] with the axis range kept to the data (for step axes, where
 * padding to the next round number would only add empty space). Widens an empty range like
 * {@link niceTicks}.
 */
export function tightTicks(lo: number, hi: number, target = 5): Ticks {
  const t = niceTicks(lo, hi, target);
  if (lo === hi) return t;
  const eps = t.step * 1e-9;
  return { ...t, min: lo, max: hi, values: t.values.filter((v) => v >= lo - eps && v <= hi + eps) };
}

/** Formats a tick label given the tick spacing (`step`, 0 for log ticks): `0.5`, `12k`, `2e-4`. */
export function formatTick(v: number, step: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e4) {
    const [div, unit] = a >= 1e9 ? [1e9, "B"] : a >= 1e6 ? [1e6, "M"] : [1e3, "k"];
    return `${Number((v / div).toPrecision(3))}${unit}`;
  }
  if (a < 1e-3) return v.toExponential(1).replace(/\.0e/, "e").replace("e+", "e");
  if (step > 0) {
    const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return v.toFixed(Math.min(digits, 6));
  }
  return String(Number(v.toPrecision(3)));
}

/** A map from data to pixel coordinates. */
export type Scale = (v: number) => number;

/** Linear map from [d0, d1] to [r0, r1]. */
export function linearScale(d0: number, d1: number, r0: number, r1: number): Scale {
  const k = d1 === d0 ? 0 : (r1 - r0) / (d1 - d0);
  return (v) => r0 + (v - d0) * k;
}

/** Log-10 map from [d0, d1] (both > 0) to [r0, r1]. */
export function logScale(d0: number, d1: number, r0: number, r1: number): Scale {
  const lin = linearScale(Math.log10(d0), Math.log10(d1), r0, r1);
  return (v) => lin(Math.log10(v));
}

/** SVG path data through `points`: `M x,y L x,y …`, coordinates rounded to 0.1 px. */
export function pathData(points: readonly Point[], x: Scale, y: Scale): string {
  const r = (v: number) => String(Math.round(v * 10) / 10);
  return points.map(([px, py], i) => `${i === 0 ? "M" : "L"}${r(x(px))},${r(y(py))}`).join(" ");
}

/** Reduces `points` to at most `max` by averaging consecutive buckets (keeps first and last x). */
export function downsample(points: readonly Point[], max: number): Point[] {
  if (points.length <= max) return [...points];
  const out: Point[] = [];
  const size = points.length / max;
  for (let b = 0; b < max; b++) {
    const from = Math.floor(b * size);
    const to = Math.max(from + 1, Math.floor((b + 1) * size));
    let sx = 0;
    let sy = 0;
    for (let i = from; i < to; i++) [sx, sy] = [sx + points[i][0], sy + points[i][1]];
    out.push([sx / (to - from), sy / (to - from)]);
  }
  out[0] = [points[0][0], out[0][1]];
  out[max - 1] = [points[points.length - 1][0], out[max - 1][1]];
  return out;
}

/** Exponential moving average of the y values (TensorBoard-style smoothing, debiased). */
export function smooth(points: readonly Point[], weight: number): Point[] {
  let avg = 0;
  return points.map(([x, y], i) => {
    avg = avg * weight + (1 - weight) * y;
    return [x, avg / (1 - weight ** (i + 1))] as const;
  });
}

/** [min, max] of a non-empty array, without spreading it into arguments (long runs have 1e6 points). */
export function extent(values: readonly number[]): [number, number] {
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** One line of a {@link lineChart}. */
export interface Series {
  name: string;
  points: readonly Point[];
  /** Palette index (0…5); defaults to the series' position. */
  tone?: number;
  dashed?: boolean;
  /** Drawn thin and translucent (raw values under a smoothed line). */
  faint?: boolean;
  /** Draw a dot at each point (for sparse series such as evaluations). */
  markers?: boolean;
  /** Leave out of the legend. */
  noLegend?: boolean;
}

export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  /** `"auto"`: log when all values are positive and span at least a factor of 20. */
  log?: boolean | "auto";
  width?: number;
  height?: number;
  /** Points per series above which the series is downsampled (default 600). */
  maxPoints?: number;
}

const M = { left: 54, right: 16, top: 44, bottom: 40 };

/**
 * A line chart of one or more series sharing x and y axes. Non-finite points (and non-positive ones
 * on a log axis) are dropped and counted in a note. Returns "" when no series has a point.
 */
export function lineChart(series: readonly Series[], opts: LineChartOptions = {}): string {
  const W = opts.width ?? 560;
  const H = opts.height ?? 280;
  const all = series.flatMap((s) => s.points);
  const finite = (p: Point) => Number.isFinite(p[0]) && Number.isFinite(p[1]);
  const ys = all.filter(finite).map((p) => p[1]);
  if (ys.length === 0) return "";
  const [yLo, yHi] = extent(ys);
  const log = opts.log === true ? yLo > 0 : opts.log === "auto" ? yLo > 0 && yHi / yLo >= 20 : false;
  const keep = (p: Point) => finite(p) && (!log || p[1] > 0);
  const dropped = all.length - all.filter(keep).length;
  const xs = all.filter(keep).map((p) => p[0]);
  const xt = tightTicks(...extent(xs), 6);
  const yt = log ? logTicks(yLo, yHi) : niceTicks(yLo, yHi, 5);
  const x = linearScale(xt.min, xt.max, M.left, W - M.right);
  const y = (log ? logScale : linearScale)(yt.min, yt.max, H - M.bottom, M.top);
  const parts: string[] = [];
  for (const v of yt.values) {
    const py = y(v).toFixed(1);
    parts.push(`<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${py}" y2="${py}" stroke="#e2e8f0"/>`);
    parts.push(
      `<text class="tick" x="${M.left - 6}" y="${py}" dy="0.32em" text-anchor="end">${formatTick(v, yt.step)}</text>`,
    );
  }
  for (const v of xt.values) {
    const px = x(v).toFixed(1);
    parts.push(
      `<line class="axis" x1="${px}" x2="${px}" y1="${H - M.bottom}" y2="${H - M.bottom + 4}" stroke="#94a3b8"/>`,
    );
    parts.push(
      `<text class="tick" x="${px}" y="${H - M.bottom + 16}" text-anchor="middle">${formatTick(v, xt.step)}</text>`,
    );
  }
  parts.push(
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${H - M.bottom}" y2="${H - M.bottom}" stroke="#94a3b8"/>`,
  );
  series.forEach((s, i) => {
    const pts = downsample(s.points.filter(keep), opts.maxPoints ?? 600);
    if (pts.length === 0) return;
    const tone = (s.tone ?? i) % PALETTE.length;
    const cls = `line c${tone}${s.faint ? " faint" : ""}${s.dashed ? " dashed" : ""}`;
    const dash = s.dashed ? ` stroke-dasharray="5 4"` : "";
    const width = s.faint ? 1 : 2;
    parts.push(
      `<path class="${cls}" data-series="${esc(s.name)}" data-points="${pts.length}" d="${pathData(pts, x, y)}" fill="none" stroke="${PALETTE[tone]}" stroke-width="${width}"${s.faint ? ` stroke-opacity="0.35"` : ""}${dash} stroke-linejoin="round" stroke-linecap="round"/>`,
    );
    if (s.markers || pts.length === 1) {
      for (const [px, py] of pts) {
        parts.push(
          `<circle class="dot c${tone}" cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${PALETTE[tone]}"/>`,
        );
      }
    }
  });
  parts.push(
    legend(
      series.filter((s) => !s.noLegend && s.points.some(keep)),
      W,
    ),
  );
  if (opts.title)
    parts.push(
      `<text class="title" x="${M.left - 44}" y="18">${esc(opts.title)}${log ? `<tspan class="muted"> (log scale)</tspan>` : ""}</text>`,
    );
  if (opts.xLabel)
    parts.push(
      `<text class="label" x="${(M.left + W - M.right) / 2}" y="${H - 6}" text-anchor="middle">${esc(opts.xLabel)}</text>`,
    );
  if (dropped > 0)
    parts.push(
      `<text class="note" x="${W - M.right}" y="${H - 6}" text-anchor="end">${dropped} non-finite value${dropped === 1 ? "" : "s"} not shown</text>`,
    );
  return svgShell(W, H, opts.title ?? "chart", parts, log ? "lines log" : "lines");
}

function legend(series: readonly Series[], W: number): string {
  const items: string[] = [];
  let cx = W - M.right;
  // Laid out right to left so the legend hugs the right edge; ~6.5 px per character at 12 px.
  for (const s of [...series].reverse()) {
    const tone = (s.tone ?? series.indexOf(s)) % PALETTE.length;
    const textW = Math.ceil(s.name.length * 6.5);
    cx -= textW;
    items.push(`<text class="legend" x="${cx}" y="36">${esc(s.name)}</text>`);
    cx -= 22;
    items.push(
      `<line class="line c${tone}${s.dashed ? " dashed" : ""}" x1="${cx}" x2="${cx + 16}" y1="32" y2="32" stroke="${PALETTE[tone]}" stroke-width="2.5"${s.dashed ? ` stroke-dasharray="5 4"` : ""}/>`,
    );
    cx -= 14;
  }
  return `<g class="legend">${items.join("")}</g>`;
}

function svgShell(W: number, H: number, label: string, parts: string[], kind = "lines"): string {
  return `<svg class="chart ${kind}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(label)}" font-size="12">${parts.join("")}</svg>`;
}

/** One bar of a {@link barChart}. */
export interface Bar {
  label: string;
  value: number;
  /** Palette index; defaults to 4 (neutral grey). */
  tone?: number;
  /** Text after the value, e.g. a delta. */
  note?: string;
}

export interface BarChartOptions {
  title?: string;
  width?: number;
  /** Formats the value printed at the end of each bar. */
  format?: (v: number) => string;
}

/** A horizontal bar chart starting at zero (or below, for negative values). "" when no bar is finite. */
export function barChart(bars: readonly Bar[], opts: BarChartOptions = {}): string {
  const ok = bars.filter((b) => Number.isFinite(b.value));
  if (ok.length === 0) return "";
  const W = opts.width ?? 560;
  const fmt = opts.format ?? ((v: number) => formatTick(v, 0));
  const labelW = Math.min(200, 16 + Math.max(...ok.map((b) => b.label.length)) * 7);
  const valueW = 16 + Math.max(...ok.map((b) => (fmt(b.value) + (b.note ? `  ${b.note}` : "")).length)) * 7;
  const top = opts.title ? 30 : 6;
  const rowH = 26;
  const H = top + ok.length * rowH + 6;
  const lo = Math.min(0, ...ok.map((b) => b.value));
  const hi = Math.max(0, ...ok.map((b) => b.value));
  const x = linearScale(lo, hi === lo ? 1 : hi, labelW, Math.max(labelW + 40, W - valueW));
  const parts: string[] = [];
  if (opts.title) parts.push(`<text class="title" x="10" y="18">${esc(opts.title)}</text>`);
  ok.forEach((b, i) => {
    const tone = (b.tone ?? 4) % PALETTE.length;
    const y0 = top + i * rowH;
    const x0 = Math.min(x(0), x(b.value));
    const w = Math.max(1, Math.abs(x(b.value) - x(0)));
    const label = b.label.length > 26 ? `${b.label.slice(0, 25)}…` : b.label;
    parts.push(
      `<text class="label" x="${labelW - 8}" y="${y0 + rowH / 2}" dy="0.32em" text-anchor="end">${esc(label)}</text>`,
    );
    parts.push(
      `<rect class="bar c${tone}" x="${x0.toFixed(1)}" y="${y0 + 4}" width="${w.toFixed(1)}" height="${rowH - 8}" rx="3" fill="${PALETTE[tone]}"/>`,
    );
    const note = b.note ? `<tspan class="muted"> ${esc(b.note)}</tspan>` : "";
    parts.push(
      `<text class="value" x="${(Math.max(x(0), x(b.value)) + 6).toFixed(1)}" y="${y0 + rowH / 2}" dy="0.32em">${esc(fmt(b.value))}${note}</text>`,
    );
  });
  parts.push(
    `<line class="axis" x1="${x(0).toFixed(1)}" x2="${x(0).toFixed(1)}" y1="${top}" y2="${H - 6}" stroke="#94a3b8"/>`,
  );
  return svgShell(W, H, opts.title ?? "bar chart", parts, "bars");
}
