/**
 * Tokenizers: Hugging Face tokenizer.json + chat templates, GPT-2's tokenizer from its original
 * files, and a byte-level BPE trainer.
 *
 * @example
 * ```ts
 * import { Tokenizer } from "./tokenize/index.ts";
 * const tok = await Tokenizer.fromDir("./smollm-135m");
 * ```
 */
export type { ByteLevelBpeJson } from "./byte-level.ts";
export type { ChatMessage } from "./chat-template.ts";
export { TokenizerError } from "./errors.ts";
export { buildGpt2TokenizerJson, GPT2_EOS, GPT2_EOS_ID, gpt2TokenizerConfig, readGpt2Files } from "./gpt2.ts";
export type { SpecialRole } from "./special-tokens.ts";
export {
  type BatchEncodeOptions,
  type ChatEncoding,
  type ChatTemplateOptions,
  type EncodeOptions,
  type Encoding,
  Tokenizer,
  type Truncation,
} from "./tokenizer.ts";
export { type TrainBpeOptions, trainByteLevelBPE } from "./train-bpe.ts";
