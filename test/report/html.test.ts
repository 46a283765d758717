import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { renderReport, writeReport } from "../../src/report/html.ts";
import type { RunRecord } from "../../src/report/types.ts";
import { imageRun, lmRun, metricRows, textRun } from "./fixture.ts";

const ALL = ["baselines", "curves", "confusion", "mistakes", "samples", "freeze", "dataset", "timing", "config"];

function sectionIds(html: string): string[] {
  return [...html.matchAll(/<section id="([^"]+)"/g)].map((m) => m[1]);
}

/** Each `<path>` of a chart: its series name, declared point count and the coordinates in `d`. */
function chartPaths(html: string): { series: string; declared: number; actual: number }[] {
  return [...html.matchAll(/<path [^>]*data-series="([^"]*)" data-points="(\d+)" d="([^"]*)"/g)].map((m) => ({
    series: m[1],
    declared: Number(m[2]),
    actual: m[3].split(" ").length,
  }));
}

/** The HTML of one section. */
function sectionHtml(html: string, id: string): string {
  const start = html.indexOf(`<section id="${id}"`);
  assert.ok(start >= 0, `section ${id} missing`);
  return html.slice(start, html.indexOf("</section>", start));
}

describe("renderReport", () => {
  test("a full image-classification run has every section but samples, in order, with a nav", () => {
    const html = renderReport(imageRun());
    assert.deepEqual(
      sectionIds(html),
      ALL.filter((s) => s !== "samples"),
    );
    for (const id of sectionIds(html)) assert.match(html, new RegExp(`<nav>.*<a href="#${id}">`));
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /id="key-numbers"/);
  });

  test("sections without data are omitted (causal LM: no confusion, mistakes, freeze, dataset, timing)", () => {
    assert.deepEqual(sectionIds(renderReport(lmRun())), ["baselines", "curves", "samples", "config"]);
    const bare: RunRecord = {
      title: "bare",
      task: "causal-lm",
      model: { name: "m", modelType: "llama", task: "causal-lm" },
      config: {},
      metrics: [],
    };
    const html = renderReport(bare);
    assert.deepEqual(sectionIds(html), []);
    assert.doesNotMatch(html, /<nav>|<svg/);
  });

  test("self-contained: no URL, no script, CSP forbids network and script", () => {
    for (const run of [imageRun(), textRun(), lmRun()]) {
      const html = renderReport(run);
      assert.doesNotMatch(html, /https?:\/\//i);
      assert.doesNotMatch(html, /<script/i);
      assert.doesNotMatch(html, /<link|@import|url\(/i);
      assert.match(
        html,
        /<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">/,
      );
      for (const m of html.matchAll(/\ssrc="([^"]*)"/g))
        assert.match(m[1], /^data:image\/png;base64,iVBORw0KGgo[A-Za-z0-9+/=]+$/);
    }
  });

  test("user strings are escaped everywhere (title, texts, samples, labels, config)", () => {
    const run = textRun();
    run.labels = ["<i>ham</i>", "spam"];
    run.config = { note: "</pre><script>alert(3)</script>" };
    const html = renderReport(run);
    assert.doesNotMatch(html, /<script|<img src=x|<i>ham/i);
    assert.match(html, /<h1>spam filter &lt;script&gt;alert\(&#39;title&#39;\)&lt;\/script&gt;<\/h1>/);
    assert.match(html, /<title>spam filter &lt;script&gt;/);
    assert.match(
      html,
      /&lt;script&gt;alert\(&quot;xss&quot;\)&lt;\/script&gt; Click here to claim your prize &amp; &quot;win&quot; big/,
    );
    assert.match(html, /&lt;\/pre&gt;&lt;script&gt;alert\(3\)/);
    const lm = renderReport(lmRun());
    assert.match(lm, /&lt;\/pre&gt;&lt;script&gt;alert\(2\)&lt;\/script&gt;/);
    assert.match(lm, /&lt;b&gt;bold&lt;\/b&gt; prompt/);
  });

  test("curves: one path per series with as many points as logged rows", () => {
    const run = imageRun();
    const html = renderReport(run);
    const train = run.metrics.filter((r) => r.split === "train").length;
    const evals = run.metrics.filter((r) => r.split === "eval").length;
    const paths = chartPaths(sectionHtml(html, "curves"));
    for (const p of paths) assert.equal(p.actual, p.declared, `${p.series}: d has ${p.actual} points`);
    assert.deepEqual(
      paths.map((p) => [p.series, p.declared]),
      [
        ["train (raw)", train],
        ["train", train],
        ["eval", evals],
        ["lr", train],
        ["eval", evals],
        ["eval", evals],
      ],
    );
    assert.match(sectionHtml(html, "curves"), /<svg class="chart lines[^"]*"[^>]*aria-label="loss"/);
    assert.match(sectionHtml(html, "curves"), /aria-label="F1 \(macro\)"/);
  });

  test("confusion matrix: a heat-coloured cell per entry, per-class metrics derived when absent", () => {
    const html = sectionHtml(renderReport(imageRun()), "confusion");
    assert.equal((html.match(/<td style="background:rgba\(37,99,235/g) ?? []).length, 4, "diagonal cells");
    assert.equal((html.match(/<td style="background:rgba\(234,88,12/g) ?? []).length, 12, "off-diagonal cells");
    // six: tp 88, predicted as six 88+1+7+2 = 98, support 100.
    assert.match(html, /<td>six<\/td><td class="num">89\.8%<\/td><td class="num">88\.0%<\/td>/);
    assert.match(html, /Accuracy 89\.0%/);
  });

  test("many classes: top confusions instead of the full matrix", () => {
    const run = imageRun();
    const n = 50;
    run.labels = Array.from({ length: n }, (_, i) => `c${i}`);
    run.confusion = Array.from({ length: n }, (_, i) =>
      Array.from({ length: n }, (_, j) => (i === j ? 20 : (i + j) % 7 === 0 ? 1 : 0)),
    );
    const html = sectionHtml(renderReport(run), "confusion");
    assert.doesNotMatch(html, /class="confusion/);
    assert.match(html, /50 classes: the 20 most frequent confusions/);
  });

  test("mistakes: most confident first, at most 12, bad image data dropped, long text truncated", () => {
    const html = sectionHtml(renderReport(imageRun()), "mistakes");
    const conf = [...html.matchAll(/([\d.]+)% confident/g)].map((m) => Number(m[1]));
    assert.equal(conf.length, 12);
    assert.deepEqual(
      conf,
      [...conf].sort((a, b) => b - a),
    );
    assert.equal((html.match(/<img /g) ?? []).length, 12);
    const text = sectionHtml(renderReport(textRun()), "mistakes");
    assert.equal((text.match(/<img /g) ?? []).length, 0, "non-PNG base64 is not embedded");
    const quote = text.match(/<blockquote[^>]*>(Dear friend[^<]*)<\/blockquote>/);
    assert.ok(quote, "long text quoted");
    assert.ok(quote[1].endsWith("…") && quote[1].length <= 281, quote[1]);
  });

  test("baselines: ours marked, gain over the best alternative, lower-is-better metrics", () => {
    const img = sectionHtml(renderReport(imageRun()), "baselines");
    assert.match(img, /beats the best alternative \(head-only \(frozen features\)\) by <strong>\+8\.0 pp<\/strong>/);
    assert.equal((img.match(/<rect /g) ?? []).length, 3);
    const lm = sectionHtml(renderReport(lmRun()), "baselines");
    assert.match(
      lm,
      /LoRA fine-tuned beats the best alternative \(pre-trained, no fine-tuning\) by <strong>−22\.8 \(−55%\)<\/strong>/,
    );
    const worse = lmRun();
    worse.baselines = [
      { name: "ours", metric: "test perplexity", value: 50 },
      { name: "scratch", metric: "test perplexity", value: 40 },
    ];
    assert.match(renderReport(worse), /class="verdict bad">ours does <strong>not<\/strong> beat/);
  });

  test("freeze audit, dataset and timing show the numbers", () => {
    const html = renderReport(imageRun());
    assert.match(
      sectionHtml(html, "freeze"),
      /✓ verified.*<strong>2\.10M<\/strong> of 11\.2M parameters trainable \(18\.8%\)/,
    );
    assert.equal((sectionHtml(html, "freeze").match(/<tr class="/g) ?? []).length, 7);
    assert.match(sectionHtml(html, "dataset"), /<dt>train examples<\/dt><dd>80<\/dd>/);
    assert.match(sectionHtml(html, "timing"), /<dd>2 min 23 s<\/dd>.*<dd>native \(avx2\)<\/dd>/);
    const unverified = imageRun();
    if (unverified.freezeAudit) unverified.freezeAudit.verified = false;
    assert.match(renderReport(unverified), /✗ not verified/);
  });

  test("a long run (300k logged steps) stays small: every series downsampled to 600 points", () => {
    const run = lmRun();
    run.metrics = metricRows(300_000, 5_000, { lm: true });
    const html = renderReport(run);
    assert.ok(html.length < 150_000, `${html.length} bytes`);
    for (const p of chartPaths(html)) assert.ok(p.declared <= 600 && p.actual === p.declared, JSON.stringify(p));
  });

  test("malformed values do not throw: NaN/null metrics, ragged confusion, missing fields", () => {
    const run = imageRun() as unknown as Record<string, unknown>;
    (run.metrics as Record<string, unknown>[]).push(
      { step: 301, epoch: 3, split: "train", loss: Number.NaN },
      { step: "x", split: "eval" },
      { step: 302, epoch: 3, split: "eval", loss: null },
    );
    run.confusion = [[1, 2], [3]];
    run.mistakes = [{ index: 1, label: "a", predicted: "b", confidence: "high" }];
    run.timing = { totalSeconds: "soon" };
    run.dataset = { train: 10, classCounts: { a: "many" } };
    const html = renderReport(run as unknown as RunRecord);
    assert.ok(!sectionIds(html).includes("confusion") || !/class="confusion/.test(html));
    assert.ok(!sectionIds(html).includes("mistakes"));
    assert.ok(!sectionIds(html).includes("timing"));
    assert.match(html, /non-finite value/);
  });
});

describe("writeReport", () => {
  const dir = mkdtempSync(join(tmpdir(), "tunekit-report-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("writes report.html atomically, creating the folder, replacing an old report", async () => {
    const out = join(dir, "run", "nested");
    const path = await writeReport(out, lmRun());
    assert.equal(path, join(out, "report.html"));
    assert.equal(readFileSync(path, "utf8"), renderReport(lmRun()));
    writeFileSync(path, "old");
    await writeReport(out, imageRun());
    assert.equal(readFileSync(path, "utf8"), renderReport(imageRun()));
    assert.deepEqual(readdirSync(out), ["report.html"], "no temp file left behind");
  });
});
