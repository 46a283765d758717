/**
 * Shared pieces of GPT-2 style byte-level BPE: the byte <-> printable-character table and the
 * tokenizer.json fragments (pre-tokenizer, post-processor, decoder) that go with it.
 */

/**
 * GPT-2's pre-tokenizer pattern (contractions, letter runs, digit runs, punctuation runs,
 * whitespace). The `ByteLevel` pre-tokenizer with `use_regex: true` applies exactly this pattern,
 * so we only need it here for training.
 */
export const GPT2_SPLIT_PATTERN = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/**
 * GPT-2's `bytes_to_unicode`: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in order, so every byte becomes one visible character. Index = byte value.
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) out[b] = String.fromCharCode(printable(b) ? b : 256 + n++);
  return out;
})();

/** Inverse of {@link BYTE_TO_CHAR}. */
export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const utf8 = new TextEncoder();

/** UTF-8 bytes of `text`, each mapped through {@link BYTE_TO_CHAR}. */
export function toByteChars(text: string): string {
  let s = "";
  for (const b of utf8.encode(text)) s += BYTE_TO_CHAR[b];
  return s;
}

/** The bytes a byte-level token string stands for, or `undefined` if it is not byte-level. */
export function byteCharsToBytes(token: string): number[] | undefined {
  const out: number[] = [];
  for (const ch of token) {
    const b = CHAR_TO_BYTE.get(ch);
    if (b === undefined) return undefined;
    out.push(b);
  }
  return out;
}

/** The `ByteLevel` component config shared by pre-tokenizer, post-processor and decoder. */
export function byteLevelComponent(): Record<string, unknown> {
  return { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
}

/** One entry of tokenizer.json's `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word: boolean;
  lstrip: boolean;
  rstrip: boolean;
  normalized: boolean;
  special: boolean;
}

/** A special added token entry in the layout `tokenizers` writes. */
export function specialAddedToken(id: number, content: string): AddedTokenJson {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
}

/** The shape of a byte-level BPE tokenizer.json as produced by this folder. */
export interface ByteLevelBpeJson {
  version: "1.0";
  truncation: null;
  padding: null;
  added_tokens: AddedTokenJson[];
  normalizer: null;
  pre_tokenizer: Record<string, unknown>;
  post_processor: Record<string, unknown>;
  decoder: Record<string, unknown>;
  model: {
    type: "BPE";
    dropout: null;
    unk_token: null;
    continuing_subword_prefix: null;
    end_of_word_suffix: null;
    fuse_unk: false;
    byte_fallback: false;
    ignore_merges: false;
    vocab: Record<string, number>;
    merges: [string, string][];
  };
}

/** Assembles a byte-level BPE tokenizer.json object from a vocab, merges and added tokens. */
export function byteLevelBpeJson(
  vocab: Record<string, number>,
  merges: [string, string][],
  addedTokens: AddedTokenJson[],
): ByteLevelBpeJson {
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    normalizer: null,
    pre_tokenizer: byteLevelComponent(),
    post_processor: { ...byteLevelComponent(), trim_offsets: false },
    decoder: byteLevelComponent(),
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}
