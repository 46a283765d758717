/**
 * Encoding helpers for `Tokenizer`: character offsets, truncation, padding and merging
 * `added_tokens_decoder` into tokenizer.json's added tokens.
 */
import { byteCharsToBytes } from "./byte-level.ts";
import { TokenizerError } from "./errors.ts";
import type { Encoding, Truncation } from "./tokenizer.ts";

const utf8 = new TextEncoder();

/** A plain (non-array, non-null) object. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Truncates sequence A (and B) so that together they fit `budget` tokens, from the right or left. */
export function truncatePair(
  t1: string[],
  t2: string[] | null,
  o1: [number, number][] | undefined,
  o2: [number, number][] | undefined,
  budget: number,
  strategy: Truncation,
  left: boolean,
): [string[], string[] | null, [number, number][] | undefined, [number, number][] | undefined] {
  let n1 = t1.length;
  let n2 = t2?.length ?? 0;
  if (n1 + n2 > budget) {
    const mode = strategy === true ? "longest_first" : strategy;
    if (mode === "only_first" || t2 === null) n1 = Math.max(0, budget - n2);
    else if (mode === "only_second") n2 = Math.max(0, budget - n1);
    else {
      while (n1 + n2 > budget) {
        if (n1 > n2) n1--;
        else n2--;
      }
    }
    if (n1 + n2 > budget)
      throw new TokenizerError("input", "truncation", `${mode} cannot fit the pair into ${budget} tokens`);
  }
  const cut = <T>(a: T[] | undefined, n: number) =>
    a === undefined ? undefined : left ? a.slice(a.length - n) : a.slice(0, n);
  return [cut(t1, n1)!, t2 === null ? null : cut(t2, n2)!, cut(o1, n1), cut(o2, n2)];
}

/**
 * Character offsets of `tokens` in `text`, when their bytes (byte-level characters, or the
 * literal content of added tokens) concatenate to exactly the UTF-8 bytes of `text`.
 */
export function tokenOffsets(
  text: string,
  tokens: string[],
  addedContents: ReadonlySet<string>,
): [number, number][] | undefined {
  const bytes = utf8.encode(text);
  // byteToChar[b] = UTF-16 index of the character containing byte b; [bytes.length] = text.length.
  const byteToChar = new Int32Array(bytes.length + 1);
  let b = 0;
  for (let c = 0; c < text.length; ) {
    const cp = text.codePointAt(c)!;
    const nb = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (let k = 0; k < nb; k++) byteToChar[b + k] = c;
    b += nb;
    c += cp > 0xffff ? 2 : 1;
  }
  byteToChar[bytes.length] = text.length;
  const charEnd = (pos: number) =>
    pos >= bytes.length
      ? text.length
      : pos > 0 && byteToChar[pos] === byteToChar[pos - 1]
        ? nextChar(text, byteToChar[pos]!)
        : byteToChar[pos]!;
  const out: [number, number][] = [];
  let pos = 0;
  for (const t of tokens) {
    const tb = addedContents.has(t) ? [...utf8.encode(t)] : byteCharsToBytes(t);
    if (!tb) return undefined;
    for (const x of tb) if (bytes[pos++] !== x) return undefined;
    const start = byteToChar[pos - tb.length]!;
    out.push([start, charEnd(pos)]);
  }
  return pos === bytes.length ? out : undefined;
}

/** Index just past the character starting at `c`. */
function nextChar(text: string, c: number): number {
  return c + (text.codePointAt(c)! > 0xffff ? 2 : 1);
}

/** Pads an encoding to `target` tokens (no-op when already as long). */
export function padEncoding(e: Encoding, target: number, padId: number, padToken: string, left: boolean): Encoding {
  const n = target - e.ids.length;
  if (n <= 0) return e;
  const fill = <T>(a: T[], v: T) => (left ? [...new Array<T>(n).fill(v), ...a] : [...a, ...new Array<T>(n).fill(v)]);
  const out: Encoding = {
    ids: fill(e.ids, padId),
    tokens: fill(e.tokens, padToken),
    attentionMask: fill(e.attentionMask, 0),
  };
  if (e.tokenTypeIds) out.tokenTypeIds = fill(e.tokenTypeIds, 0);
  if (e.offsets) out.offsets = fill<[number, number]>(e.offsets, [0, 0]);
  return out;
}

/** tokenizer.json `added_tokens` plus any `added_tokens_decoder` entries it lacks (by id). */
export function mergeAddedTokens(
  added: unknown,
  decoder: unknown,
): { id: number; content: string; special?: boolean }[] {
  if (added !== undefined && added !== null && !Array.isArray(added))
    throw new TokenizerError("tokenizer.json", "added_tokens", "expected an array");
  const list = ((added as unknown[] | undefined) ?? []).map((t, i) => {
    const e = t as { id?: unknown; content?: unknown };
    if (!isObject(t) || !Number.isSafeInteger(e.id) || (e.id as number) < 0 || typeof e.content !== "string") {
      throw new TokenizerError(
        "tokenizer.json",
        `added_tokens[${i}]`,
        "expected {id: non-negative integer, content: string}",
      );
    }
    return t as { id: number; content: string; special?: boolean };
  });
  if (decoder === undefined || decoder === null) return list;
  if (!isObject(decoder))
    throw new TokenizerError("tokenizer_config.json", "added_tokens_decoder", "expected an object of id -> token");
  const have = new Set(list.map((t) => t.id));
  for (const [k, v] of Object.entries(decoder)) {
    const id = Number(k);
    if (!/^\d+$/.test(k) || !isObject(v) || typeof v.content !== "string") {
      throw new TokenizerError(
        "tokenizer_config.json",
        `added_tokens_decoder.${k}`,
        "expected a numeric id key and {content: string}",
      );
    }
    if (!have.has(id))
      list.push({
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: false,
        ...v,
        id,
      } as never);
  }
  return list;
}
