/**
 * `Tokenizer`: a Hugging Face tokenizer (tokenizer.json + tokenizer_config.json) on top of
 * `@huggingface/tokenizers`, with transformers' special-token resolution, truncation, padding,
 * chat templates and an assistant-token mask for supervised fine-tuning.
 *
 * @example
 * ```ts
 * const tok = await Tokenizer.fromDir("./smollm-135m");
 * const { ids } = tok.encode("Hello world");
 * const { ids: chatIds, assistantMask } = tok.applyChatTemplateWithMask([
 *   { role: "user", content: "Hi" },
 *   { role: "assistant", content: "Hello!" },
 * ]);
 * ```
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Tokenizer as HFTokenizer } from "@huggingface/tokenizers";
import { readJsonFile } from "../formats/hf-config.ts";
import { assistantSpans, type ChatMessage, renderTemplate, selectTemplate, spansToTokenMask } from "./chat-template.ts";
import { isObject, mergeAddedTokens, padEncoding, tokenOffsets, truncatePair } from "./encoding.ts";
import { TokenizerError } from "./errors.ts";
import { resolveSpecials, SPECIAL_ROLES, type SpecialRole } from "./special-tokens.ts";

export type { ChatMessage } from "./chat-template.ts";

/** Truncation strategies, as in transformers. `true` means `longest_first`. */
export type Truncation = boolean | "longest_first" | "only_first" | "only_second";

/** Options for {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the post-processor's special tokens (BOS/CLS/SEP...). Default true. */
  addSpecialTokens?: boolean;
  /** Second sequence (sentence pairs, e.g. NLI). */
  textPair?: string;
  /** Truncate to `maxLength` (special tokens included). Default false. */
  truncation?: Truncation;
  /** Defaults to `model_max_length` from tokenizer_config.json when truncating. */
  maxLength?: number;
}

/** The result of encoding one text (or pair). */
export interface Encoding {
  ids: number[];
  tokens: string[];
  attentionMask: number[];
  /** Segment ids (0 for the first text, 1 for the pair); present for pairs or when the post-processor defines them. */
  tokenTypeIds?: number[];
  /**
   * Character offsets [start, end) into the input text (into `textPair` for its tokens; [0, 0]
   * for added special tokens). Present when the tokens' bytes reassemble the input exactly, i.e.
   * for byte-level BPE without a normalizer; absent otherwise.
   */
  offsets?: [number, number][];
}

/** Options for {@link Tokenizer.encodeBatch}. */
export interface BatchEncodeOptions extends Omit<EncodeOptions, "textPair"> {
  textPairs?: string[];
  /** `true`/`"longest"`: pad to the longest in the batch; `"max_length"`: pad to `maxLength`. */
  padding?: boolean | "longest" | "max_length";
}

/** Options for {@link Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the header of a new assistant turn (for generation). Default false. */
  addGenerationPrompt?: boolean;
  /** Tool (function) schemas, passed to the template as `tools`. */
  tools?: unknown[];
  /** Pick a named template when `chat_template` is a list. */
  templateName?: string;
  /** Extra template variables (e.g. `enable_thinking`, `documents`). */
  extra?: Record<string, unknown>;
}

/** Output of {@link Tokenizer.applyChatTemplateWithMask}. */
export interface ChatEncoding {
  text: string;
  ids: number[];
  attentionMask: number[];
  /** True for tokens of assistant turns (content and end-of-turn), where the loss applies. */
  assistantMask: boolean[];
}

const KNOWN_FILES = new Set(["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]);
// transformers' "no limit" sentinel for model_max_length is int(1e30).
const NO_MAX_LENGTH = 1e18;

/**
 * A tokenizer loaded from Hugging Face files. Construct with {@link Tokenizer.fromDir} or
 * {@link Tokenizer.fromJSON}.
 */
export class Tokenizer {
  /** tokenizer.json as loaded (with any `added_tokens_decoder` entries from the config merged in). */
  readonly tokenizerJson: Record<string, unknown>;
  /** tokenizer_config.json as loaded (chat_template.jinja, if any, folded into `chat_template`). */
  readonly config: Record<string, unknown>;
  /** Special token strings by role (`bos_token`, `eos_token`, ...). */
  readonly specialTokens: Partial<Record<SpecialRole, string>>;
  /** Largest id + 1, added tokens included: the embedding rows a model needs. */
  readonly vocabSize: number;
  private readonly hf: HFTokenizer;
  private readonly specialIds: Partial<Record<SpecialRole, number>> = {};
  private readonly addedContents: Set<string>;

  private constructor(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
    specialsMap?: Record<string, unknown>,
  ) {
    if (!isObject(tokenizerJson.model)) throw new TokenizerError("tokenizer.json", "model", "expected an object");
    const json = {
      ...tokenizerJson,
      added_tokens: mergeAddedTokens(tokenizerJson.added_tokens, config.added_tokens_decoder),
    };
    try {
      this.hf = new HFTokenizer(json, config);
    } catch (err) {
      throw new TokenizerError("tokenizer.json", undefined, `cannot build tokenizer: ${(err as Error).message}`, {
        cause: err,
      });
    }
    this.tokenizerJson = json;
    this.config = config;
    this.addedContents = new Set(json.added_tokens.map((t) => t.content));
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    const model = tokenizerJson.model as Record<string, unknown>;
    const modelUnk = typeof model.unk_token === "string" ? model.unk_token : undefined;
    const { tokens, source, defaulted } = resolveSpecials(config, specialsMap, modelUnk);
    this.specialTokens = tokens;
    for (const role of SPECIAL_ROLES) {
      const t = tokens[role];
      if (t === undefined) continue;
      const id = this.hf.token_to_id(t);
      if (id !== undefined) this.specialIds[role] = id;
      else if (!defaulted.has(role)) {
        throw new TokenizerError(source[role]!, role, `token ${JSON.stringify(t)} is not in the vocabulary`);
      }
    }
  }

  /**
   * Builds a tokenizer from parsed tokenizer.json and tokenizer_config.json objects.
   *
   * @example
   * ```ts
   * const tok = Tokenizer.fromJSON(trainByteLevelBPE(texts, { vocabSize: 1000 }), { eos_token: "<|endoftext|>" });
   * ```
   */
  static fromJSON(tokenizerJson: unknown, tokenizerConfig: unknown = {}, specialTokensMap?: unknown): Tokenizer {
    if (!isObject(tokenizerJson)) throw new TokenizerError("tokenizer.json", undefined, "expected a JSON object");
    if (!isObject(tokenizerConfig))
      throw new TokenizerError("tokenizer_config.json", undefined, "expected a JSON object");
    if (specialTokensMap !== undefined && !isObject(specialTokensMap)) {
      throw new TokenizerError("special_tokens_map.json", undefined, "expected a JSON object");
    }
    return new Tokenizer(tokenizerJson, tokenizerConfig, specialTokensMap);
  }

  /**
   * Loads `tokenizer.json` (required), `tokenizer_config.json`, `special_tokens_map.json` and
   * `chat_template.jinja` (all optional; the .jinja file wins over `chat_template` in the config,
   * as in transformers) from a model directory.
   */
  static async fromDir(dir: string): Promise<Tokenizer> {
    const tokPath = join(dir, "tokenizer.json");
    if (!existsSync(tokPath)) {
      throw new TokenizerError(
        tokPath,
        undefined,
        "not found (only fast tokenizers, i.e. tokenizer.json, are supported)",
      );
    }
    const tokenizerJson = await readJsonFile(tokPath);
    const cfgPath = join(dir, "tokenizer_config.json");
    const config = existsSync(cfgPath) ? await readJsonFile(cfgPath, { maxBytes: 16 << 20 }) : {};
    if (!isObject(config)) throw new TokenizerError(cfgPath, undefined, "expected a JSON object");
    const mapPath = join(dir, "special_tokens_map.json");
    const specials = existsSync(mapPath) ? await readJsonFile(mapPath, { maxBytes: 1 << 20 }) : undefined;
    const jinjaPath = join(dir, "chat_template.jinja");
    const cfg = existsSync(jinjaPath) ? { ...config, chat_template: await readFile(jinjaPath, "utf8") } : config;
    try {
      return Tokenizer.fromJSON(tokenizerJson, cfg, specials);
    } catch (err) {
      // Errors name the bare file; re-issue them with the full path.
      if (err instanceof TokenizerError && KNOWN_FILES.has(err.file)) {
        throw new TokenizerError(join(dir, err.file), err.key, err.detail, { cause: err });
      }
      throw err;
    }
  }

  /** Id of `bos_token`, if the tokenizer has one. */
  get bosTokenId(): number | undefined {
    return this.specialIds.bos_token;
  }
  /** Id of `eos_token`, if the tokenizer has one. */
  get eosTokenId(): number | undefined {
    return this.specialIds.eos_token;
  }
  /** Id of `pad_token`; `undefined` when unset (transformers has no fallback; trainers often use eos). */
  get padTokenId(): number | undefined {
    return this.specialIds.pad_token;
  }
  /** Id of `unk_token`, if any. */
  get unkTokenId(): number | undefined {
    return this.specialIds.unk_token;
  }
  /** Id of any special role (`sep_token`, `cls_token`, `mask_token`, ...). */
  specialTokenId(role: SpecialRole): number | undefined {
    return this.specialIds[role];
  }

  /** `model_max_length` from tokenizer_config.json, or undefined when absent or "unlimited". */
  get modelMaxLength(): number | undefined {
    const v = this.config.model_max_length;
    return typeof v === "number" && Number.isSafeInteger(v) && v > 0 && v < NO_MAX_LENGTH ? v : undefined;
  }

  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /**
   * Encodes one text (or a pair).
   *
   * @example
   * ```ts
   * tok.encode("Hello world", { truncation: true, maxLength: 8 }).ids;
   * ```
   */
  encode(text: string, options: EncodeOptions = {}): Encoding {
    const add = options.addSpecialTokens ?? true;
    const pair = options.textPair;
    let t1 = this.hf.tokenize(text, { add_special_tokens: false });
    let t2 = pair === undefined ? null : this.hf.tokenize(pair, { add_special_tokens: false });
    let o1 = tokenOffsets(text, t1, this.addedContents);
    let o2 = pair === undefined || t2 === null ? undefined : tokenOffsets(pair, t2, this.addedContents);
    if (options.truncation) {
      const budget = this.truncationBudget(options, add, t2 !== null);
      [t1, t2, o1, o2] = truncatePair(
        t1,
        t2,
        o1,
        o2,
        budget,
        options.truncation,
        this.config.truncation_side === "left",
      );
    }
    return this.postProcess(t1, t2, o1, o2, add);
  }

  /**
   * Encodes text already split into words (transformers' `is_split_into_words=True`), for token
   * classification. Each word is tokenized on its own; byte-level BPE tokenizers get a space before
   * every word, as with `add_prefix_space=True`, which transformers requires for split words.
   * `wordIds[t]` is the word that token t came from, `null` for special tokens. Truncation keeps
   * whole leading tokens up to `maxLength` (special tokens included).
   *
   * @example
   * ```ts
   * tok.encodeWords(["EU", "rejects", "German"]).wordIds; // [null, 0, 1, 1, 2, null] for a BERT tokenizer
   * ```
   */
  encodeWords(
    words: readonly string[],
    options: Omit<EncodeOptions, "textPair"> = {},
  ): Encoding & { wordIds: (number | null)[] } {
    const add = options.addSpecialTokens ?? true;
    const prefix = this.isByteLevel() ? " " : "";
    let pieces: string[] = [];
    let owner: number[] = [];
    words.forEach((w, i) => {
      const t = this.hf.tokenize(prefix + w, { add_special_tokens: false });
      pieces.push(...t);
      owner.push(...t.map(() => i));
    });
    if (options.truncation) {
      const budget = this.truncationBudget(options, add, false);
      pieces = pieces.slice(0, budget);
      owner = owner.slice(0, budget);
    }
    const from: (number | null)[] = [];
    const enc = this.postProcess(pieces, null, undefined, undefined, add, from);
    return { ...enc, wordIds: from.map((i) => (i === null ? null : owner[i]!)) };
  }

  /** Whether the pre-tokenizer is (or contains) ByteLevel: GPT-2, RoBERTa, Llama 3, Qwen2. */
  private isByteLevel(): boolean {
    const pre = this.tokenizerJson.pre_tokenizer as { type?: string; pretokenizers?: { type?: string }[] } | null;
    return pre?.type === "ByteLevel" || (pre?.pretokenizers ?? []).some((p) => p?.type === "ByteLevel");
  }

  /**
   * Encodes several texts, optionally padding them to one length (with `pad_token`, on the side
   * given by `padding_side` in tokenizer_config.json, default right).
   */
  encodeBatch(texts: string[], options: BatchEncodeOptions = {}): Encoding[] {
    const { textPairs, padding, ...rest } = options;
    if (textPairs && textPairs.length !== texts.length) {
      throw new TokenizerError("input", "textPairs", `has ${textPairs.length} entries for ${texts.length} texts`);
    }
    const out = texts.map((t, i) => this.encode(t, { ...rest, ...(textPairs ? { textPair: textPairs[i]! } : {}) }));
    if (!padding) return out;
    let target = Math.max(0, ...out.map((e) => e.ids.length));
    if (padding === "max_length") {
      if (options.maxLength === undefined)
        throw new TokenizerError("input", "maxLength", 'is required with padding: "max_length"');
      target = options.maxLength;
    }
    const padId = this.padTokenId;
    if (padId === undefined) {
      throw new TokenizerError(
        "tokenizer_config.json",
        "pad_token",
        "is not set; set one (often the eos token) to pad batches",
      );
    }
    const left = this.config.padding_side === "left";
    return out.map((e) => padEncoding(e, target, padId, this.idToToken(padId)!, left));
  }

  /**
   * Decodes ids back to text. Special-token spaces are not "cleaned up" unless
   * `clean_up_tokenization_spaces` is true in the config or the option says so.
   */
  decode(
    ids: readonly number[],
    options: { skipSpecialTokens?: boolean; cleanUpTokenizationSpaces?: boolean } = {},
  ): string {
    for (const [i, id] of ids.entries()) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new TokenizerError("input", `ids[${i}]`, `${id} is not a token id in [0, ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return "";
    return this.hf.decode([...ids], {
      skip_special_tokens: options.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces:
        options.cleanUpTokenizationSpaces ?? this.config.clean_up_tokenization_spaces === true,
    });
  }

  /**
   * Renders a conversation with the tokenizer's chat template. The template sees `messages`,
   * `add_generation_prompt`, `tools`, the special tokens (`bos_token`, `eos_token`, ...) and
   * `extra`, as in transformers' `apply_chat_template(tokenize=False)`.
   */
  applyChatTemplate(messages: ChatMessage[], options: ChatTemplateOptions = {}): string {
    const source = selectTemplate(
      this.config.chat_template,
      "tokenizer_config.json",
      options.templateName,
      !!options.tools,
    );
    return renderTemplate(source, this.templateContext(messages, options), "tokenizer_config.json");
  }

  /**
   * Renders and tokenizes a conversation and marks the tokens of assistant turns (see
   * `chat-template.ts` for how). No special tokens are added beyond what the template writes,
   * as in transformers. With `maxLength`, ids and mask are cut from the right.
   *
   * @example
   * ```ts
   * const { ids, assistantMask } = tok.applyChatTemplateWithMask(messages);
   * const labels = ids.map((id, i) => (assistantMask[i] ? id : -100));
   * ```
   */
  applyChatTemplateWithMask(
    messages: ChatMessage[],
    options: Omit<ChatTemplateOptions, "addGenerationPrompt"> & { maxLength?: number } = {},
  ): ChatEncoding {
    const render = (msgs: ChatMessage[], addGenerationPrompt: boolean) =>
      this.applyChatTemplate(msgs, { ...options, addGenerationPrompt });
    const text = render(messages, false);
    const encode = (s: string) => this.encode(s, { addSpecialTokens: false }).ids;
    let ids = encode(text);
    const spans = assistantSpans(messages, text, render, this.specialTokens.eos_token);
    let assistantMask = spansToTokenMask(text, ids, spans, encode);
    if (options.maxLength !== undefined && ids.length > options.maxLength) {
      ids = ids.slice(0, options.maxLength);
      assistantMask = assistantMask.slice(0, options.maxLength);
    }
    return { text, ids, attentionMask: ids.map(() => 1), assistantMask };
  }

  /**
   * Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (created if needed), each
   * through a temporary name and a rename so a crash never leaves half a file.
   */
  async save(dir: string): Promise<void> {
    await mkdir(dir, { recursive: true });
    const write = async (name: string, value: unknown) => {
      const path = join(dir, name);
      await writeFile(`${path}.tmp`, `${JSON.stringify(value, null, 2)}\n`);
      await rename(`${path}.tmp`, path);
    };
    await write("tokenizer.json", this.tokenizerJson);
    await write("tokenizer_config.json", this.config);
  }

  private templateContext(messages: ChatMessage[], options: ChatTemplateOptions): Record<string, unknown> {
    const ctx: Record<string, unknown> = { ...this.specialTokens };
    if (Array.isArray(this.config.additional_special_tokens))
      ctx.additional_special_tokens = this.config.additional_special_tokens;
    Object.assign(ctx, options.extra ?? {});
    ctx.messages = messages;
    ctx.add_generation_prompt = options.addGenerationPrompt ?? false;
    if (options.tools) ctx.tools = options.tools;
    return ctx;
  }

  /** Number of tokens left for text once the post-processor's special tokens are counted. */
  private truncationBudget(options: EncodeOptions, add: boolean, isPair: boolean): number {
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (maxLength === undefined || !Number.isSafeInteger(maxLength) || maxLength < 0) {
      throw new TokenizerError(
        "input",
        "maxLength",
        "truncation needs a non-negative integer maxLength (or model_max_length in tokenizer_config.json)",
      );
    }
    const specials = this.runPostProcessor([], isPair ? [] : null, add).tokens.length;
    if (maxLength < specials)
      throw new TokenizerError("input", "maxLength", `${maxLength} is less than the ${specials} special tokens added`);
    return maxLength - specials;
  }

  /** Runs the post-processor, working around `ByteLevel` returning the pair unmerged. */
  private runPostProcessor(t1: string[], t2: string[] | null, add: boolean): { tokens: string[]; typeIds?: number[] } {
    const pp = this.hf.post_processor as unknown as
      | ((
          a: string[],
          b: string[] | null,
          add: boolean,
        ) => { tokens: string[]; tokens_pair?: string[] | null; token_type_ids?: number[] })
      | null;
    if (!pp) {
      return { tokens: [...t1, ...(t2 ?? [])], ...(t2 ? { typeIds: [...t1.map(() => 0), ...t2.map(() => 1)] } : {}) };
    }
    const r = pp(t1, t2, add);
    if (r.tokens_pair) {
      return {
        tokens: [...r.tokens, ...r.tokens_pair],
        typeIds: [...r.tokens.map(() => 0), ...r.tokens_pair.map(() => 1)],
      };
    }
    const typeIds = r.token_type_ids?.map((x) => x ?? 0);
    return { tokens: r.tokens, ...(typeIds ? { typeIds } : {}) };
  }

  /**
   * Applies the post-processor to sentinel stand-ins for the text tokens, so each output position
   * is known to be text token i of sequence A/B or an inserted special token.
   */
  private postProcess(
    t1: string[],
    t2: string[] | null,
    o1: [number, number][] | undefined,
    o2: [number, number][] | undefined,
    add: boolean,
    /** Filled with, per output token, its index in `t1` (null for special tokens and `t2`'s). */
    fromA?: (number | null)[],
  ): Encoding {
    const s1 = t1.map((_, i) => `\u0000A${i}`);
    const s2 = t2 === null ? null : t2.map((_, i) => `\u0000B${i}`);
    const { tokens: laid, typeIds } = this.runPostProcessor(s1, s2, add);
    const tokens: string[] = [];
    const offsets: [number, number][] = [];
    const withOffsets = o1 !== undefined && (t2 === null || o2 !== undefined);
    for (const s of laid) {
      if (s.startsWith("\u0000A")) {
        const i = Number(s.slice(2));
        fromA?.push(i);
        tokens.push(t1[i]!);
        if (withOffsets) offsets.push(o1![i]!);
      } else if (s.startsWith("\u0000B")) {
        fromA?.push(null);
        const i = Number(s.slice(2));
        tokens.push(t2![i]!);
        if (withOffsets) offsets.push(o2![i]!);
      } else {
        fromA?.push(null);
        tokens.push(s);
        if (withOffsets) offsets.push([0, 0]);
      }
    }
    const ids = tokens.map((t) => {
      const id = this.hf.token_to_id(t) ?? this.unkTokenId;
      if (id === undefined)
        throw new TokenizerError("tokenizer.json", t, "token is not in the vocabulary and there is no unk_token");
      return id;
    });
    const enc: Encoding = { ids, tokens, attentionMask: ids.map(() => 1) };
    if (typeIds && (t2 !== null || typeIds.some((x) => x !== 0))) enc.tokenTypeIds = typeIds;
    else if (typeIds && t2 === null && this.usesTypeIds()) enc.tokenTypeIds = typeIds;
    if (withOffsets) enc.offsets = offsets;
    return enc;
  }

  /** BERT-style post-processors define segment ids even for single texts. */
  private usesTypeIds(): boolean {
    const pp = this.tokenizerJson.post_processor as { type?: string } | null | undefined;
    return pp?.type === "BertProcessing" || pp?.type === "TemplateProcessing" || pp?.type === "RobertaProcessing";
  }
}
