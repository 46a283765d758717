/**
 * The report's sections, one function each. Each returns "" when the run has no data for it, so
 * `renderReport` simply joins what is non-empty. Every user-provided string goes through `esc`.
 */
import {
  bestEval,
  checkedConfusion,
  compareBaselines,
  confusionAccuracy,
  finalEval,
  metricKeys,
  metricLabel,
  perClassFromConfusion,
  primaryMetric,
  series,
  validRows,
} from "./analysis.ts";
import {
  escapeHtml as esc,
  formatCount,
  formatDelta,
  formatDuration,
  formatMetric,
  formatNumber,
  formatPercent,
  isNum,
  truncate,
} from "./format.ts";
import { type Bar, barChart, lineChart, type Point, type Series, smooth } from "./svg.ts";
import type { RunRecord } from "./types.ts";

/** A titled section; `id` is also the anchor the table of contents links to. */
export function section(id: string, title: string, body: string, lead = ""): string {
  return `<section id="${id}"><h2>${esc(title)}</h2>${lead ? `<p class="lead">${lead}</p>` : ""}${body}</section>`;
}

function card(label: string, value: string, sub = "", tone = ""): string {
  return `<div class="card${tone ? ` ${tone}` : ""}"><div class="card-label">${esc(label)}</div><div class="card-value">${esc(value)}</div>${sub ? `<div class="card-sub">${esc(sub)}</div>` : ""}</div>`;
}

/** Headline numbers: final and best evaluation, gain over baselines, trainable share, wall time. */
export function keyNumbers(run: RunRecord): string {
  const cards: string[] = [];
  const key = primaryMetric(run);
  const last = finalEval(run);
  if (key && last && isNum(last[key])) {
    cards.push(card(`final eval ${metricLabel(key)}`, formatMetric(key, last[key]), `step ${formatNumber(last.step)}`));
    const best = bestEval(run, key);
    if (best && best.step !== last.step)
      cards.push(
        card(`best eval ${metricLabel(key)}`, formatMetric(key, best.value), `step ${formatNumber(best.step)}`),
      );
  }
  const g = compareBaselines(run)[0];
  if (g?.bestOther) {
    const delta = formatDelta(g.metric, g.ours.value, g.bestOther.value);
    cards.push(
      card(
        `vs ${g.bestOther.name}`,
        delta,
        `${g.metric}: ${formatMetric(g.metric, g.ours.value)} vs ${formatMetric(g.metric, g.bestOther.value)}`,
        g.oursWins ? "good" : "bad",
      ),
    );
  }
  const fa = run.freezeAudit;
  if (fa && isNum(fa.trainable) && isNum(fa.total)) {
    cards.push(
      card(
        "trainable parameters",
        formatPercent(fa.trainable, fa.total),
        `${formatCount(fa.trainable)} of ${formatCount(fa.total)}`,
      ),
    );
  }
  if (run.timing && isNum(run.timing.totalSeconds)) {
    const rate = isNum(run.timing.samplesPerSecond) ? `${formatNumber(run.timing.samplesPerSecond)} samples/s` : "";
    cards.push(card("wall time", formatDuration(run.timing.totalSeconds), rate));
  }
  return cards.length ? `<div class="cards" id="key-numbers">${cards.join("")}</div>` : "";
}

/** Baseline comparison: a table per metric with deltas, and a bar chart. */
export function baselinesSection(run: RunRecord): string {
  const groups = compareBaselines(run);
  if (groups.length === 0) return "";
  const blocks = groups.map((g) => {
    const all = [g.ours, ...g.others];
    const rows = all.map((b) => {
      const delta =
        b === g.ours ? `<span class="muted">reference</span>` : esc(formatDelta(g.metric, g.ours.value, b.value));
      return `<tr${b === g.ours ? ` class="ours"` : ""}><td>${esc(b.name)}</td><td class="num">${esc(formatMetric(g.metric, b.value))}</td><td class="num">${delta}</td><td class="muted">${esc(b.note ?? "")}</td></tr>`;
    });
    const bars: Bar[] = all.map((b) => ({ label: b.name, value: b.value, tone: b === g.ours ? 0 : 4 }));
    const verdict = g.bestOther
      ? `${esc(g.ours.name)} ${g.oursWins ? "beats" : "does <strong>not</strong> beat"} the best alternative (${esc(g.bestOther.name)}) by <strong>${esc(formatDelta(g.metric, g.ours.value, g.bestOther.value))}</strong> ${esc(g.metric)} (${g.higherIsBetter ? "higher" : "lower"} is better).`
      : "";
    const table = `<table class="data"><thead><tr><th>${esc(g.metric)}</th><th class="num">value</th><th class="num" title="${esc(g.ours.name)} minus this row">gain of ours</th><th>note</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
    const chart = barChart(bars, { title: g.metric, format: (v) => formatMetric(g.metric, v) });
    return `<div class="verdict ${g.oursWins ? "good" : "bad"}">${verdict}</div><div class="split">${table}<figure>${chart}</figure></div>`;
  });
  return section(
    "baselines",
    "Did fine-tuning help?",
    blocks.join(""),
    "Same data and compute budget, spent on the alternatives a practitioner would try.",
  );
}

/** Smoothing weight that grows with the number of points (raw noise stays visible underneath). */
function smoothWeight(n: number): number {
  return Math.min(0.95, Math.max(0.6, 1 - 8 / n));
}

/** Loss, learning rate and every other logged metric against step. */
export function curvesSection(run: RunRecord): string {
  const rows = validRows(run);
  const figs: string[] = [];
  const chart = (key: string, log: boolean | "auto") => {
    const s: Series[] = [];
    const train = series(rows, "train", key);
    const evals = series(rows, "eval", key);
    if (train.length > 40) {
      const finite = train.filter((p): p is [number, number] => Number.isFinite(p[1]));
      s.push({ name: "train (raw)", points: train, tone: 0, faint: true, noLegend: true });
      s.push({ name: "train", points: smooth(finite, smoothWeight(finite.length)) as Point[], tone: 0 });
    } else if (train.length) s.push({ name: "train", points: train, tone: 0, markers: train.length <= 30 });
    if (evals.length) s.push({ name: "eval", points: evals, tone: 1, markers: evals.length <= 60 });
    return lineChart(s, { title: metricLabel(key), xLabel: "step", log });
  };
  for (const key of metricKeys(rows)) figs.push(chart(key, key === "loss" || key === "perplexity" ? "auto" : false));
  const lr = series(rows, "train", "lr");
  if (lr.length)
    figs.splice(1, 0, lineChart([{ name: "lr", points: lr, tone: 2 }], { title: "learning rate", xLabel: "step" }));
  const body = figs.filter(Boolean).map((f) => `<figure>${f}</figure>`);
  if (body.length === 0) return "";
  const epochs = rows.at(-1)?.epoch;
  const lead = `${formatNumber(rows.at(-1)?.step ?? 0)} steps${isNum(epochs) ? `, ${formatNumber(epochs)} epochs` : ""}. Train curves with many points are smoothed (exponential moving average); the raw values are drawn faintly underneath.`;
  return section("curves", "Training curves", `<div class="charts">${body.join("")}</div>`, lead);
}

/** Cell background: blue on the diagonal, orange off it, opacity from the row fraction. */
function heat(count: number, rowTotal: number, diagonal: boolean): string {
  if (rowTotal <= 0 || count <= 0) return "";
  const f = count / rowTotal;
  const a = diagonal ? 0.12 + 0.78 * f : Math.min(0.9, 0.12 + 1.5 * f);
  const rgb = diagonal ? "37,99,235" : "234,88,12";
  return ` style="background:rgba(${rgb},${a.toFixed(3)})${a > 0.55 ? ";color:#fff" : ""}"`;
}

/** Confusion matrix (heat table, or top confusions for many classes) and per-class metrics. */
export function confusionSection(run: RunRecord): string {
  const cm = checkedConfusion(run);
  const per =
    Array.isArray(run.perClass) && run.perClass.length
      ? run.perClass
      : cm
        ? perClassFromConfusion(cm.labels, cm.matrix)
        : [];
  if (!cm && per.length === 0) return "";
  const parts: string[] = [];
  if (cm && cm.labels.length <= 40) {
    const totals = cm.matrix.map((r) => r.reduce((s, v) => s + v, 0));
    const head = cm.labels.map((l) => `<th class="pred" title="${esc(l)}">${esc(truncate(l, 14))}</th>`).join("");
    const body = cm.matrix.map((row, i) => {
      const cells = row.map(
        (v, j) =>
          `<td${heat(v, totals[i], i === j)} title="true ${esc(cm.labels[i])}, predicted ${esc(cm.labels[j])}: ${v} (${formatPercent(v, totals[i])} of row)">${formatNumber(v)}</td>`,
      );
      return `<tr><th class="true" title="${esc(cm.labels[i])}">${esc(truncate(cm.labels[i], 20))}</th>${cells.join("")}<td class="total">${formatNumber(totals[i])}</td></tr>`;
    });
    parts.push(
      `<figure class="cm-wrap"><table class="confusion${cm.labels.length > 12 ? " small" : ""}"><thead><tr><th class="corner">true ↓ · predicted →</th>${head}<th class="total">total</th></tr></thead><tbody>${body.join("")}</tbody></table><figcaption>Rows are the true class, columns the prediction; colour is the share of the row. Accuracy ${esc(formatMetric("accuracy", confusionAccuracy(cm.matrix)))}.</figcaption></figure>`,
    );
  } else if (cm) {
    const pairs: [number, number, number][] = [];
    cm.matrix.forEach((row, i) => {
      row.forEach((v, j) => {
        if (i !== j && v > 0) pairs.push([v, i, j]);
      });
    });
    pairs.sort((a, b) => b[0] - a[0]);
    const rows = pairs
      .slice(0, 20)
      .map(
        ([v, i, j]) =>
          `<tr><td>${esc(cm.labels[i])}</td><td>${esc(cm.labels[j])}</td><td class="num">${formatNumber(v)}</td></tr>`,
      );
    parts.push(
      `<figure><table class="data"><thead><tr><th>true</th><th>predicted</th><th class="num">count</th></tr></thead><tbody>${rows.join("")}</tbody></table><figcaption>${cm.labels.length} classes: the 20 most frequent confusions instead of the full matrix.</figcaption></figure>`,
    );
  }
  if (per.length) parts.push(perClassTable(per));
  return section("confusion", "Confusion matrix and per-class metrics", `<div class="split">${parts.join("")}</div>`);
}

function perClassTable(per: RunRecord["perClass"] & object): string {
  const pct = (v: number) => (isNum(v) ? `${(v * 100).toFixed(1)}%` : "–");
  const bar = (v: number) =>
    `<span class="minibar"><span style="width:${isNum(v) ? Math.max(0, Math.min(100, v * 100)).toFixed(1) : 0}%"></span></span>`;
  const rows = per.map(
    (c) =>
      `<tr><td>${esc(c.label)}</td><td class="num">${pct(c.precision)}</td><td class="num">${pct(c.recall)}</td><td class="num">${pct(c.f1)} ${bar(c.f1)}</td><td class="num">${isNum(c.support) ? formatNumber(c.support) : "–"}</td></tr>`,
  );
  const n = per.length;
  const support = per.reduce((s, c) => s + (isNum(c.support) ? c.support : 0), 0);
  const mean = (k: "precision" | "recall" | "f1") => per.reduce((s, c) => s + (isNum(c[k]) ? c[k] : 0), 0) / n;
  const wmean = (k: "precision" | "recall" | "f1") =>
    support > 0
      ? per.reduce((s, c) => s + (isNum(c[k]) && isNum(c.support) ? c[k] * c.support : 0), 0) / support
      : Number.NaN;
  const foot = [
    `<tr><th>macro avg</th><td class="num">${pct(mean("precision"))}</td><td class="num">${pct(mean("recall"))}</td><td class="num">${pct(mean("f1"))}</td><td class="num">${formatNumber(support)}</td></tr>`,
    `<tr><th>weighted avg</th><td class="num">${pct(wmean("precision"))}</td><td class="num">${pct(wmean("recall"))}</td><td class="num">${pct(wmean("f1"))}</td><td class="num">${formatNumber(support)}</td></tr>`,
  ];
  return `<figure><table class="data perclass"><thead><tr><th>class</th><th class="num">precision</th><th class="num">recall</th><th class="num">F1</th><th class="num">support</th></tr></thead><tbody>${rows.join("")}</tbody><tfoot>${foot.join("")}</tfoot></table></figure>`;
}

/** A base64 PNG we are willing to put in a `src` attribute: PNG signature, base64 alphabet, ≤ 4 MB. */
function safePng(b64: unknown): string | undefined {
  if (typeof b64 !== "string" || b64.length > 4 * 1024 * 1024) return undefined;
  const s = b64.replace(/\s+/g, "");
  return s.startsWith("iVBORw0KGgo") && /^[A-Za-z0-9+/]+={0,2}$/.test(s) ? s : undefined;
}

/** The most confident mistakes, as cards: image or quoted text, true vs predicted, confidence. */
export function mistakesSection(run: RunRecord, limit = 12): string {
  const list = (Array.isArray(run.mistakes) ? run.mistakes : []).filter((m) => m && isNum(m.confidence));
  if (list.length === 0) return "";
  const top = [...list].sort((a, b) => b.confidence - a.confidence).slice(0, limit);
  const cards = top.map((m) => {
    const png = safePng(m.imagePng);
    const img = png ? `<img alt="example ${esc(m.index)}" src="data:image/png;base64,${png}">` : "";
    const text =
      typeof m.text === "string"
        ? `<blockquote title="${esc(truncate(m.text, 2000))}">${esc(truncate(m.text, 280))}</blockquote>`
        : "";
    return `<div class="mistake">${img}${text}<div class="verdict-line"><span class="pill true">true: ${esc(m.label)}</span> <span class="pill pred">predicted: ${esc(m.predicted)}</span></div><div class="muted">${esc(formatMetric("accuracy", m.confidence))} confident · example #${esc(m.index)}</div></div>`;
  });
  const lead = `The ${top.length} wrong predictions the model was most sure of${list.length > top.length ? `, out of ${formatNumber(list.length)} recorded` : ""}. These are often label noise, ambiguous inputs or a systematic confusion.`;
  return section("mistakes", "Most confident mistakes", `<div class="mistakes">${cards.join("")}</div>`, lead);
}

/** Generation samples before and after fine-tuning, same prompt. */
export function samplesSection(run: RunRecord): string {
  const list = (Array.isArray(run.samples) ? run.samples : []).filter((s) => s && typeof s.prompt === "string");
  if (list.length === 0) return "";
  const col = (name: string, text: unknown) =>
    typeof text === "string"
      ? `<div><div class="col-label">${name}</div><pre class="gen">${esc(truncate(text, 2000))}</pre></div>`
      : "";
  const items = list.map(
    (s) =>
      `<div class="sample"><div class="col-label">prompt</div><pre class="prompt">${esc(truncate(s.prompt, 1000))}</pre><div class="split even">${col("before fine-tuning", s.before)}${col("after fine-tuning", s.after)}</div></div>`,
  );
  return section(
    "samples",
    "Generation samples",
    items.join(""),
    "The same prompts and sampling settings, with the pre-trained and the fine-tuned weights.",
  );
}
