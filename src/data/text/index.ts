/**
 * Text data: read CSV/TSV/JSONL/Parquet, map columns, resolve labels, split, tokenize, pack and
 * render. Batches and the loader live in `../batch.ts`, errors in `../errors.ts`.
 *
 * @example
 * ```ts
 * import { prepareTextData, formatLengthStats } from "./data/text/index.ts";
 * ```
 */
export {
  type ClassificationExample,
  type ColumnMap,
  type LmExample,
  type LmFormat,
  type LoadTextOptions,
  loadTextDataset,
  type TextDataset,
  type TextExample,
  type TextTask,
} from "./dataset.ts";
export {
  type EncodedDataset,
  type EncodeTextOptions,
  encodeTextDataset,
  formatLengthStats,
  type LengthStats,
  lengthStats,
  packSequences,
  resolvePadTokenId,
} from "./encode.ts";
export { LabelSet, labelNamesFromConfig, type ProblemType } from "./labels.ts";
export { type PreparedTextData, type PrepareTextOptions, prepareTextData } from "./prepare.ts";
export { type DataFormat, type DataRecord, detectFormat, type ReadOptions, readRecords } from "./read.ts";
export { type RenderOptions, renderExample } from "./render.ts";
