/**
 * `tunekit generate`: text from a prompt with a causal LM, streamed as it is produced.
 *
 * @example
 * ```sh
 * tunekit generate --model ./SmolLM2-135M --prompt "Once upon a time" --max-new-tokens 40 --temperature 0.8 --top-p 0.9 --seed 1
 * tunekit generate --model ./gpt2 --prompt-ids 9,82,102 --max-new-tokens 8 --json
 * ```
 */
import { Command, InvalidArgumentError } from "commander";
import { type GenerateOptions, generate } from "../models/generate.ts";
import type { DecoderLM } from "../models/heads.ts";
import { type LoadedModel, loadPretrained } from "../models/pretrained.ts";
import { ValueError } from "../tensor/errors.ts";

const num = (v: string) => {
  const n = Number(v);
  if (v.trim() === "" || !Number.isFinite(n)) throw new InvalidArgumentError(`expected a number, got '${v}'`);
  return n;
};
const int = (v: string) => {
  const n = num(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError(`expected an integer >= 0, got '${v}'`);
  return n;
};
const ids = (v: string) => v.split(",").map((s) => int(s.trim()));

interface Opts {
  model: string;
  prompt?: string;
  promptIds?: number[];
  chat?: boolean;
  maxNewTokens?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  repetitionPenalty?: number;
  seed: number;
  sample?: boolean;
  json?: boolean;
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("tunekit generate")
    .description("Generate text from a prompt with a causal language model (KV cache, streamed)")
    .requiredOption("--model <dir>", "model folder or hf:owner/name[@revision]")
    .option("--prompt <text>", "prompt text (encoded with the model's tokenizer)")
    .option("--prompt-ids <ids>", "prompt as comma-separated token ids (no tokenizer needed)", ids)
    .option("--chat", "wrap the prompt as a user message with the tokenizer's chat template")
    .option("--max-new-tokens <n>", "new tokens at most (default: generation_config.json, else up to 20 in total)", int)
    .option("--temperature <t>", "sampling temperature; 0 = greedy (implies sampling when > 0)", num)
    .option("--top-k <k>", "keep the k most likely tokens (implies sampling)", int)
    .option("--top-p <p>", "nucleus sampling mass in (0, 1] (implies sampling)", num)
    .option("--repetition-penalty <r>", "HF repetition penalty (> 1 discourages repeats)", num)
    .option("--sample", "sample (with generation_config.json's settings) instead of greedy decoding")
    .option("--seed <n>", "random seed for sampling", int, 0)
    .option("--json", "print one JSON object (ids, text, finish reason) instead of streaming text")
    .exitOverride();
  await cmd.parseAsync(argv, { from: "user" });
  const o = cmd.opts<Opts>();
  if ((o.prompt === undefined) === (o.promptIds === undefined))
    throw new ValueError("give exactly one of --prompt or --prompt-ids");
  const model = (await loadPretrained(o.model, { task: "causal-lm" })) as LoadedModel & DecoderLM;
  const tok = model.tokenizer;
  let prompt = o.promptIds;
  if (o.prompt !== undefined) {
    if (!tok) throw new ValueError(`${model.sourceDir} has no tokenizer.json; use --prompt-ids`);
    // A rendered chat template already holds its special tokens.
    prompt = o.chat
      ? tok.encode(tok.applyChatTemplate([{ role: "user", content: o.prompt }], { addGenerationPrompt: true }), {
          addSpecialTokens: false,
        }).ids
      : tok.encode(o.prompt).ids;
  }
  const sampled =
    o.sample || (o.temperature !== undefined && o.temperature > 0) || o.topK !== undefined || o.topP !== undefined;
  const gen: GenerateOptions = { doSample: o.temperature === 0 ? false : sampled || undefined, seed: o.seed };
  if (o.maxNewTokens !== undefined) gen.maxNewTokens = o.maxNewTokens;
  if (o.temperature !== undefined && o.temperature > 0) gen.temperature = o.temperature;
  if (o.topK !== undefined) gen.topK = o.topK;
  if (o.topP !== undefined) gen.topP = o.topP;
  if (o.repetitionPenalty !== undefined) gen.repetitionPenalty = o.repetitionPenalty;
  let printed = "";
  const newIds: number[] = [];
  if (!o.json) {
    gen.onToken = (id) => {
      newIds.push(id);
      // Decode everything so far and print the new suffix: multi-byte characters split over tokens come out whole.
      const text = tok ? tok.decode(newIds, { skipSpecialTokens: true }) : `${newIds.join(" ")} `;
      if (text.startsWith(printed) && !text.endsWith("\uFFFD")) {
        process.stdout.write(text.slice(printed.length));
        printed = text;
      }
    };
  }
  const res = generate(model, prompt!, gen);
  const text = tok ? tok.decode(res.newIds, { skipSpecialTokens: true }) : undefined;
  if (o.json)
    process.stdout.write(
      `${JSON.stringify({ promptIds: prompt, newIds: res.newIds, ids: res.ids, text, finishReason: res.finishReason })}\n`,
    );
  else process.stdout.write(`${text?.startsWith(printed) ? (text ?? "").slice(printed.length) : ""}\n`);
}
