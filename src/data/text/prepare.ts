/**
 * `prepareTextData`: the one call the trainer makes for text. Loads the train file (and the
 * validation/test files when given), splits a validation set off train when none is given
 * (stratified by label for single-label classification), tokenizes everything and returns the
 * encoded splits with length statistics and the label set to save in the model config.
 *
 * @example
 * ```ts
 * const data = await prepareTextData({ train: "reviews.csv", task: "text-classification", tokenizer: tok,
 *   columns: { text: "review", label: "sentiment" }, maxLength: 256 });
 * console.log(formatLengthStats(data.train.stats));
 * const loader = new DataLoader(data.train.examples, { batchSize: 16, seed: 42, padTokenId: data.train.padTokenId });
 * ```
 */
import type { Tokenizer } from "../../tokenize/tokenizer.ts";
import type { SkippedLine } from "../errors.ts";
import { splitIndices, subset } from "../split.ts";
import { type LoadTextOptions, loadTextDataset, type TextDataset } from "./dataset.ts";
import { type EncodedDataset, type EncodeTextOptions, encodeTextDataset } from "./encode.ts";
import type { LabelSet, ProblemType } from "./labels.ts";

/** Options for {@link prepareTextData}. */
export interface PrepareTextOptions extends LoadTextOptions, EncodeTextOptions {
  train: string;
  validation?: string;
  test?: string;
  tokenizer: Tokenizer;
  /** Fraction of train held out for validation when no validation file is given. Default 0.1; 0 for none. */
  validationSplit?: number;
  /** Fraction of train held out for test when no test file is given. Default 0. */
  testSplit?: number;
  /** Split seed. Default 42. */
  seed?: number;
}

/** What {@link prepareTextData} returns. */
export interface PreparedTextData {
  train: EncodedDataset;
  validation?: EncodedDataset;
  test?: EncodedDataset;
  /** Label names in id order, for `id2label`/`label2id` in the saved config. */
  labels?: LabelSet;
  problemType?: ProblemType;
  /** Every record skipped with `skipInvalid`, all files, in file and line order. */
  skipped: SkippedLine[];
}

/** Loads, splits and tokenizes a text dataset. Every data error surfaces here, before training. */
export async function prepareTextData(options: PrepareTextOptions): Promise<PreparedTextData> {
  const { tokenizer } = options;
  let train: TextDataset = await loadTextDataset(options.train, options);
  const fixed = {
    ...options,
    ...(train.labels ? { labels: train.labels.names } : {}),
    ...(train.lmFormat ? { lmFormat: train.lmFormat } : {}),
  };
  let validation = options.validation ? await loadTextDataset(options.validation, fixed) : undefined;
  let test = options.test ? await loadTextDataset(options.test, fixed) : undefined;
  const fVal = validation ? 0 : (options.validationSplit ?? 0.1);
  const fTest = test ? 0 : (options.testSplit ?? 0);
  if (fVal > 0 || fTest > 0) {
    const stratify =
      train.problemType === "single_label_classification"
        ? train.examples.map((e) => (e.kind === "classification" ? (e.label as number) : 0))
        : undefined;
    const parts = splitIndices(train.examples.length, {
      validation: fVal,
      test: fTest,
      seed: options.seed ?? 42,
      ...(stratify ? { stratify } : {}),
    });
    if (fVal > 0) validation = { ...subset(train, parts.validation), skipped: [] };
    if (fTest > 0) test = { ...subset(train, parts.test), skipped: [] };
    train = subset(train, parts.train);
  }
  const enc = (ds: TextDataset) => encodeTextDataset(ds, tokenizer, options);
  const out: PreparedTextData = { train: enc(train), skipped: [] };
  if (validation && validation.examples.length > 0) out.validation = enc(validation);
  if (test && test.examples.length > 0) out.test = enc(test);
  if (train.labels) out.labels = train.labels;
  if (train.problemType) out.problemType = train.problemType;
  for (const ds of [train, validation, test]) if (ds) out.skipped.push(...ds.skipped);
  for (const e of [out.train, out.validation, out.test]) if (e) out.skipped.push(...e.skipped);
  return out;
}
