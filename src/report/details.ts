/**
 * The report's reference sections: freeze audit, dataset statistics, timing and the resolved
 * config. Like `sections.ts`, each returns "" when there is nothing to show.
 */
import { escapeHtml as esc, formatCount, formatDuration, formatNumber, formatPercent, isNum } from "./format.ts";
import { section } from "./sections.ts";
import { barChart, extent } from "./svg.ts";
import type { RunRecord } from "./types.ts";

function kv(items: [string, string][]): string {
  const cells = items.map(([k, v]) => `<div class="kv-item"><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`);
  return `<dl class="kv">${cells.join("")}</dl>`;
}

/** Trainable vs frozen parameters by module, with the trainer's verification badge. */
export function freezeSection(run: RunRecord): string {
  const fa = run.freezeAudit;
  if (!fa || !isNum(fa.trainable) || !isNum(fa.total)) return "";
  const badge = fa.verified
    ? `<span class="badge good">✓ verified: no frozen parameter changed</span>`
    : `<span class="badge bad">✗ not verified</span>`;
  const mods = (Array.isArray(fa.byModule) ? fa.byModule : []).filter(
    (m) => m && isNum(m.trainable) && isNum(m.frozen),
  );
  const rows = mods.map((m) => {
    const total = m.trainable + m.frozen;
    const w = total > 0 ? ((m.trainable / total) * 100).toFixed(1) : "0";
    const state = m.trainable === 0 ? "frozen" : m.frozen === 0 ? "trainable" : "partly";
    return `<tr class="${state}"><td><code>${esc(m.name)}</code></td><td class="num">${formatCount(m.trainable)}</td><td class="num">${formatCount(m.frozen)}</td><td class="num">${formatPercent(m.trainable, total)}</td><td><span class="minibar wide"><span style="width:${w}%"></span></span></td></tr>`;
  });
  const table = mods.length
    ? `<table class="data freeze"><thead><tr><th>module</th><th class="num">trainable</th><th class="num">frozen</th><th class="num">trainable %</th><th></th></tr></thead><tbody>${rows.join("")}</tbody><tfoot><tr><th>total</th><td class="num">${formatCount(fa.trainable)}</td><td class="num">${formatCount(fa.total - fa.trainable)}</td><td class="num">${formatPercent(fa.trainable, fa.total)}</td><td></td></tr></tfoot></table>`
    : "";
  const body = mods.length > 30 ? `<details><summary>${mods.length} modules</summary>${table}</details>` : table;
  const lead = `${badge} <strong>${formatCount(fa.trainable)}</strong> of ${formatCount(fa.total)} parameters trainable (${formatPercent(fa.trainable, fa.total)}).${fa.note ? ` ${esc(fa.note)}` : ""}`;
  return section("freeze", "Freeze audit", body, lead);
}

/** Split sizes, truncation, class balance and length statistics. */
export function datasetSection(run: RunRecord): string {
  const d = run.dataset;
  if (!d || !isNum(d.train)) return "";
  const items: [string, string][] = [["train examples", formatNumber(d.train)]];
  if (isNum(d.eval)) items.push(["eval examples", formatNumber(d.eval)]);
  if (isNum(d.test)) items.push(["test examples", formatNumber(d.test)]);
  if (isNum(d.truncated))
    items.push(["truncated to max length", `${formatNumber(d.truncated)} (${formatPercent(d.truncated, d.train)})`]);
  const counts = Object.entries(d.classCounts ?? {}).filter((e): e is [string, number] => isNum(e[1]));
  if (counts.length > 1) {
    const vals = counts.map((c) => c[1]);
    const [lo, hi] = extent(vals);
    items.push(
      ["classes", formatNumber(counts.length)],
      ["imbalance (largest / smallest)", lo > 0 ? `${(hi / lo).toFixed(1)}×` : "∞"],
    );
  }
  const parts = [kv(items)];
  const extra: string[] = [];
  if (counts.length) {
    const shown = counts.slice(0, 30);
    const chart = barChart(
      shown.map(([label, value]) => ({ label, value, tone: 0 })),
      {
        title:
          counts.length > 30
            ? `training examples per class (first 30 of ${counts.length})`
            : "training examples per class",
        format: formatNumber,
      },
    );
    extra.push(`<figure>${chart}</figure>`);
  }
  const ls = Object.entries(d.lengthStats ?? {}).filter((e): e is [string, number] => isNum(e[1]));
  if (ls.length) {
    const rows = ls.map(([k, v]) => `<tr><td>${esc(k)}</td><td class="num">${formatNumber(v)}</td></tr>`).join("");
    extra.push(
      `<figure><table class="data"><thead><tr><th>length (tokens)</th><th class="num">value</th></tr></thead><tbody>${rows}</tbody></table></figure>`,
    );
  }
  if (extra.length) parts.push(`<div class="split">${extra.join("")}</div>`);
  return section("dataset", "Dataset", parts.join(""));
}

/** Wall time, throughput, data-loading wait and the compute backend. */
export function timingSection(run: RunRecord): string {
  const t = run.timing;
  if (!t || !isNum(t.totalSeconds)) return "";
  const items: [string, string][] = [["wall time", formatDuration(t.totalSeconds)]];
  if (isNum(t.stepsPerSecond)) items.push(["steps / s", formatNumber(t.stepsPerSecond)]);
  if (isNum(t.samplesPerSecond)) items.push(["samples / s", formatNumber(t.samplesPerSecond)]);
  if (isNum(t.tokensPerSecond)) items.push(["tokens / s", formatNumber(t.tokensPerSecond)]);
  if (isNum(t.dataWaitSeconds))
    items.push([
      "waiting for data",
      `${formatDuration(t.dataWaitSeconds)} (${formatPercent(t.dataWaitSeconds, t.totalSeconds)})`,
    ]);
  if (typeof t.backend === "string") items.push(["backend", t.backend]);
  if (isNum(t.threads)) items.push(["threads", formatNumber(t.threads)]);
  return section("timing", "Timing and throughput", kv(items));
}

/** The resolved config as JSON, collapsed. */
export function configSection(run: RunRecord): string {
  let json: string;
  try {
    json = JSON.stringify(run.config ?? {}, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2) ?? "{}";
  } catch (e) {
    json = `config could not be serialised: ${(e as Error).message}`;
  }
  if (json === "{}") return "";
  return section(
    "config",
    "Resolved config",
    `<details><summary>show config (${json.split("\n").length} lines)</summary><pre class="config">${esc(json)}</pre></details>`,
  );
}
