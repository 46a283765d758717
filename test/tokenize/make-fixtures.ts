/**
 * Regenerates test/fixtures/tokenize/chatml/: a small byte-level BPE trained on the corpus below,
 * with ChatML special tokens and a SmolLM2-style chat template in tokenizer_config.json.
 *
 *   node --import tsx test/tokenize/make-fixtures.ts
 */
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { trainByteLevelBPE } from "../../src/tokenize/train-bpe.ts";

export const CHATML_DIR = join(import.meta.dirname, "..", "fixtures", "tokenize", "chatml");

/** SmolLM2-Instruct's template: ChatML with a default system prompt. */
export const SMOLLM2_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}" +
  "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

const CORPUS = [
  "You are a helpful AI assistant named SmolLM, trained by Hugging Face.",
  "The quick brown fox jumps over the lazy dog. What is the capital of France? Paris is the capital of France.",
  "Hello! How can I help you today? I'd like to know how chat templates work.",
  "A tokenizer splits text into tokens; the model predicts the next token.",
  "system user assistant system user assistant",
  "Fine-tuning adapts a pre-trained model to a new task with a small learning rate.",
];

export function chatmlTokenizerJson() {
  return trainByteLevelBPE(CORPUS, {
    vocabSize: 420,
    specialTokens: ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    minFrequency: 2,
  });
}

export const CHATML_CONFIG = {
  tokenizer_class: "GPT2Tokenizer",
  bos_token: "<|im_start|>",
  eos_token: "<|im_end|>",
  unk_token: "<|endoftext|>",
  pad_token: "<|im_end|>",
  additional_special_tokens: ["<|im_start|>", "<|im_end|>"],
  model_max_length: 8192,
  clean_up_tokenization_spaces: false,
  chat_template: SMOLLM2_TEMPLATE,
};

if (process.argv[1] === import.meta.filename) {
  await mkdir(CHATML_DIR, { recursive: true });
  await writeFile(join(CHATML_DIR, "tokenizer.json"), `${JSON.stringify(chatmlTokenizerJson(), null, 2)}\n`);
  await writeFile(join(CHATML_DIR, "tokenizer_config.json"), `${JSON.stringify(CHATML_CONFIG, null, 2)}\n`);
}
