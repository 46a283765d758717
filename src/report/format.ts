/**
 * Escaping and number formatting shared by the HTML and plain-text reports.
 *
 * @example
 * ```ts
 * escapeHtml('<script>"x"</script>');   // "&lt;script&gt;&quot;x&quot;&lt;/script&gt;"
 * formatMetric("accuracy", 0.9123);     // "91.2%"
 * formatCount(66_955_010);              // "67.0M"
 * formatDuration(252);                  // "4 min 12 s"
 * ```
 */
import { isFractionMetric, isHigherBetter } from "./types.ts";

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text for HTML element content and quoted attribute values. Non-strings are stringified. */
export function escapeHtml(value: unknown): string {
  return String(value ?? "").replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** True for a finite number (NaN, ±Infinity, strings and null from JSON are not). */
export function isNum(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

/** A number in at most 4 significant digits: `0.2134`, `12.5`, `1,234`, `2e-4`. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (Number.isInteger(v) && a < 1e15) return v.toLocaleString("en-US");
  if (a < 1e-3 || a >= 1e15)
    return v
      .toExponential(2)
      .replace(/\.?0+e/, "e")
      .replace("e+", "e");
  if (a >= 1000) return Math.round(v).toLocaleString("en-US");
  return String(Number(v.toPrecision(4)));
}

/** Formats a metric value: fractions such as accuracy as a percentage, others as {@link formatNumber}. */
export function formatMetric(metric: string, v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (isFractionMetric(metric) && v >= 0 && v <= 1) return `${(v * 100).toFixed(1)}%`;
  return formatNumber(v);
}

/**
 * Formats `ours - other` for `metric`, signed: percentage points for fractions, with the relative
 * change for lower-is-better metrics such as perplexity (`-12.3 (-35%)`).
 */
export function formatDelta(metric: string, ours: number, other: number): string {
  const d = ours - other;
  const sign = d > 0 ? "+" : d < 0 ? "−" : "±";
  if (isFractionMetric(metric) && Math.abs(ours) <= 1 && Math.abs(other) <= 1) {
    return `${sign}${Math.abs(d * 100).toFixed(1)} pp`;
  }
  const abs = `${sign}${formatNumber(Math.abs(d))}`;
  if (!isHigherBetter(metric) && other !== 0) return `${abs} (${sign}${Math.abs((d / other) * 100).toFixed(0)}%)`;
  return abs;
}

/** A parameter or example count: `950`, `12.3k`, `66.9M`, `1.10B`. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const a = Math.abs(n);
  if (a < 1e4) return n.toLocaleString("en-US");
  const [div, unit] = a >= 1e9 ? [1e9, "B"] : a >= 1e6 ? [1e6, "M"] : [1e3, "k"];
  const x = n / div;
  return `${Math.abs(x) < 10 ? x.toFixed(2) : Math.abs(x) < 100 ? x.toFixed(1) : x.toFixed(0)}${unit}`;
}

/** A duration: `0.8 s`, `42 s`, `4 min 12 s`, `1 h 03 min`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return String(seconds);
  if (seconds < 10) return `${Number(seconds.toFixed(1))} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")} min`;
}

/** A percentage of `part` in `whole` with sensible precision: `1.8%`, `0.04%`, `100%`. */
export function formatPercent(part: number, whole: number): string {
  if (!(whole > 0) || !Number.isFinite(part)) return "–";
  const p = (part / whole) * 100;
  if (p === 0 || p === 100) return `${p}%`;
  return `${p < 0.1 ? p.toPrecision(1) : p < 10 ? p.toFixed(2) : p.toFixed(1)}%`;
}

/** Cuts `text` to at most `max` code points, at a word boundary when one is near, adding "…". */
export function truncate(text: string, max: number): string {
  const cps = Array.from(text);
  if (cps.length <= max) return text;
  let cut = cps.slice(0, max).join("");
  const space = cut.search(/\s\S*$/);
  if (space > max * 0.8) cut = cut.slice(0, space);
  return `${cut.trimEnd()}…`;
}
