/** Shared test helpers: fixture loading and tolerance checks that print what differs. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseSafetensors } from "../src/formats/safetensors.ts";
import { rawToTensor } from "../src/formats/tensors.ts";
import type { Tensor } from "../src/tensor/tensor.ts";
import { cast } from "../src/ops/index.ts";

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
export function assertClose(actual: Tensor | ArrayLike<number>, expected: Tensor | ArrayLike<number>, tol: number, what: string): void {
  const isT = (x: unknown): x is Tensor => typeof (x as Tensor).toFloat64Array === "function";
  if (isT(actual) && isT(expected)) assert.deepEqual([...actual.shape], [...expected.shape], `${what}: shape`);
  const a = isT(actual) ? actual.toFloat64Array() : actual;
  const e = isT(expected) ? expected.toFloat64Array() : expected;
  assert.equal(a.length, e.length, `${what}: length`);
  const d = maxRelDiff(a, e);
  if (!(d <= tol)) {
    const first = (x: ArrayLike<number>) => Array.from(x).slice(0, 6).map((v) => v.toPrecision(7)).join(", ");
    assert.fail(`${what}: max rel diff ${d.toExponential(3)} > ${tol}\n  actual:   ${first(a)}\n  expected: ${first(e)}`);
  }
}

export function f64(t: Tensor): Tensor {
  return t.dtype === "float32" ? cast(t, "float64") : t;
}
