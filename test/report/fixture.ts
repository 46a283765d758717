/**
 * Realistic run records for the report tests, deterministic (seeded). Run this file directly to
 * write a sample report for a person to look at:
 *   node --import tsx test/report/fixture.ts /tmp/sample-run [images|text|lm]
 */
import type { MetricRow, RunRecord } from "../../src/report/types.ts";
import { encodePng } from "./png.ts";

/** Mulberry32: small seeded RNG so fixtures are identical on every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A 28×28 greyscale PNG with a ring or a bar (looks like a 0 or a 1), base64. */
export function digitPng(kind: number, seed = 1): string {
  const r = rng(seed);
  const data = new Uint8Array(28 * 28 * 4);
  for (let y = 0; y < 28; y++) {
    for (let x = 0; x < 28; x++) {
      const d = Math.hypot(x - 13.5, (y - 13.5) * 0.8);
      const on = kind % 2 === 0 ? Math.abs(d - 8) < 2.2 : Math.abs(x - 14 - (y - 14) * 0.2) < 2.2 && y > 4 && y < 24;
      const v = on ? 200 + Math.floor(r() * 55) : Math.floor(r() * 20);
      const i = (y * 28 + x) * 4;
      data[i] = data[i + 1] = data[i + 2] = v;
      data[i + 3] = 255;
    }
  }
  return encodePng(28, 28, data).toString("base64");
}

/** Train rows every step (noisy, decaying loss, warmup + cosine lr) and eval rows every `evalEvery`. */
export function metricRows(steps: number, evalEvery: number, opts: { lm?: boolean } = {}): MetricRow[] {
  const r = rng(7);
  const rows: MetricRow[] = [];
  const stepsPerEpoch = steps / 3;
  for (let s = 1; s <= steps; s++) {
    const base = 0.15 + 2.1 * Math.exp(-s / (steps / 6));
    const warm = Math.min(1, s / (steps * 0.06));
    const lr = 5e-4 * warm * 0.5 * (1 + Math.cos((Math.PI * s) / steps));
    rows.push({
      step: s,
      epoch: Number((s / stepsPerEpoch).toFixed(3)),
      split: "train",
      loss: base * (0.8 + 0.4 * r()),
      lr,
    });
    if (s % evalEvery === 0) {
      const loss = 0.25 + 2.0 * Math.exp(-s / (steps / 5)) + (s > steps * 0.7 ? 0.04 : 0);
      const row: MetricRow = { step: s, epoch: Number((s / stepsPerEpoch).toFixed(3)), split: "eval", loss };
      if (opts.lm) row.perplexity = Math.exp(loss + 1.2);
      else {
        row.accuracy = Math.min(0.97, 0.35 + 0.6 * (1 - Math.exp(-s / (steps / 5))));
        row.f1Macro = row.accuracy - 0.02;
      }
      rows.push(row);
    }
  }
  return rows;
}

const base = {
  model: { name: "models/tiny-resnet", modelType: "resnet", task: "image-classification" },
  config: {
    model: "models/tiny-resnet",
    strategy: "top-n",
    train: { epochs: 3, batch_size: 32, seed: 42 },
    optimizer: { name: "adamw", lr: 5e-4, weight_decay: 0.01 },
    schedule: { warmup_ratio: 0.06, kind: "cosine" },
  },
};

/** An image-classification run with every section filled in. */
export function imageRun(): RunRecord {
  const labels = ["six", "seven", "eight", "nine"];
  return {
    title: "tiny-resnet fine-tuned on digits 6–9 (20 per class)",
    task: "image-classification",
    strategy: "top-n (layer4 + fc)",
    createdAt: "2025-01-15T10:32:00Z",
    ...base,
    metrics: metricRows(300, 25),
    labels,
    confusion: [
      [88, 3, 6, 3],
      [1, 95, 1, 3],
      [7, 2, 84, 7],
      [2, 5, 4, 89],
    ],
    mistakes: Array.from({ length: 16 }, (_, i) => ({
      index: 1000 + i * 37,
      label: labels[i % 4],
      predicted: labels[(i + 2) % 4],
      confidence: 0.55 + ((i * 7) % 16) / 38,
      imagePng: digitPng(i, i + 1),
    })),
    freezeAudit: {
      trainable: 2_102_276,
      total: 11_178_564,
      verified: true,
      note: "Frozen BatchNorm layers run in inference mode.",
      byModule: [
        { name: "conv1", trainable: 0, frozen: 9_408 },
        { name: "bn1", trainable: 0, frozen: 128 },
        { name: "layer1", trainable: 0, frozen: 147_968 },
        { name: "layer2", trainable: 0, frozen: 525_568 },
        { name: "layer3", trainable: 0, frozen: 2_099_712 },
        { name: "layer4", trainable: 2_100_224, frozen: 6_295_552 },
        { name: "fc", trainable: 2_052, frozen: 0 },
      ],
    },
    dataset: { train: 80, eval: 400, test: 400, classCounts: { six: 20, seven: 20, eight: 20, nine: 20 } },
    timing: {
      totalSeconds: 142.6,
      stepsPerSecond: 2.1,
      samplesPerSecond: 67.3,
      dataWaitSeconds: 3.2,
      backend: "native (avx2)",
      threads: 2,
    },
    baselines: [
      { name: "fine-tuned (top-n)", metric: "test accuracy", value: 0.89, ours: true },
      { name: "head-only (frozen features)", metric: "test accuracy", value: 0.81 },
      { name: "from scratch", metric: "test accuracy", value: 0.46, note: "same architecture, random init" },
    ],
  };
}

/** A text-classification run whose user strings try to break out of the HTML. */
export function textRun(): RunRecord {
  const labels = ["ham", "spam"];
  return {
    title: "spam filter <script>alert('title')</script>",
    task: "text-classification",
    strategy: "lora",
    ...base,
    model: { name: "models/tiny-llama", modelType: "llama", task: "text-classification" },
    metrics: metricRows(120, 20),
    labels,
    confusion: [
      [410, 12],
      [25, 153],
    ],
    mistakes: [
      {
        index: 4,
        label: "spam",
        predicted: "ham",
        confidence: 0.97,
        text: `<script>alert("xss")</script> Click here to claim your prize & "win" big`,
      },
      { index: 9, label: "ham", predicted: "spam", confidence: 0.81, text: `${"Dear friend, ".repeat(60)}the end` },
      {
        index: 12,
        label: "ham",
        predicted: "spam",
        confidence: 0.64,
        text: "<img src=x onerror=alert(1)>",
        imagePng: 'not-base64" onerror="alert(1)',
      },
    ],
    dataset: {
      train: 2400,
      eval: 600,
      test: 600,
      classCounts: { ham: 1700, spam: 700 },
      truncated: 37,
      lengthStats: { min: 4, mean: 212.5, p50: 160, p95: 498, max: 512 },
    },
    baselines: [
      { name: "fine-tuned (LoRA)", metric: "test accuracy", value: 0.938, ours: true },
      { name: "from scratch", metric: "test accuracy", value: 0.874 },
    ],
  };
}

/** A causal-LM run: perplexity, generation samples, no classification sections. */
export function lmRun(): RunRecord {
  return {
    title: "tiny-llama LoRA on a style corpus",
    task: "causal-lm",
    ...base,
    model: { name: "models/tiny-llama", modelType: "llama", task: "causal-lm" },
    metrics: metricRows(200, 40, { lm: true }),
    samples: [
      {
        prompt: "Once upon a time",
        before: "Once upon a time the the of and",
        after: "Once upon a time, in a quiet harbour town, there lived a keeper of lights.",
      },
      { prompt: "<b>bold</b> prompt", before: "</pre><script>alert(2)</script>", after: "plain & simple" },
    ],
    baselines: [
      { name: "LoRA fine-tuned", metric: "test perplexity", value: 18.4 },
      { name: "pre-trained, no fine-tuning", metric: "test perplexity", value: 41.2 },
      { name: "from scratch", metric: "test perplexity", value: 96.0 },
    ],
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { writeReport } = await import("../../src/report/html.ts");
  const { summaryText } = await import("../../src/report/text.ts");
  const which = process.argv[3] ?? "images";
  const run = which === "text" ? textRun() : which === "lm" ? lmRun() : imageRun();
  console.log(await writeReport(process.argv[2] ?? "/tmp/sample-run", run));
  process.stdout.write(summaryText(run));
}
