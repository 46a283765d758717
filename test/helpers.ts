/** Shared test helpers: fixture loading and tolerance checks that print what differs. */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import sharp from "sharp";
import { parseSafetensors } from "../src/formats/safetensors.ts";
import { rawToTensor } from "../src/formats/tensors.ts";
import { cast } from "../src/ops/index.ts";
import { Generator } from "../src/tensor/rng.ts";
import type { Tensor } from "../src/tensor/tensor.ts";

export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "fixtures");

/** Loads a safetensors fixture into a name -> Tensor map. */
export function loadTensors(rel: string): Map<string, Tensor> {
  const file = join(FIXTURES, rel);
  const st = parseSafetensors(new Uint8Array(readFileSync(file)), file);
  const out = new Map<string, Tensor>();
  for (const [k, v] of st.tensors) out.set(k, rawToTensor(v, k, file));
  return out;
}

export function loadJson<T = unknown>(rel: string): T {
  return JSON.parse(readFileSync(join(FIXTURES, rel), "utf8")) as T;
}

/** max |a-b| / max(1, |b|) over all elements. */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i]));
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : Math.max(m, d);
  }
  return m;
}

/** Asserts same shape and values within `tol` (relative as above), printing first values on failure. */
export function assertClose(
  actual: Tensor | ArrayLike<number>,
  expected: Tensor | ArrayLike<number>,
  tol: number,
  what: string,
): void {
  const isT = (x: unknown): x is Tensor => typeof (x as Tensor).toFloat64Array === "function";
  if (isT(actual) && isT(expected)) assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  const a = isT(actual) ? actual.toFloat64Array() : actual;
  const e = isT(expected) ? expected.toFloat64Array() : expected;
  assert.equal(a.length, e.length, `${what}: length`);
  const d = maxRelDiff(a, e);
  if (!(d <= tol)) {
    const first = (x: ArrayLike<number>) =>
      Array.from(x)
        .slice(0, 6)
        .map((v) => v.toPrecision(7))
        .join(", ");
    assert.fail(
      `${what}: max rel diff ${d.toExponential(3)} > ${tol}\n  actual:   ${first(a)}\n  expected: ${first(e)}`,
    );
  }
}

export function f64(t: Tensor): Tensor {
  return t.dtype === "float32" ? cast(t, "float64") : t;
}

/** A two-class image folder (`red`, `blue`: noisy 24x24 PNGs), seeded. */
export async function imageFolder(dir: string, perClass: number, seed: number): Promise<string> {
  const g = new Generator(seed);
  for (const [cls, rgb] of [
    ["red", [200, 40, 40]],
    ["blue", [40, 40, 200]],
  ] as const) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(24 * 24 * 3);
      for (let j = 0; j < px.length; j++) px[j] = Math.max(0, Math.min(255, rgb[j % 3] + g.randint(-60, 60)));
      await sharp(px, { raw: { width: 24, height: 24, channels: 3 } })
        .png()
        .toFile(join(dir, cls, `${i}.png`));
    }
  }
  return dir;
}

/** transformers' BERT post-processor as tokenizer.json writes it: [CLS] A [SEP] (B [SEP]). */
export function bertPostProcessor(clsId: number, sepId: number): Record<string, unknown> {
  const cls = { SpecialToken: { id: "[CLS]", type_id: 0 } };
  const sep = (type_id: number) => ({ SpecialToken: { id: "[SEP]", type_id } });
  return {
    type: "TemplateProcessing",
    single: [cls, { Sequence: { id: "A", type_id: 0 } }, sep(0)],
    pair: [cls, { Sequence: { id: "A", type_id: 0 } }, sep(0), { Sequence: { id: "B", type_id: 1 } }, sep(1)],
    special_tokens: {
      "[CLS]": { id: "[CLS]", ids: [clsId], tokens: ["[CLS]"] },
      "[SEP]": { id: "[SEP]", ids: [sepId], tokens: ["[SEP]"] },
    },
  };
}
