// Native SGEMM against the reference matmul: odd sizes, every transpose combination (as permuted
// views), sliced inputs, broadcast batch dims (stride 0) and accumulate.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { loadAddon } from "../../src/backend/native-binding.ts";
import { absT, assertClose, assertCloseScaled, expandTo, nat, permutedView, randT, ref, skip, slicedView, zerosT } from "./helpers.ts";
import type { Tensor } from "../../src/tensor/tensor.ts";

function both(a: Tensor, b: Tensor, outShape: number[], accumulate = false, what = ""): void {
  const o1 = accumulate ? randT(outShape) : zerosT(outShape);
  const o2 = zerosT(outShape);
  o2.data.set(o1.data);
  nat().matmul(a, b, o1, accumulate);
  ref.matmul(a, b, o2, accumulate);
  // plain 1e-5 relative; K >= 512 float32 sums need the scaled check below instead
  assertClose(o1, o2, a.shape[a.ndim - 1] >= 512 ? 1e-4 : 1e-5, what);
  // tight check relative to sum |a||b| (+ |out| when accumulating): the float32 GEMM error scale
  const scale = accumulate ? absT(o2) : zerosT(outShape);
  ref.matmul(absT(a), absT(b), scale, accumulate);
  assertCloseScaled(o1, o2, scale, 1e-6, what);
}

describe("native matmul", { skip }, () => {
  test("runs the ISA path TUNEKIT_ISA asks for", () => {
    const r = loadAddon();
    assert.ok("info" in r);
    if (process.env.TUNEKIT_ISA) assert.equal(r.info.isa, process.env.TUNEKIT_ISA);
    assert.ok(r.info.available.includes(r.info.isa));
    console.log(`# native isa=${r.info.isa} threads=${r.info.threads} available=${r.info.available.join(",")}`);
  });
  const sizes: [number, number, number][] = [
    [1, 1, 1], [1, 7, 33], [7, 1, 257], [33, 33, 1], [257, 7, 33], [7, 257, 33], [33, 1023, 7], [1023, 7, 33], [65, 130, 257], [7, 33, 1023],
  ];
  test("all transpose combinations", () => {
    for (const [M, N, K] of sizes)
      for (const ta of [false, true])
        for (const tb of [false, true]) {
          const a = ta ? permutedView([M, K], [1, 0]) : randT([M, K]);
          const b = tb ? permutedView([K, N], [1, 0]) : randT([K, N]);
          both(a, b, [M, N], false, `${M}x${N}x${K} ta=${ta} tb=${tb}`);
        }
  });
  test("sliced operands and accumulate", () => {
    for (const [M, N, K] of sizes.slice(0, 8)) {
      both(slicedView([M, K]), slicedView([K, N]), [M, N], true, `sliced ${M}x${N}x${K}`);
    }
  });
  test("batched with broadcast batch dims", () => {
    const a = randT([3, 1, 33, 17]);
    const b = randT([1, 4, 17, 7]);
    both(expandTo(a, [3, 4, 33, 17]), expandTo(b, [3, 4, 17, 7]), [3, 4, 33, 7], false, "broadcast batch");
    const w = randT([257, 33]); // (K, N) shared by every batch
    both(randT([9, 7, 257]), expandTo(w, [9, 257, 33]), [9, 7, 33], false, "shared weight");
    both(permutedView([5, 33, 65], [0, 2, 1]), permutedView([5, 65, 257], [2, 0, 1]), [5, 33, 257], true, "permuted batched");
  });
  test("large enough to thread", () => {
    both(randT([300, 200]), permutedView([200, 513], [1, 0]), [300, 513], false, "300x513x200");
    both(permutedView([129, 600], [1, 0]), randT([600, 700]), [129, 700], false, "129x700x600");
  });
  test("float64 falls back to the reference", () => {
    const a = randT([7, 5], -1, 1, "float64");
    const b = randT([5, 3], -1, 1, "float64");
    const o1 = zerosT([7, 3], "float64");
    const o2 = zerosT([7, 3], "float64");
    nat().matmul(a, b, o1);
    ref.matmul(a, b, o2);
    assertClose(o1, o2, 1e-12, "float64");
  });
});
