/**
 * `tunekit eval`: evaluates a model folder, a run folder or a LoRA adapter on a dataset (a text
 * file for classifiers and LMs, an image folder or list for image models). Prints the metrics
 * (loss, accuracy, macro precision/recall/F1 and per-class scores with the confusion matrix, or
 * perplexity) and writes them as JSON with `--out` (or prints JSON only with `--json`).
 *
 * @example
 * ```sh
 * tunekit eval --model runs/reviews --data test.csv --out runs/reviews/test-metrics.json
 * tunekit eval --model runs/photos/model --data ./photos-test --json
 * ```
 */
import { writeFileSync } from "node:fs";
import { Command } from "commander";
import { type ColumnMap, prepareTextData } from "../data/text/index.ts";
import { type EvalSource, evalSource, evaluate } from "../train/index.ts";
import {
  type InferenceModel,
  indexImages,
  loadForInference,
  posInt,
  relabel,
  setupBackend,
  UsageError,
} from "./common.ts";

const FIELDS = ["text", "text_pair", "label", "prompt", "completion", "messages", "tokens", "tags"];

function column(v: string, prev: ColumnMap = {}): ColumnMap {
  const [k, name] = v.split("=");
  if (!FIELDS.includes(k) || !name)
    throw new UsageError(`--column: expected field=column with field one of ${FIELDS.join(", ")}, got '${v}'`);
  return { ...prev, [k]: name };
}

interface Opts {
  model: string;
  data: string;
  base?: string;
  batchSize: number;
  maxLength?: number;
  column?: ColumnMap;
  skipInvalid?: boolean;
  json?: boolean;
  out?: string;
}

/** The evaluation source for `m` over the file or folder at `path`. */
export async function evalData(m: InferenceModel, o: Opts): Promise<{ src: EvalSource; skipped: number }> {
  if (m.task === "image-classification") {
    let ds = await indexImages(o.data);
    if (m.labels) ds = relabel(ds, m.labels);
    if (!m.preprocessor) throw new UsageError(`${m.source}: no image preprocessing found (preprocessor_config.json)`);
    const spec = { dataset: ds, transform: { preprocessor: m.preprocessor }, skipInvalid: o.skipInvalid ?? false };
    return { src: evalSource(spec, { batchSize: o.batchSize }), skipped: 0 };
  }
  if (!m.tokenizer) throw new UsageError(`${m.source}: no tokenizer.json; text evaluation needs the tokenizer`);
  const data = await prepareTextData({
    train: o.data,
    task: m.task === "causal-lm" || m.task === "token-classification" ? m.task : "text-classification",
    tokenizer: m.tokenizer,
    ...(m.task !== "causal-lm" && m.labels ? { labels: m.labels } : {}),
    ...(o.column ? { columns: o.column } : {}),
    ...(o.maxLength ? { maxLength: o.maxLength } : {}),
    validationSplit: 0,
    skipInvalid: o.skipInvalid ?? false,
  });
  return { src: evalSource(data.train, { batchSize: o.batchSize }), skipped: data.skipped.length };
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("tunekit eval")
    .description("Evaluate a model, run folder or adapter on a dataset; print metrics (and JSON)")
    .requiredOption("--model <path>", "model folder, run folder, adapter folder or hf:owner/name")
    .requiredOption("--data <path>", "data file (csv, tsv, jsonl, parquet) or image folder/list")
    .option("--base <model>", "base model for an adapter (default: the run's or the adapter's base)")
    .option("--batch-size <n>", "evaluation batch size", posInt, 16)
    .option("--max-length <n>", "truncation length in tokens", posInt)
    .option("--column <field=name>", "map a field to a column (repeatable), e.g. --column text=review", column)
    .option("--skip-invalid", "skip malformed records/images instead of stopping")
    .option("--json", "print the result as JSON only")
    .option("--out <file>", "also write the result as JSON to this file")
    .exitOverride();
  await cmd.parseAsync(argv, { from: "user" });
  const o = cmd.opts<Opts>();
  await setupBackend();
  const m = await loadForInference(o.model, o.base ? { base: o.base } : {});
  const { src, skipped } = await evalData(m, o);
  const res = await evaluate(m.model, src, m.task);
  await src.close?.();
  const out = {
    model: m.source,
    data: o.data,
    task: m.task,
    numExamples: res.numExamples,
    ...(skipped ? { skipped } : {}),
    metrics: res.metrics,
    ...(res.labels ? { labels: res.labels, confusion: res.confusion, perClass: res.perClass } : {}),
  };
  const json = `${JSON.stringify(out, null, 2)}\n`;
  if (o.out) writeFileSync(o.out, json);
  if (o.json) {
    process.stdout.write(json);
    return;
  }
  const lines = [
    `model: ${m.source}`,
    `data:  ${o.data} (${res.numExamples} examples${skipped ? `, ${skipped} skipped` : ""})`,
  ];
  for (const [k, v] of Object.entries(res.metrics)) lines.push(`${k.padEnd(15)} ${v.toFixed(4)}`);
  if (res.labels && res.perClass && res.confusion) {
    const w = Math.max(5, ...res.labels.map((l) => l.length));
    lines.push("", `${"class".padEnd(w)}  precision  recall      f1  support`);
    for (const p of res.perClass)
      lines.push(
        `${p.label.padEnd(w)}  ${p.precision.toFixed(4).padStart(9)}  ${p.recall.toFixed(4).padStart(6)}  ${p.f1.toFixed(4).padStart(6)}  ${String(p.support).padStart(7)}`,
      );
    lines.push("", `confusion (rows = true, columns = predicted): ${res.labels.join(", ")}`);
    for (const [i, row] of res.confusion.entries())
      lines.push(`${res.labels[i].padEnd(w)}  ${row.map((x) => String(x).padStart(5)).join(" ")}`);
  }
  if (o.out) lines.push("", `written: ${o.out}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}
