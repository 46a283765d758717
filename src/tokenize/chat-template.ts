/**
 * Chat templates (Jinja, rendered with `@huggingface/jinja`) and the assistant-token mask used
 * for "loss on assistant turns only".
 *
 * How the mask is found (no `{% generation %}` markers needed, so it works with any template
 * that renders conversations prefix-stably, as ChatML, Llama 3, Mistral and Gemma templates do):
 *
 * 1. Character spans. For each assistant message i, render messages[0..i) with
 *    `add_generation_prompt: true` (the text up to where the reply starts) and messages[0..i]
 *    (the text up to the end of the reply's turn, e.g. `...<|im_end|>\n`). Both must be prefixes
 *    of the full rendering; the span between them is the assistant's: its content plus whatever
 *    the template closes the turn with (the end-of-turn token, which the model must learn).
 *    If a template is not prefix-stable (e.g. it rewrites earlier turns), the span falls back to
 *    the message content found by search, plus the eos token if the template writes it next.
 * 2. Token boundaries. For a character boundary b, encode text[0..b) and text[b..) separately
 *    and compare them with the full encoding: the longest common token prefix and suffix pin down
 *    the boundary; tokens left between them (normally the one token that straddles it) count as
 *    assistant, as in transformers, where the token holding the span's first/last character
 *    (char_to_token) is included.
 */
import { Template } from "@huggingface/jinja";
import { TokenizerError } from "./errors.ts";

/** A chat message as chat templates expect it. */
export interface ChatMessage {
  role: string;
  content: string | null | unknown[];
  [key: string]: unknown;
}

/** A character span [start, end) of the rendered text. */
export type Span = [number, number];

/**
 * Picks the template: `chat_template` may be a string, or a list of `{name, template}`; with a
 * list, `name` wins, else `tool_use` when tools are given and it exists, else `default`.
 */
export function selectTemplate(chatTemplate: unknown, file: string, name?: string, hasTools = false): string {
  if (typeof chatTemplate === "string") {
    if (name !== undefined && name !== "default") {
      throw new TokenizerError(
        file,
        "chat_template",
        `has a single template, no template named ${JSON.stringify(name)}`,
      );
    }
    return chatTemplate;
  }
  if (chatTemplate === undefined || chatTemplate === null) {
    throw new TokenizerError(file, "chat_template", "is missing: this tokenizer has no chat template");
  }
  if (!Array.isArray(chatTemplate))
    throw new TokenizerError(file, "chat_template", "expected a string or a list of {name, template}");
  const named = new Map<string, string>();
  for (const [i, t] of chatTemplate.entries()) {
    const entry = t as { name?: unknown; template?: unknown };
    if (typeof entry?.name !== "string" || typeof entry.template !== "string") {
      throw new TokenizerError(file, `chat_template[${i}]`, "expected {name: string, template: string}");
    }
    named.set(entry.name, entry.template);
  }
  const wanted = name ?? (hasTools && named.has("tool_use") ? "tool_use" : "default");
  const found = named.get(wanted);
  if (found === undefined) {
    throw new TokenizerError(
      file,
      "chat_template",
      `no template named ${JSON.stringify(wanted)} (have ${[...named.keys()].join(", ")})`,
    );
  }
  return found;
}

/** Caches parsed templates: parsing is the slow part and masks render many prefixes. */
const parsed = new Map<string, Template>();

/** Renders `source` with `context`; template errors become a {@link TokenizerError} naming the file. */
export function renderTemplate(source: string, context: Record<string, unknown>, file: string): string {
  let t = parsed.get(source);
  try {
    if (!t) {
      t = new Template(source);
      if (parsed.size > 16) parsed.clear();
      parsed.set(source, t);
    }
    return t.render(context);
  } catch (err) {
    throw new TokenizerError(file, "chat_template", `failed to render: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Character spans of each assistant turn in `full` (the rendering of all `messages` without a
 * generation prompt). `render(msgs, addGenerationPrompt)` renders a prefix of the conversation.
 */
export function assistantSpans(
  messages: ChatMessage[],
  full: string,
  render: (msgs: ChatMessage[], addGenerationPrompt: boolean) => string,
  eosToken: string | undefined,
): Span[] {
  const spans: Span[] = [];
  let searchFrom = 0;
  for (let i = 0; i < messages.length; i++) {
    if (messages[i]!.role !== "assistant") continue;
    const before = render(messages.slice(0, i), true);
    const through = i === messages.length - 1 ? full : render(messages.slice(0, i + 1), false);
    if (full.startsWith(before) && full.startsWith(through) && through.length >= before.length) {
      spans.push([before.length, through.length]);
      searchFrom = through.length;
      continue;
    }
    const content = messages[i]!.content;
    const text = typeof content === "string" ? content : "";
    const at = text.length > 0 ? full.indexOf(text, searchFrom) : -1;
    if (at < 0) {
      throw new TokenizerError(
        "tokenizer_config.json",
        "chat_template",
        `cannot locate assistant message ${i} in the rendered conversation`,
      );
    }
    let end = at + text.length;
    if (eosToken && full.startsWith(eosToken, end)) end += eosToken.length;
    spans.push([at, end]);
    searchFrom = end;
  }
  return spans;
}

/** Length of the common prefix of two id arrays. */
function commonPrefix(a: number[], b: number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** Length of the common suffix of two id arrays, at most `limit`. */
function commonSuffix(a: number[], b: number[], limit: number): number {
  let n = 0;
  while (n < limit && n < a.length && n < b.length && a[a.length - 1 - n] === b[b.length - 1 - n]) n++;
  return n;
}

/**
 * Token range [first, last) that holds character boundary `b`: tokens before `first` lie wholly
 * before b, tokens from `last` on wholly after; any in between straddle it.
 */
function boundaryTokens(text: string, ids: number[], b: number, encode: (s: string) => number[]): [number, number] {
  if (b <= 0) return [0, 0];
  if (b >= text.length) return [ids.length, ids.length];
  const pre = encode(text.slice(0, b));
  const first = commonPrefix(pre, ids);
  const post = encode(text.slice(b));
  const last = ids.length - commonSuffix(post, ids, ids.length - first);
  return [first, Math.max(first, last)];
}

/**
 * Per-token mask: true for tokens that hold any character of any span (see the module comment).
 * `encode` must encode without adding special tokens, like the one that produced `ids`.
 */
export function spansToTokenMask(
  text: string,
  ids: number[],
  spans: Span[],
  encode: (s: string) => number[],
): boolean[] {
  const mask = new Array<boolean>(ids.length).fill(false);
  for (const [start, end] of spans) {
    if (end <= start) continue;
    const [startFirst] = boundaryTokens(text, ids, start, encode);
    const [, endLast] = boundaryTokens(text, ids, end, encode);
    for (let t = startFirst; t < endLast; t++) mask[t] = true;
  }
  return mask;
}
