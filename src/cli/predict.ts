/**
 * `tunekit predict`: the top-k classes with probabilities for each input. Image models take image
 * files; text classifiers take `--input "text"` (repeatable) or text files (one input per line); a
 * token classifier tags each whitespace-separated word.
 * A causal LM is sent to `tunekit generate` (with `--input` as the prompt).
 *
 * @example
 * ```sh
 * tunekit predict --model runs/photos/model cat.jpg dog.png --top-k 3
 * tunekit predict --model runs/reviews --input "what a lovely film" --json
 * ```
 */
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { noGrad } from "../autograd/tape.ts";
import { transformImage } from "../data/images/index.ts";
import { outputSize } from "../data/images/preprocess.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type InferenceModel, loadForInference, posInt, setupBackend, UsageError } from "./common.ts";

interface Opts {
  model: string;
  base?: string;
  input?: string[];
  topK: number;
  batchSize: number;
  json?: boolean;
}

/** One input's prediction. */
export interface Prediction {
  input: string;
  top: { label: string; id: number; probability: number }[];
  /** Token classification: each whitespace-separated word with its top-k tags (from its first sub-token). */
  words?: { word: string; top: Prediction["top"] }[];
}

/** Softmax of row `r` of a (N, K) logits array, top `k` by probability. */
export function topKRow(
  v: Float64Array,
  r: number,
  K: number,
  k: number,
  labels?: readonly string[],
): Prediction["top"] {
  let mx = -Infinity;
  for (let j = 0; j < K; j++) mx = Math.max(mx, v[r * K + j]);
  const e = Array.from({ length: K }, (_, j) => Math.exp(v[r * K + j] - mx));
  const s = e.reduce((a, b) => a + b, 0);
  return e
    .map((x, id) => ({ label: labels?.[id] ?? `LABEL_${id}`, id, probability: x / s }))
    .sort((a, b) => b.probability - a.probability || a.id - b.id)
    .slice(0, k);
}

type Forward = { forward(x: Record<string, unknown>): { logits: Tensor } };

async function predictImages(m: InferenceModel, files: string[], o: Opts): Promise<Prediction[]> {
  const pre = m.preprocessor;
  if (!pre) throw new UsageError(`${m.source}: no image preprocessing found (preprocessor_config.json)`);
  const { height: H, width: W } = outputSize(pre);
  const out: Prediction[] = [];
  for (let i = 0; i < files.length; i += o.batchSize) {
    const chunk = files.slice(i, i + o.batchSize);
    const x = new Float32Array(chunk.length * 3 * H * W);
    for (const [j, f] of chunk.entries()) await transformImage(f, { preprocessor: pre }, undefined, x, j * 3 * H * W);
    const logits = noGrad(
      () =>
        (m.model as unknown as Forward).forward({ pixelValues: new Tensor(x, "float32", [chunk.length, 3, H, W]) })
          .logits,
    );
    const K = logits.shape[logits.ndim - 1];
    const v = logits.toFloat64Array();
    chunk.forEach((f, j) => {
      out.push({ input: f, top: topKRow(v, j, K, o.topK, m.labels) });
    });
  }
  return out;
}

function predictTexts(m: InferenceModel, texts: string[], o: Opts): Prediction[] {
  const tok = m.tokenizer;
  if (!tok) throw new UsageError(`${m.source}: no tokenizer.json; text prediction needs the tokenizer`);
  if (m.task === "token-classification") return texts.map((t) => predictWords(m, t, o));
  return texts.map((t) => {
    const ids = tok.encode(t).ids;
    const T = ids.length;
    const logits = noGrad(
      () =>
        (m.model as unknown as Forward).forward({
          inputIds: new Tensor(Int32Array.from(ids), "int32", [1, T]),
          attentionMask: new Tensor(new Int32Array(T).fill(1), "int32", [1, T]),
        }).logits,
    );
    const K = logits.shape[logits.ndim - 1];
    return { input: t, top: topKRow(logits.toFloat64Array(), 0, K, o.topK, m.labels) };
  });
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("tunekit predict")
    .description("Top-k classes with probabilities for images (files) or texts (--input or text files)")
    .argument("[files...]", "image files (image models) or text files with one input per line (text classifiers)")
    .requiredOption("--model <path>", "model folder, run folder (its model/) or LoRA run/adapter folder")
    .option("--base <model>", "base model for an adapter")
    .option("--input <text>", "text to classify (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
    .option("--top-k <k>", "classes to show per input", posInt, 5)
    .option("--batch-size <n>", "images per forward pass", posInt, 16)
    .option("--json", "print one JSON object per input (JSON lines)")
    .exitOverride();
  await cmd.parseAsync(argv, { from: "user" });
  const o = cmd.opts<Opts>();
  const files = cmd.args;
  await setupBackend();
  const m = await loadForInference(o.model, o.base ? { base: o.base } : {});
  if (m.task === "causal-lm") {
    const gen = ["--model", o.model, ...(o.input?.length ? ["--prompt", o.input[0]] : [])];
    if (!o.input?.length)
      throw new UsageError(`${o.model} is a causal LM: use 'tunekit generate --model ${o.model} --prompt "..."'`);
    process.stderr.write(`note: ${o.model} is a causal LM; running 'tunekit generate ${gen.join(" ")}'\n`);
    return (await import("./generate.ts")).main(gen);
  }
  let preds: Prediction[];
  if (m.task === "image-classification") {
    if (o.input?.length) throw new UsageError("--input is for text classifiers; give image files");
    if (!files.length) throw new UsageError("no images: tunekit predict --model <dir> img1.jpg img2.png");
    preds = await predictImages(m, files, o);
  } else {
    const texts = [...(o.input ?? [])];
    for (const f of files)
      texts.push(
        ...readFileSync(f, "utf8")
          .split(/\r?\n/)
          .filter((l) => l.trim() !== ""),
      );
    if (!texts.length) throw new UsageError('no input: --input "text" or a text file with one input per line');
    preds = predictTexts(m, texts, o);
  }
  if (o.json) {
    process.stdout.write(preds.map((p) => `${JSON.stringify(p)}\n`).join(""));
    return;
  }
  const lines: string[] = [];
  for (const p of preds) {
    lines.push(p.input);
    for (const t of p.top) lines.push(`  ${(100 * t.probability).toFixed(2).padStart(6)}%  ${t.label}`);
    for (const w of p.words ?? [])
      lines.push(`  ${w.word}\t${w.top.map((t) => `${t.label} ${(100 * t.probability).toFixed(1)}%`).join("  ")}`);
  }
  process.stdout.write(`${lines.join("\n")}\n`);
}

/** Tags per word, read at each word's first sub-token (as the trainer labels them). */
function predictWords(m: InferenceModel, text: string, o: Opts): Prediction {
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0) return { input: text, top: [], words: [] };
  const enc = m.tokenizer!.encodeWords(words);
  const T = enc.ids.length;
  const logits = noGrad(
    () =>
      (m.model as unknown as Forward).forward({
        inputIds: new Tensor(Int32Array.from(enc.ids), "int32", [1, T]),
        attentionMask: new Tensor(new Int32Array(T).fill(1), "int32", [1, T]),
        ...(enc.tokenTypeIds ? { tokenTypeIds: new Tensor(Int32Array.from(enc.tokenTypeIds), "int32", [1, T]) } : {}),
      }).logits,
  );
  const K = logits.shape[logits.ndim - 1];
  const v = logits.toFloat64Array();
  const out: { word: string; top: Prediction["top"] }[] = [];
  enc.wordIds.forEach((w, t) => {
    if (w !== null && (t === 0 || enc.wordIds[t - 1] !== w))
      out.push({ word: words[w]!, top: topKRow(v, t, K, o.topK, m.labels) });
  });
  return { input: text, top: [], words: out };
}
