/**
 * The bundled LM's tokenizer: byte-level BPE trained on the pre-training text, with
 * `<|endoftext|>` (id 0: document separator, bos, eos, pad) and ChatML's `<|im_start|>` (1) /
 * `<|im_end|>` (2), laid out like SmolLM2's so chat SFT works out of the box.
 *
 * @example
 * ```ts
 * const tok = trainLmTokenizer(docs.map((d) => d.text), 4096);
 * tok.encode("Hello world").ids;
 * ```
 */
import { Tokenizer } from "../../src/tokenize/tokenizer.ts";
import { trainByteLevelBPE } from "../../src/tokenize/train-bpe.ts";

export const EOS = "<|endoftext|>";
export const IM_START = "<|im_start|>";
export const IM_END = "<|im_end|>";
/** Special tokens in id order (0, 1, 2). */
export const SPECIAL_TOKENS = [EOS, IM_START, IM_END] as const;

/**
 * ChatML, as SmolLM2-Instruct renders it but without an injected default system prompt:
 * `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then `<|im_start|>assistant\n` when a
 * generation prompt is asked for.
 */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/** tokenizer_config.json in transformers' layout (keys in a fixed order, so the file is stable). */
export function lmTokenizerConfig(modelMaxLength: number): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  SPECIAL_TOKENS.forEach((content, id) => {
    decoder[String(id)] = {
      content,
      lstrip: false,
      normalized: false,
      rstrip: false,
      single_word: false,
      special: true,
    };
  });
  return {
    add_prefix_space: false,
    added_tokens_decoder: decoder,
    additional_special_tokens: [IM_START, IM_END],
    bos_token: EOS,
    chat_template: CHATML_TEMPLATE,
    clean_up_tokenization_spaces: false,
    eos_token: EOS,
    model_max_length: modelMaxLength,
    pad_token: EOS,
    tokenizer_class: "GPT2Tokenizer",
    unk_token: EOS,
    vocab_size: undefined,
  };
}

/**
 * Trains the tokenizer on `texts` (deterministic for a given input order) and wraps it with
 * {@link lmTokenizerConfig}.
 */
export function trainLmTokenizer(texts: readonly string[], vocabSize: number, modelMaxLength: number): Tokenizer {
  const json = trainByteLevelBPE(texts, { vocabSize, specialTokens: [...SPECIAL_TOKENS], minFrequency: 2 });
  const cfg = lmTokenizerConfig(modelMaxLength);
  cfg.vocab_size = vocabSize;
  return Tokenizer.fromJSON(json, cfg);
}
