/**
 * The report's stylesheet: system fonts only, CSS variables for the light and dark schemes (chart
 * colours included, via the `c0`…`c5` classes the SVG helpers emit) and print rules.
 */
export const STYLE = `
:root {
  --bg: #f6f7f9; --panel: #ffffff; --fg: #0f172a; --muted: #64748b; --border: #e2e8f0;
  --grid: #edf0f4; --axis: #94a3b8; --accent: #2563eb; --good: #15803d; --good-bg: #dcfce7;
  --bad: #b91c1c; --bad-bg: #fee2e2; --code-bg: #f1f5f9;
  --c0: #2563eb; --c1: #ea580c; --c2: #16a34a; --c3: #9333ea; --c4: #94a3b8; --c5: #db2777;
  color-scheme: light dark;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #0b1120; --panel: #111827; --fg: #e5e7eb; --muted: #94a3b8; --border: #1f2937;
    --grid: #1e293b; --axis: #475569; --accent: #60a5fa; --good: #4ade80; --good-bg: #14532d;
    --bad: #f87171; --bad-bg: #450a0a; --code-bg: #1e293b;
    --c0: #60a5fa; --c1: #fb923c; --c2: #4ade80; --c3: #c084fc; --c4: #64748b; --c5: #f472b6;
  }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 28px 48px; }
header { margin-bottom: 12px; }
.brand { color: var(--muted); font-size: 12px; letter-spacing: .08em; text-transform: uppercase; }
h1 { font-size: 26px; margin: 4px 0 10px; line-height: 1.25; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 0 0 12px; }
.chips { display: flex; flex-wrap: wrap; gap: 6px; }
.chip { background: var(--panel); border: 1px solid var(--border); border-radius: 999px; padding: 2px 10px;
  font-size: 12.5px; overflow-wrap: anywhere; }
.chip b { color: var(--muted); font-weight: 500; margin-right: 2px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 14px 0 18px; padding: 8px 0;
  border-top: 1px solid var(--border); border-bottom: 1px solid var(--border); font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; margin-bottom: 18px; }
.card { background: var(--panel); border: 1px solid var(--border); border-radius: 10px; padding: 12px 14px; }
.card-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card-value { font-size: 26px; font-weight: 650; font-variant-numeric: tabular-nums; margin-top: 2px; }
.card-sub { color: var(--muted); font-size: 12.5px; overflow-wrap: anywhere; }
.card.good .card-value { color: var(--good); }
.card.bad .card-value { color: var(--bad); }
section { background: var(--panel); border: 1px solid var(--border); border-radius: 12px; padding: 18px 20px;
  margin-bottom: 18px; }
.lead { color: var(--muted); margin: -6px 0 14px; }
.lead strong { color: var(--fg); }
figure { margin: 0; min-width: 0; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 6px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(440px, 1fr)); gap: 16px 24px; }
.split { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px 28px;
  align-items: start; margin-bottom: 8px; }
.split.even { grid-template-columns: 1fr 1fr; gap: 12px; }
svg.chart { width: 100%; height: auto; max-width: 100%; display: block; overflow: visible; }
svg.chart.bars { max-width: 620px; }
svg text { fill: var(--fg); font-family: inherit; }
svg .tick, svg .note, svg .muted { fill: var(--muted); }
svg .tick { font-size: 11px; font-variant-numeric: tabular-nums; }
svg .title { font-weight: 600; font-size: 13px; }
svg .label, svg .value { font-size: 12px; }
svg .value { font-variant-numeric: tabular-nums; font-weight: 600; }
svg .grid { stroke: var(--grid); }
svg .axis { stroke: var(--axis); }
svg .note { font-size: 11px; }
${[0, 1, 2, 3, 4, 5].map((i) => `svg .line.c${i} { stroke: var(--c${i}); } svg .dot.c${i}, svg .bar.c${i} { fill: var(--c${i}); }`).join("\n")}
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.data { width: 100%; font-size: 13px; }
table.data th, table.data td { padding: 5px 8px; border-bottom: 1px solid var(--border); text-align: left;
  vertical-align: middle; }
table.data thead th { color: var(--muted); font-weight: 600; font-size: 12px; border-bottom-width: 2px; }
table.data tfoot th, table.data tfoot td { font-weight: 600; border-bottom: none; border-top: 2px solid var(--border); }
table.data tr.ours td { font-weight: 650; }
table.data tr.ours td:first-child { box-shadow: inset 3px 0 0 var(--c0); }
table.data tr.frozen td { color: var(--muted); }
.num { text-align: right !important; white-space: nowrap; }
.muted { color: var(--muted); }
.verdict { border-radius: 8px; padding: 8px 12px; margin-bottom: 12px; }
.verdict:empty { display: none; }
.verdict.good { background: var(--good-bg); }
.verdict.bad { background: var(--bad-bg); }
.badge { display: inline-block; border-radius: 6px; padding: 1px 8px; font-weight: 600; font-size: 12.5px; margin-right: 6px; }
.badge.good { background: var(--good-bg); color: var(--good); }
.badge.bad { background: var(--bad-bg); color: var(--bad); }
.minibar { display: inline-block; width: 60px; height: 7px; border-radius: 4px; background: var(--grid);
  vertical-align: middle; margin-left: 6px; overflow: hidden; }
.minibar.wide { width: 100%; min-width: 80px; margin: 0; }
.minibar > span { display: block; height: 100%; background: var(--c0); }
.cm-wrap { overflow-x: auto; }
table.confusion { font-size: 13px; }
table.confusion td, table.confusion th { border: 1px solid var(--border); padding: 6px 9px; text-align: center; min-width: 44px; }
table.confusion.small td, table.confusion.small th { padding: 3px 4px; font-size: 11px; min-width: 28px; }
table.confusion th { font-weight: 600; font-size: 12px; }
table.confusion th.true { text-align: right; white-space: nowrap; }
table.confusion th.corner { color: var(--muted); font-weight: 500; font-size: 11px; white-space: nowrap; }
table.confusion .total { color: var(--muted); font-weight: 500; }
.mistakes { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 12px; }
.mistake { border: 1px solid var(--border); border-radius: 10px; padding: 10px 12px; font-size: 12.5px;
  display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.mistake img { width: 96px; height: 96px; object-fit: contain; image-rendering: pixelated;
  background: #000; border-radius: 6px; }
blockquote { margin: 0; padding: 2px 0 2px 10px; border-left: 3px solid var(--border); font-style: italic;
  overflow-wrap: anywhere; white-space: pre-wrap; }
.pill { display: inline-block; border-radius: 999px; padding: 0 8px; font-weight: 600; font-size: 12px; }
.pill.true { background: var(--good-bg); color: var(--good); }
.pill.pred { background: var(--bad-bg); color: var(--bad); }
.sample { margin-bottom: 14px; }
.col-label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; margin: 6px 0 3px; }
pre { background: var(--code-bg); border-radius: 8px; padding: 10px 12px; margin: 0; white-space: pre-wrap;
  overflow-wrap: anywhere; font: 12.5px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
code { font: 12.5px ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
pre.config { max-height: 480px; overflow: auto; }
details summary { cursor: pointer; color: var(--accent); margin-bottom: 8px; }
dl.kv { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 10px 18px; margin: 0 0 12px; }
.kv-item dt { color: var(--muted); font-size: 12px; }
.kv-item dd { margin: 0; font-size: 16px; font-weight: 600; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
@media (max-width: 640px) { .charts, .split, .split.even { grid-template-columns: 1fr; } main { padding: 16px; } }
@media print {
  :root { --bg: #fff; --panel: #fff; }
  body { font-size: 12px; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  section, .card { break-inside: avoid; border-color: #cbd5e1; }
  figure, tr, .mistake, .sample { break-inside: avoid; }
  .charts { grid-template-columns: 1fr 1fr; }
  pre.config { max-height: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
`;
