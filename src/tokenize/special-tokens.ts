/**
 * Resolving special tokens (bos/eos/unk/pad/...) the way `transformers` does:
 * `special_tokens_map.json` overrides `tokenizer_config.json`; a value may be a string or an
 * AddedToken object (`{"content": "<s>", ...}`); tokenizer classes with built-in defaults
 * (GPT-2: `<|endoftext|>` for bos/eos/unk; Llama/T5-style SentencePiece) fill gaps; and the
 * model's own `unk_token` in tokenizer.json is the last resort for unk.
 */
import { TokenizerError } from "./errors.ts";

/** The special-token roles transformers knows. */
export const SPECIAL_ROLES = [
  "bos_token",
  "eos_token",
  "unk_token",
  "sep_token",
  "pad_token",
  "cls_token",
  "mask_token",
] as const;
/** One of {@link SPECIAL_ROLES}. */
export type SpecialRole = (typeof SPECIAL_ROLES)[number];

/** Role -> token string, the file each came from, and which are class defaults (not user-set). */
export interface ResolvedSpecials {
  tokens: Partial<Record<SpecialRole, string>>;
  source: Partial<Record<SpecialRole, string>>;
  defaulted: Set<SpecialRole>;
}

// Constructor defaults of common slow tokenizer classes (their fast twins share them).
const CLASS_DEFAULTS: Record<string, Partial<Record<SpecialRole, string>>> = {
  GPT2Tokenizer: { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", unk_token: "<|endoftext|>" },
  CodeGenTokenizer: { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>", unk_token: "<|endoftext|>" },
  LlamaTokenizer: { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" },
  BertTokenizer: {
    unk_token: "[UNK]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    cls_token: "[CLS]",
    mask_token: "[MASK]",
  },
  DistilBertTokenizer: {
    unk_token: "[UNK]",
    sep_token: "[SEP]",
    pad_token: "[PAD]",
    cls_token: "[CLS]",
    mask_token: "[MASK]",
  },
  RobertaTokenizer: {
    bos_token: "<s>",
    eos_token: "</s>",
    sep_token: "</s>",
    cls_token: "<s>",
    unk_token: "<unk>",
    pad_token: "<pad>",
    mask_token: "<mask>",
  },
  T5Tokenizer: { eos_token: "</s>", unk_token: "<unk>", pad_token: "<pad>" },
};

/** Reads a special token value: a string, an AddedToken-like object, or null/absent. */
export function tokenContent(value: unknown, file: string, key: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (
    typeof value === "object" &&
    !Array.isArray(value) &&
    typeof (value as { content?: unknown }).content === "string"
  ) {
    return (value as { content: string }).content;
  }
  throw new TokenizerError(file, key, "expected a token string or an object with a string `content`");
}

/**
 * Resolves each role's token string.
 *
 * @example
 * ```ts
 * resolveSpecials({ tokenizer_class: "GPT2TokenizerFast" }, undefined, undefined).tokens.eos_token; // "<|endoftext|>"
 * ```
 */
export function resolveSpecials(
  config: Record<string, unknown>,
  specialTokensMap: Record<string, unknown> | undefined,
  modelUnk: string | undefined,
): ResolvedSpecials {
  const tokens: ResolvedSpecials["tokens"] = {};
  const source: ResolvedSpecials["source"] = {};
  const defaulted = new Set<SpecialRole>();
  const cls = typeof config.tokenizer_class === "string" ? config.tokenizer_class.replace(/Fast$/, "") : "";
  const defaults = CLASS_DEFAULTS[cls] ?? {};
  for (const role of SPECIAL_ROLES) {
    const fromMap = specialTokensMap
      ? tokenContent(specialTokensMap[role], "special_tokens_map.json", role)
      : undefined;
    const fromConfig = tokenContent(config[role], "tokenizer_config.json", role);
    if (fromMap !== undefined) {
      tokens[role] = fromMap;
      source[role] = "special_tokens_map.json";
    } else if (fromConfig !== undefined) {
      tokens[role] = fromConfig;
      source[role] = "tokenizer_config.json";
    } else if (!(role in config) && defaults[role] !== undefined) {
      // An explicit `null` in the config disables the class default, as in transformers.
      tokens[role] = defaults[role];
      source[role] = "tokenizer_config.json";
      defaulted.add(role);
    } else if (role === "unk_token" && modelUnk !== undefined) {
      tokens[role] = modelUnk;
      source[role] = "tokenizer.json";
    }
  }
  return { tokens, source, defaulted };
}
