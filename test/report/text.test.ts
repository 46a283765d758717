import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import {
  formatCount,
  formatDelta,
  formatDuration,
  formatMetric,
  formatNumber,
  truncate,
} from "../../src/report/format.ts";
import { summaryText, writeSummary } from "../../src/report/text.ts";
import type { RunRecord } from "../../src/report/types.ts";
import { imageRun, lmRun, textRun } from "./fixture.ts";

describe("formatting", () => {
  test("numbers, metrics, deltas, counts, durations", () => {
    assert.equal(formatNumber(0.21345), "0.2135");
    assert.equal(formatNumber(1234), "1,234");
    assert.equal(formatNumber(2e-4), "2e-4");
    assert.equal(formatMetric("accuracy", 0.9123), "91.2%");
    assert.equal(formatMetric("test perplexity", 18.42), "18.42");
    assert.equal(formatDelta("test accuracy", 0.89, 0.81), "+8.0 pp");
    assert.equal(formatDelta("perplexity", 18.4, 41.2), "−22.8 (−55%)");
    assert.equal(formatCount(66_955_010), "67.0M");
    assert.equal(formatCount(950), "950");
    assert.equal(formatDuration(252), "4 min 12 s");
    assert.equal(formatDuration(3780), "1 h 03 min");
    assert.equal(formatDuration(0.84), "0.8 s");
  });

  test("truncate cuts on code points, at a word when one is near", () => {
    assert.equal(truncate("short", 10), "short");
    assert.equal(truncate("the quick brown fox jumps", 22), "the quick brown fox…");
    assert.equal(truncate("hello wonderful world", 12), "hello wonder…", "no word boundary near the cut");
    assert.equal(truncate("abcdefghijklmnop", 5), "abcde…");
    assert.equal(truncate("😀😀😀😀", 2), "😀😀…");
  });
});

describe("summaryText", () => {
  test("final and best eval, freeze check, timing, baseline table and verdict", () => {
    const run = imageRun();
    // Make the best accuracy come before the end so "best eval" is reported.
    const lastEval = run.metrics.filter((r) => r.split === "eval").at(-1);
    if (lastEval) lastEval.accuracy = 0.5;
    const s = summaryText(run);
    assert.match(s, /^tiny-resnet fine-tuned on digits 6–9/);
    assert.match(s, /300 steps, 3 epochs, 2 min 23 s on native \(avx2\) \(2 threads\), 67\.3 samples\/s/);
    assert.match(s, /final eval \(step 300\): loss 0\.3035, accuracy 50\.0%, F1 \(macro\) 92\.6%/);
    assert.match(s, /best eval: accuracy 94\.\d% at step 275/);
    assert.match(s, /trainable 2\.10M of 11\.2M parameters \(18\.8%\), freeze verified/);
    assert.match(s, /baselines \(test accuracy, higher is better\):/);
    assert.match(s, /\n {2}from scratch +46\.0% +\+43\.0 pp\n/);
    assert.match(
      s,
      /fine-tuned \(top-n\) beats the best baseline \(head-only \(frozen features\)\) by \+8\.0 pp test accuracy\./,
    );
    assert.ok(s.split("\n").length < 20);
  });

  test("lower-is-better baselines and a run that lost", () => {
    assert.match(
      summaryText(lmRun()),
      /LoRA fine-tuned beats the best baseline \(pre-trained, no fine-tuning\) by −22\.8 \(−55%\)/,
    );
    const run = lmRun();
    run.baselines = [
      { name: "ours", metric: "test perplexity", value: 50, ours: true },
      { name: "scratch", metric: "test perplexity", value: 40 },
    ];
    assert.match(summaryText(run), /ours does NOT beat scratch \(\+10 \(\+25%\) test perplexity\)/);
  });

  test("control characters from data cannot drive the terminal; an empty run still summarises", () => {
    const run = textRun();
    run.title = "evil\u001b[2J\u001b]0;pwned\u0007title";
    const s = summaryText(run);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
    assert.doesNotMatch(s, /[\u0000-\u0009\u000b-\u001f\u007f]/);
    const bare: RunRecord = {
      title: "",
      task: "causal-lm",
      model: { name: "m", modelType: "", task: "" },
      config: {},
      metrics: [],
    };
    assert.equal(summaryText(bare), "Untitled run\n  task causal-lm, model m\n");
  });

  test("without eval rows it reports the last train loss", () => {
    const run = lmRun();
    run.metrics = run.metrics.filter((r) => r.split === "train");
    assert.match(summaryText(run), /final train loss [\d.]+ \(step 200\)/);
  });
});

describe("writeSummary", () => {
  const dir = mkdtempSync(join(tmpdir(), "tunekit-summary-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("writes summary.txt atomically", async () => {
    const path = await writeSummary(dir, imageRun());
    assert.equal(readFileSync(path, "utf8"), summaryText(imageRun()));
    assert.deepEqual(readdirSync(dir), ["summary.txt"]);
  });
});
