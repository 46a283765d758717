/**
 * `renderExample`: one encoded example as text, with the tokens that carry loss marked, for
 * `tunekit plan` and for eyeballing a chat template's mask before spending compute.
 *
 * For LM examples, a token is marked when it is a target of the shifted loss: labels[t] != -100
 * and t >= 1 (labels[0] is never predicted). Runs of trained tokens are wrapped in `[[` `]]`;
 * packed documents are separated by ` ‖ `.
 *
 * @example
 * ```ts
 * renderExample(enc.examples[0], tok);
 * // "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n[[Hello!<|im_end|>\n]]"
 * ```
 */
import type { Tokenizer } from "../../tokenize/tokenizer.ts";
import { type EncodedExample, IGNORE_INDEX } from "../batch.ts";

/** Options for {@link renderExample}. */
export interface RenderOptions {
  /** Class names for classification examples (`LabelSet.names`). */
  labelNames?: readonly string[];
  /** Markers around trained spans. Default `["[[", "]]"]`. */
  marks?: [string, string];
}

/**
 * Renders one encoded example with its trained tokens marked.
 *
 * @example renderExample(example, tokenizer, { labelNames: ["neg", "pos"] }) // "great film -> label: pos (1)"
 */
export function renderExample(example: EncodedExample, tokenizer: Tokenizer, options: RenderOptions = {}): string {
  const [open, close] = options.marks ?? ["[[", "]]"];
  const decode = (ids: number[]) => tokenizer.decode(ids);
  if (!example.labels) {
    const text = decode(example.inputIds);
    const l = example.label;
    const shown =
      typeof l === "number"
        ? `${options.labelNames?.[l] ?? l} (${l})`
        : Array.isArray(l) && options.labelNames && l.every((x) => x === 0 || x === 1)
          ? `[${l.flatMap((x, i) => (x === 1 ? [options.labelNames![i]] : [])).join(", ")}]`
          : JSON.stringify(l);
    return `${text} -> label: ${shown}`;
  }
  const ids = example.inputIds;
  const labels = example.labels;
  const seg = example.segmentIds;
  let out = "";
  let run: number[] = [];
  let runTrained = false;
  const flush = () => {
    if (run.length) out += runTrained ? `${open}${decode(run)}${close}` : decode(run);
    run = [];
  };
  for (let t = 0; t < ids.length; t++) {
    if (seg && seg[t] === 0) break;
    if (seg && t > 0 && seg[t] !== seg[t - 1]) {
      flush();
      out += " ‖ ";
    }
    const trained = t >= 1 && labels[t] !== IGNORE_INDEX;
    if (trained !== runTrained) {
      flush();
      runTrained = trained;
    }
    run.push(ids[t]!);
  }
  flush();
  return out;
}
