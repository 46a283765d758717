/**
 * `tunekit merge`: folds a LoRA adapter into its base model (PEFT `merge_and_unload`) and writes a
 * full model folder (config.json + model.safetensors + tokenizer, and the preprocessor for image
 * models) that `transformers` and `tunekit` load without PEFT.
 *
 * @example
 * ```sh
 * tunekit merge --adapter runs/chat-lora --out ./chat-merged            # base from the run
 * tunekit merge --adapter ./adapter --base ./SmolLM2-135M --out ./merged --dtype bfloat16
 * ```
 */
import { existsSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Command, Option } from "commander";
import { saveModel } from "../models/pretrained.ts";
import { loraHandleOf } from "../peft/index.ts";
import { loadForInference, preprocessorJson, setupBackend, UsageError } from "./common.ts";

interface Opts {
  adapter: string;
  base?: string;
  out: string;
  dtype?: "float32" | "bfloat16" | "float16";
  force?: boolean;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("tunekit merge")
    .description("Merge a LoRA adapter into its base model and write a full model folder")
    .requiredOption("--adapter <path>", "a run folder with adapter/, or a PEFT adapter folder")
    .option("--base <model>", "base model (default: the run's model, else base_model_name_or_path)")
    .requiredOption("--out <dir>", "output model folder")
    .addOption(new Option("--dtype <dtype>", "store weights as").choices(["float32", "bfloat16", "float16"]))
    .option("--force", "write into a folder that already holds a model")
    .exitOverride();
  await cmd.parseAsync(argv, { from: "user" });
  const o = cmd.opts<Opts>();
  const a = resolve(o.adapter);
  const adapterDir = existsSync(join(a, "adapter", "adapter_config.json")) ? join(a, "adapter") : a;
  if (!existsSync(join(adapterDir, "adapter_config.json")))
    throw new UsageError(`${o.adapter}: no adapter_config.json (expected a PEFT adapter folder or a LoRA run folder)`);
  if (existsSync(join(o.out, "model.safetensors")) && !o.force)
    throw new UsageError(`${o.out} already holds a model; use --force to overwrite`);
  await setupBackend();
  const m = await loadForInference(adapterDir, o.base ? { base: o.base } : {});
  const handle = loraHandleOf(m.model);
  if (!handle) throw new UsageError(`${o.adapter}: loading gave no LoRA adapter`);
  const merged = handle.merge();
  await saveModel(merged as typeof m.model, o.out, o.dtype ? { dtype: o.dtype } : {});
  if (m.preprocessor)
    writeFileSync(
      join(o.out, "preprocessor_config.json"),
      `${JSON.stringify(preprocessorJson(m.preprocessor), null, 2)}\n`,
    );
  process.stdout.write(`merged ${handle.layers.size} LoRA layer(s) of ${m.source} into ${o.out}\n`);
}
