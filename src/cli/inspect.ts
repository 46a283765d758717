/**
 * `tunekit inspect <model>`: what a model folder (or `hf:` id) holds, without loading the weights:
 * architecture and head, parameter count by module, stored dtypes, tied weights, tokenizer.
 *
 * @example
 * ```sh
 * tunekit inspect ./SmolLM2-135M
 * tunekit inspect hf:openai-community/gpt2 --json
 * ```
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { readJsonFile } from "../formats/hf-config.ts";
import { resolveModelPath } from "../formats/hub.ts";
import { readSafetensorsHeader, readSafetensorsIndex, SINGLE_FILE } from "../formats/safetensors.ts";
import { getArchitecture } from "../models/index.ts";
import { taskFromConfig } from "../models/pretrained.ts";
import { Tokenizer } from "../tokenize/tokenizer.ts";

export interface ModelSummary {
  dir: string;
  modelType: string;
  architecture: string | undefined;
  task: string;
  head: string;
  parameters: number;
  /** Parameter elements by module (path up to the first layer index, at most two levels). */
  byModule: Record<string, number>;
  /** Stored tensor count and elements by safetensors dtype. */
  dtypes: Record<string, { tensors: number; elements: number }>;
  tied: string[];
  files: string[];
  tokenizer: null | {
    type: string;
    vocabSize: number;
    specialTokens: Record<string, string>;
    chatTemplate: boolean;
    modelMaxLength: number | undefined;
  };
}

/** Module group of a parameter name: `transformer.h.0.attn.c_attn.weight` -> `transformer.h`. */
export function moduleGroup(name: string): string {
  const segs = name.split(".").slice(0, -1);
  const out: string[] = [];
  for (const s of segs) {
    if (/^\d+$/.test(s) || out.length === 2) break;
    out.push(s);
  }
  return out.join(".") || name;
}

/** Reads config.json, the safetensors headers and the tokenizer of a model folder. */
export async function summarize(pathOrId: string): Promise<ModelSummary> {
  const dir = await resolveModelPath(pathOrId);
  const raw = (await readJsonFile(join(dir, "config.json"), { maxBytes: 4 << 20 })) as Record<string, unknown>;
  const modelType = String(raw.model_type ?? raw.architecture);
  const arch = getArchitecture(modelType, join(dir, "config.json"));
  const task = taskFromConfig(raw, arch);
  const model = arch.create(raw, task, join(dir, "config.json"), { skipInit: true });
  const files = existsSync(join(dir, SINGLE_FILE))
    ? [join(dir, SINGLE_FILE)]
    : [...(await readSafetensorsIndex(dir)).shards.values()];
  const byModule: Record<string, number> = {};
  // Groups in the model's own order (headers list tensors alphabetically).
  for (const [name] of model.namedParameters()) if (!model.tiedKeys?.includes(name)) byModule[moduleGroup(name)] = 0;
  const dtypes: Record<string, { tensors: number; elements: number }> = {};
  let parameters = 0;
  for (const f of files) {
    for (const [name, t] of (await readSafetensorsHeader(f)).tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      parameters += n;
      byModule[moduleGroup(name)] = (byModule[moduleGroup(name)] ?? 0) + n;
      dtypes[t.dtype] ??= { tensors: 0, elements: 0 };
      const d = dtypes[t.dtype];
      d.tensors++;
      d.elements += n;
    }
  }
  for (const k of Object.keys(byModule)) if (byModule[k] === 0) delete byModule[k];
  const tied = [...(model.tiedKeys ?? [])];
  const cfg = model.config;
  const head =
    task === "causal-lm"
      ? `lm_head (${tied.length ? "tied to the input embedding" : "untied"})`
      : task === "sequence-classification" || task === "token-classification" || task === "image-classification"
        ? `${task} over ${Object.keys((cfg.id2label as object) ?? {}).length} labels: ${Object.values((cfg.id2label as object) ?? {}).join(", ")}`
        : task;
  let tokenizer: ModelSummary["tokenizer"] = null;
  if (existsSync(join(dir, "tokenizer.json"))) {
    const tok = await Tokenizer.fromDir(dir);
    const specials = Object.fromEntries(Object.entries(tok.specialTokens).filter(([, v]) => v !== undefined)) as Record<
      string,
      string
    >;
    tokenizer = {
      type: String((tok.tokenizerJson.model as { type?: string }).type ?? "?"),
      vocabSize: tok.vocabSize,
      specialTokens: specials,
      chatTemplate: typeof tok.config.chat_template === "string",
      modelMaxLength: tok.modelMaxLength,
    };
  }
  const architecture = Array.isArray(raw.architectures) ? String(raw.architectures[0]) : undefined;
  return {
    dir,
    modelType,
    architecture,
    task,
    head,
    parameters,
    byModule,
    dtypes,
    tied,
    files: files.map((f) => f.slice(dir.length + 1)),
    tokenizer,
  };
}

const fmt = (n: number) =>
  n >= 1e9
    ? `${(n / 1e9).toFixed(2)}B`
    : n >= 1e6
      ? `${(n / 1e6).toFixed(2)}M`
      : n >= 1e4
        ? `${(n / 1e3).toFixed(1)}K`
        : String(n);

/** Human-readable lines for a summary. */
export function formatSummary(s: ModelSummary): string {
  const lines = [
    `model:        ${s.dir}`,
    `architecture: ${s.architecture ?? "?"} (model_type ${s.modelType})`,
    `task/head:    ${s.task}; ${s.head}`,
  ];
  lines.push(
    `parameters:   ${fmt(s.parameters)} (${s.parameters.toLocaleString("en-US")}) stored in ${s.files.join(", ")}`,
  );
  const w = Math.max(...Object.keys(s.byModule).map((k) => k.length));
  for (const [k, n] of Object.entries(s.byModule))
    lines.push(`  ${k.padEnd(w)}  ${fmt(n).padStart(8)}  ${((100 * n) / s.parameters).toFixed(1).padStart(5)}%`);
  if (s.tied.length) lines.push(`  (tied, not stored: ${s.tied.join(", ")})`);
  lines.push(
    `dtypes:       ${Object.entries(s.dtypes)
      .map(([d, v]) => `${d} ${v.tensors} tensors / ${fmt(v.elements)}`)
      .join(", ")}`,
  );
  if (!s.tokenizer) lines.push("tokenizer:    none (no tokenizer.json)");
  else {
    const t = s.tokenizer;
    const sp = Object.entries(t.specialTokens)
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(" ");
    lines.push(
      `tokenizer:    ${t.type}, vocab ${t.vocabSize}${t.modelMaxLength ? `, max length ${t.modelMaxLength}` : ""}, chat template ${t.chatTemplate ? "yes" : "no"}`,
    );
    if (sp) lines.push(`  special: ${sp}`);
  }
  return lines.join("\n");
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("tunekit inspect")
    .description("Show a model's architecture, parameter count by module, dtypes, head and tokenizer")
    .argument("<model>", "model folder or hf:owner/name[@revision]")
    .option("--json", "print the summary as JSON")
    .exitOverride();
  await cmd.parseAsync(argv, { from: "user" });
  const s = await summarize(cmd.args[0]);
  process.stdout.write(`${cmd.opts().json ? JSON.stringify(s, null, 2) : formatSummary(s)}\n`);
}
