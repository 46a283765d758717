// Dropout's keep mask is drawn straight into bool storage: the same random stream, mask, output
// and gradient as the composite definition where(gt(rand(shape), p), x / (1 - p), 0), on every
// backend, and the generator ends in the same state.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { grad } from "../../src/autograd/index.ts";
import { backend, referenceBackend, setBackend } from "../../src/backend/index.ts";
import { loadNativeBackend } from "../../src/backend/native.ts";
import { bernoulliKeep } from "../../src/ops/functional.ts";
import * as F from "../../src/ops/index.ts";
import { Generator } from "../../src/tensor/rng.ts";
import { rand, randn, type Tensor } from "../../src/tensor/tensor.ts";

const composite = (x: Tensor, p: number, g: Generator) =>
  F.where(F.gt(rand(x.shape, { generator: g }), p), F.div(x, 1 - p), 0);

describe("dropout mask drawn without a float tensor", () => {
  const loaded = loadNativeBackend();
  const backends = [referenceBackend, ...("backend" in loaded ? [loaded.backend] : [])];
  test("same mask, output, gradient and generator state as the composite (reference + native, f32 + f64)", () => {
    const prev = backend();
    try {
      for (const be of backends) {
        setBackend(be);
        for (const dtype of ["float32", "float64"] as const) check(dtype);
      }
    } finally {
      setBackend(prev);
    }
  });

  function check(dtype: "float32" | "float64"): void {
    for (const p of [0.1, 0.3, 1 / 3, 0.5, 0.9, 0.999])
      for (const shape of [[1], [7, 33], [2, 3, 5, 4]]) {
        const x = randn(shape, { dtype, requiresGrad: true, generator: new Generator(7) });
        const [g1, g2] = [new Generator(42), new Generator(42)];
        const keep = bernoulliKeep(shape, p, g1);
        const want = F.gt(rand(shape, { generator: g2 }), p);
        assert.equal(keep.dtype, "bool");
        assert.deepEqual(Array.from(keep.data), Array.from(want.data), `mask p=${p} ${shape}`);
        assert.equal(g1.random(), g2.random(), "generator state after the draw");

        const [g3, g4] = [new Generator(5), new Generator(5)];
        const y1 = F.dropout(x, p, true, g3);
        const y2 = composite(x, p, g4);
        assert.deepEqual(Array.from(y1.data), Array.from(y2.data), `output p=${p} ${shape}`);
        const dy = randn(shape, { generator: new Generator(9) });
        const [d1] = grad(y1, [x], dy);
        const [d2] = grad(y2, [x], dy);
        assert.deepEqual(Array.from(d1.data), Array.from(d2.data), `gradient p=${p} ${shape}`);
        assert.equal(y1.dtype, dtype);
      }
  }

  test("non-contiguous input: same numbers as the composite", () => {
    const x = randn([6, 5], { requiresGrad: true, generator: new Generator(1) });
    const xt = F.transpose(x, 0, 1);
    const y1 = F.dropout(xt, 0.4, true, new Generator(11));
    const y2 = composite(xt, 0.4, new Generator(11));
    assert.deepEqual(Array.from(y1.data), Array.from(y2.data));
  });

  test("keep rate follows p", () => {
    const keep = bernoulliKeep([100000], 0.25, new Generator(3));
    let kept = 0;
    for (const v of keep.data) kept += v;
    assert.ok(Math.abs(kept / 100000 - 0.75) < 0.01, `kept fraction ${kept / 100000}`);
  });
});
