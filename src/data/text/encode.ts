/**
 * Tokenisation of text datasets into {@link EncodedExample}s, with length statistics.
 *
 * - Classification: `text` (+ `text_pair`) encoded with the tokenizer's special tokens and
 *   truncated to `maxLength`; labels become class ids, or float vectors (multi-hot, regression).
 * - Causal LM, plain `text`: each document is encoded, EOS appended, and (by default) packed
 *   into blocks of `blockSize` tokens; see {@link packSequences} for the boundary rules.
 * - `prompt`/`completion`: prompt tokens (with special tokens) then completion tokens then EOS;
 *   labels are -100 on the prompt, so only the completion (and its EOS) is trained.
 * - `messages`: rendered with the chat template; labels only on assistant turns
 *   (`Tokenizer.applyChatTemplateWithMask`).
 * - Token classification: words encoded with `Tokenizer.encodeWords`; each word's tag goes on its
 *   first sub-token, the other sub-tokens and special tokens get -100 (transformers' `run_ner`
 *   default), so predictions and metrics are per word.
 * An LM example with no trained token (e.g. the completion was truncated away) is a
 * `DataError` naming its `file:line`, so a run never starts on it.
 *
 * @example
 * ```ts
 * const enc = encodeTextDataset(ds, tok, { maxLength: 256 });
 * console.log(formatLengthStats(enc.stats));
 * ```
 */
import type { Tokenizer } from "../../tokenize/tokenizer.ts";
import { countTargets, type EncodedExample, IGNORE_INDEX } from "../batch.ts";
import { DataError, type SkippedLine } from "../errors.ts";
import type {
  ClassificationExample,
  LmExample,
  LmFormat,
  TextDataset,
  TextExample,
  TextTask,
  TokenExample,
} from "./dataset.ts";
import type { LabelSet, ProblemType } from "./labels.ts";

/** Options for {@link encodeTextDataset}. */
export interface EncodeTextOptions {
  /** Truncation length, special tokens included. Default: the tokenizer's `model_max_length`, capped at 512. */
  maxLength?: number;
  /** Plain-text LM: pack documents into blocks of this many tokens. Default `maxLength`. */
  blockSize?: number;
  /** Pack LM examples into blocks. Default true for plain text, false for prompt/completion and chat. */
  packing?: boolean;
  /** Append EOS to plain-text documents and completions. Default true. */
  addEos?: boolean;
  /** Skip LM examples with an empty loss mask (reported in `skipped`) instead of stopping. */
  skipInvalid?: boolean;
}

/** Token-length statistics of a dataset before truncation. */
export interface LengthStats {
  /** Examples encoded. */
  count: number;
  /** Examples that lost tokens to truncation, and their share in percent. */
  truncated: number;
  percentTruncated: number;
  maxLength: number;
  min: number;
  max: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  /** Tokens after truncation (before packing/padding). */
  tokens: number;
  /** LM: tokens that contribute to the loss. */
  trainedTokens?: number;
  /** Packing: blocks made and documents split across blocks. */
  blocks?: number;
  splitDocuments?: number;
}

/** A tokenized dataset, ready for a {@link DataLoader}. */
export interface EncodedDataset {
  task: TextTask;
  examples: EncodedExample[];
  stats: LengthStats;
  /** Pad id for collation (the tokenizer's pad token, else EOS). */
  padTokenId: number;
  labels?: LabelSet;
  problemType?: ProblemType;
  /** Regression targets per example / classes for multi-label. */
  numLabels?: number;
  lmFormat?: LmFormat;
  packed: boolean;
  /** Source examples (`file:line`) by index, for error messages and `renderExample`. */
  sources: TextExample[];
  /** Examples dropped by `skipInvalid` at this stage. */
  skipped: SkippedLine[];
}

/** The pad id transformers' trainers use: `pad_token`, else `eos_token`. */
export function resolvePadTokenId(tokenizer: Tokenizer): number {
  const id = tokenizer.padTokenId ?? tokenizer.eosTokenId;
  if (id === undefined)
    throw new DataError(
      "tokenizer_config.json",
      "bad_option",
      "the tokenizer has neither pad_token nor eos_token; set pad_token to pad batches",
      { key: "pad_token" },
    );
  return id;
}

/**
 * Tokenizes a dataset for its task.
 *
 * @example
 * ```ts
 * const enc = encodeTextDataset(await loadTextDataset("chat.jsonl", { task: "causal-lm" }), tok, { maxLength: 1024 });
 * ```
 */
export function encodeTextDataset(
  ds: TextDataset,
  tokenizer: Tokenizer,
  options: EncodeTextOptions = {},
): EncodedDataset {
  const maxLength = options.maxLength ?? Math.min(tokenizer.modelMaxLength ?? 512, 512);
  if (!Number.isSafeInteger(maxLength) || maxLength < 2)
    throw new DataError("options", "bad_option", `maxLength must be an integer >= 2, got ${maxLength}`, {
      key: "maxLength",
    });
  const base = {
    task: ds.task,
    padTokenId: resolvePadTokenId(tokenizer),
    sources: ds.examples,
    skipped: [] as SkippedLine[],
  };
  if (ds.task === "text-classification") {
    const enc = encodeClassification(ds as TextDataset<ClassificationExample>, tokenizer, maxLength);
    return {
      ...base,
      ...enc,
      packed: false,
      ...(ds.labels ? { labels: ds.labels } : {}),
      ...(ds.problemType ? { problemType: ds.problemType } : {}),
    };
  }
  if (ds.task === "token-classification") {
    const enc = encodeTokens(ds as TextDataset<TokenExample>, tokenizer, maxLength);
    return { ...base, ...enc, packed: false, ...(ds.labels ? { labels: ds.labels } : {}) };
  }
  const lmFormat = ds.lmFormat ?? "text";
  const packing = options.packing ?? lmFormat === "text";
  const blockSize = options.blockSize ?? maxLength;
  if (!Number.isSafeInteger(blockSize) || blockSize < 2)
    throw new DataError("options", "bad_option", `blockSize must be an integer >= 2, got ${blockSize}`, {
      key: "blockSize",
    });
  const seqs: { ids: number[]; labels: number[]; origin: number }[] = [];
  const lengths: number[] = [];
  let truncated = 0;
  (ds.examples as LmExample[]).forEach((ex, i) => {
    const { ids, labels } = encodeLm(ex, tokenizer, options.addEos ?? true);
    lengths.push(ids.length);
    // Packed plain text keeps every token (long documents are split); everything else is cut.
    const limit = packing && ex.kind === "text" ? Number.POSITIVE_INFINITY : packing ? blockSize : maxLength;
    if (ids.length > limit) truncated++;
    const seq = { ids: ids.slice(0, limit), labels: labels.slice(0, limit), origin: i };
    if (countTargets(seq.labels) === 0) {
      const err = emptyMaskError(ex, ids.length, labels, limit);
      if (!options.skipInvalid) throw err;
      base.skipped.push(err.toSkipped());
      return;
    }
    seqs.push(seq);
  });
  if (seqs.length === 0) throw new DataError(ds.file, "empty_dataset", "no example has a token to train on");
  let examples: EncodedExample[];
  const extra: Partial<LengthStats> = {};
  if (packing) {
    const packed = packSequences(seqs, blockSize);
    examples = packed.blocks;
    extra.blocks = packed.blocks.length;
    extra.splitDocuments = packed.splitDocuments;
  } else {
    examples = seqs.map((s) => ({ inputIds: s.ids, labels: s.labels, origins: [s.origin] }));
  }
  const stats = lengthStats(
    lengths,
    truncated,
    packing ? blockSize : maxLength,
    seqs.reduce((a, s) => a + s.ids.length, 0),
  );
  stats.trainedTokens = examples.reduce((a, e) => a + countTargets(e.labels!), 0);
  return { ...base, examples, stats: { ...stats, ...extra }, packed: packing, lmFormat };
}

function emptyMaskError(ex: LmExample, length: number, labels: number[], limit: number): DataError {
  const firstTrained = labels.findIndex((l, t) => t >= 1 && l !== IGNORE_INDEX);
  const why =
    firstTrained < 0
      ? ex.kind === "messages"
        ? "no assistant turn to train on"
        : ex.kind === "prompt-completion"
          ? "the completion is empty"
          : "the text has fewer than 2 tokens"
      : `${ex.kind === "messages" ? "the first assistant token" : "the completion"} starts at token ${firstTrained}, but examples are truncated to ${limit} tokens (this one has ${length})`;
  return new DataError(ex.file, "empty_loss_mask", `example has no token to train on: ${why}`, { line: ex.line });
}

/** Ids and labels of one LM example, before truncation. */
function encodeLm(ex: LmExample, tok: Tokenizer, addEos: boolean): { ids: number[]; labels: number[] } {
  const eos = addEos && tok.eosTokenId !== undefined ? [tok.eosTokenId] : [];
  if (ex.kind === "text") {
    const ids = [...tok.encode(ex.text).ids, ...eos];
    return { ids, labels: [...ids] };
  }
  if (ex.kind === "prompt-completion") {
    const prompt = tok.encode(ex.prompt).ids;
    const completion =
      ex.completion === "" ? [] : [...tok.encode(ex.completion, { addSpecialTokens: false }).ids, ...eos];
    return { ids: [...prompt, ...completion], labels: [...prompt.map(() => IGNORE_INDEX), ...completion] };
  }
  const { ids, assistantMask } = tok.applyChatTemplateWithMask(ex.messages);
  return { ids, labels: ids.map((id, t) => (assistantMask[t] ? id : IGNORE_INDEX)) };
}

function encodeClassification(
  ds: TextDataset<ClassificationExample>,
  tok: Tokenizer,
  maxLength: number,
): { examples: EncodedExample[]; stats: LengthStats; numLabels?: number } {
  const lengths: number[] = [];
  let truncated = 0;
  let tokens = 0;
  const multi = ds.problemType === "multi_label_classification";
  const K = multi
    ? ds.labels!.size
    : ds.problemType === "regression"
      ? (ds.examples[0]!.label as number[]).length
      : undefined;
  const examples = ds.examples.map((ex, i): EncodedExample => {
    const opts = ex.textPair !== undefined ? { textPair: ex.textPair } : {};
    let enc = tok.encode(ex.text, opts);
    lengths.push(enc.ids.length);
    if (enc.ids.length > maxLength) {
      truncated++;
      enc = tok.encode(ex.text, { ...opts, truncation: "longest_first", maxLength });
    }
    tokens += enc.ids.length;
    const out: EncodedExample = { inputIds: enc.ids, origins: [i], label: toLabel(ex, multi, K) };
    if (enc.tokenTypeIds) out.tokenTypeIds = enc.tokenTypeIds;
    return out;
  });
  return {
    examples,
    stats: lengthStats(lengths, truncated, maxLength, tokens),
    ...(K !== undefined ? { numLabels: K } : {}),
  };
}

function encodeTokens(
  ds: TextDataset<TokenExample>,
  tok: Tokenizer,
  maxLength: number,
): { examples: EncodedExample[]; stats: LengthStats } {
  const lengths: number[] = [];
  let truncated = 0;
  let tokens = 0;
  const examples = ds.examples.map((ex, i): EncodedExample => {
    let enc = tok.encodeWords(ex.tokens);
    lengths.push(enc.ids.length);
    if (enc.ids.length > maxLength) {
      truncated++;
      enc = tok.encodeWords(ex.tokens, { truncation: true, maxLength });
    }
    tokens += enc.ids.length;
    const tokenLabels = enc.wordIds.map((w, t) =>
      w === null || (t > 0 && enc.wordIds[t - 1] === w) ? IGNORE_INDEX : ex.tags[w]!,
    );
    const out: EncodedExample = { inputIds: enc.ids, origins: [i], tokenLabels };
    if (enc.tokenTypeIds) out.tokenTypeIds = enc.tokenTypeIds;
    return out;
  });
  return { examples, stats: lengthStats(lengths, truncated, maxLength, tokens) };
}

function toLabel(ex: ClassificationExample, multi: boolean, K: number | undefined): number | number[] {
  if (typeof ex.label === "number") return ex.label;
  if (!multi) {
    if (ex.label.length !== K)
      throw new DataError(
        ex.file,
        "bad_value",
        `regression label has ${ex.label.length} values, the first example has ${K}`,
        { line: ex.line, key: "label" },
      );
    return ex.label;
  }
  const hot = new Array<number>(K!).fill(0);
  for (const id of ex.label) hot[id] = 1;
  return hot;
}

/**
 * Packs token sequences into blocks of `blockSize`, greedily in order (as transformers'
 * `group_texts`), without attention across documents:
 * - a document that does not fit in the rest of a block is split; its continuation starts the
 *   next block as a new segment (it cannot attend to the first part);
 * - `segmentIds` number the pieces 1, 2, ... within each block; `positionIds` restart at 0 for
 *   each piece;
 * - labels keep each piece's own labels except at a piece's first token, which is set to -100:
 *   the shifted loss would predict it from the previous document's last token. A document's
 *   final EOS stays a target, so the model learns to end documents.
 * The last block may be shorter (the collator pads it). Blocks with no target are dropped.
 *
 * @example packSequences([{ ids: [5, 6, 2], labels: [5, 6, 2], origin: 0 }], 4).blocks[0].segmentIds // [1, 1, 1]
 */
export function packSequences(
  seqs: readonly { ids: readonly number[]; labels: readonly number[]; origin: number }[],
  blockSize: number,
): { blocks: EncodedExample[]; splitDocuments: number } {
  const blocks: EncodedExample[] = [];
  let cur: EncodedExample = newBlock();
  let splitDocuments = 0;
  const flush = () => {
    if (cur.inputIds.length > 0 && countTargets(cur.labels!) > 0) blocks.push(cur);
    cur = newBlock();
  };
  for (const s of seqs) {
    let from = 0;
    if (cur.inputIds.length === blockSize) flush();
    if (s.ids.length > blockSize - cur.inputIds.length) splitDocuments++;
    while (from < s.ids.length) {
      if (cur.inputIds.length === blockSize) flush();
      const take = Math.min(blockSize - cur.inputIds.length, s.ids.length - from);
      const seg = (cur.segmentIds!.at(-1) ?? 0) + 1;
      for (let k = 0; k < take; k++) {
        cur.inputIds.push(s.ids[from + k]!);
        cur.labels!.push(k === 0 ? IGNORE_INDEX : s.labels[from + k]!);
        cur.positionIds!.push(k);
        cur.segmentIds!.push(seg);
      }
      if (cur.origins.at(-1) !== s.origin) cur.origins.push(s.origin);
      from += take;
    }
  }
  flush();
  return { blocks, splitDocuments };
}

function newBlock(): EncodedExample {
  return { inputIds: [], labels: [], positionIds: [], segmentIds: [], origins: [] };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  // Nearest-rank: the smallest value with at least p% of the data at or below it.
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** Statistics of untruncated lengths. */
export function lengthStats(
  lengths: readonly number[],
  truncated: number,
  maxLength: number,
  tokens: number,
): LengthStats {
  const sorted = [...lengths].sort((a, b) => a - b);
  const n = sorted.length;
  return {
    count: n,
    truncated,
    percentTruncated: n === 0 ? 0 : (100 * truncated) / n,
    maxLength,
    min: sorted[0] ?? 0,
    max: sorted[n - 1] ?? 0,
    mean: n === 0 ? 0 : sorted.reduce((a, b) => a + b, 0) / n,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    tokens,
  };
}

/**
 * One or two lines for the console before training.
 *
 * @example formatLengthStats(stats) // "1000 examples, tokens per example: mean 41.2, p50 38, ..., max 301; 12 (1.2%) truncated to 256"
 */
export function formatLengthStats(s: LengthStats): string {
  const lines = [
    `${s.count} examples, tokens per example: mean ${s.mean.toFixed(1)}, p50 ${s.p50}, p90 ${s.p90}, p95 ${s.p95}, p99 ${s.p99}, max ${s.max}; ` +
      `${s.truncated} (${s.percentTruncated.toFixed(1)}%) truncated to ${s.maxLength}`,
  ];
  if (s.blocks !== undefined)
    lines.push(
      `packed into ${s.blocks} blocks of ${s.maxLength} tokens (${s.splitDocuments} documents split across blocks)`,
    );
  if (s.trainedTokens !== undefined) lines.push(`${s.trainedTokens} of ${s.tokens} tokens are trained`);
  return lines.join("\n");
}
