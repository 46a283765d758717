// Packed sequences: with segment ids, each document's logits equal those of the document run
// alone (no attention across documents), for gpt2 and llama.
import assert from "node:assert/strict";
import { test } from "node:test";
import { loadPretrained } from "../../src/models/index.ts";
import * as F from "../../src/ops/index.ts";
import { tensor } from "../../src/tensor/tensor.ts";
import { assertClose } from "../helpers.ts";

for (const name of ["gpt2", "llama"]) {
  test(`${name}: a packed block equals its documents run separately`, async () => {
    const model = (await loadPretrained(`test/fixtures/models/${name}`)) as unknown as {
      forward(i: Record<string, unknown>): { logits: import("../../src/tensor/tensor.ts").Tensor };
    };
    const a = [5, 9, 17, 3];
    const b = [11, 2, 40];
    const ids = tensor(Int32Array.from([...a, ...b, 0]), { shape: [1, 8] });
    const seg = tensor(Int32Array.from([1, 1, 1, 1, 2, 2, 2, 0]), { shape: [1, 8] });
    const pos = tensor(Int32Array.from([0, 1, 2, 3, 0, 1, 2, 0]), { shape: [1, 8] });
    const packed = model.forward({ inputIds: ids, segmentIds: seg, positionIds: pos }).logits;
    const alone = (d: number[]) => model.forward({ inputIds: tensor(Int32Array.from(d), { shape: [1, d.length] }) }).logits;
    assertClose(F.slice(packed, 1, 0, 4), alone(a), 1e-5, "document 1");
    assertClose(F.slice(packed, 1, 4, 7), alone(b), 1e-5, "document 2");
    // without segment ids the second document does see the first one
    const leaky = model.forward({ inputIds: ids, positionIds: pos }).logits;
    assert.ok(Math.abs(F.slice(leaky, 1, 4, 7).toList()[0] - alone(b).toList()[0]) > 1e-6);
  });
}

test("gpt2 applies its config's dropouts in train() mode only", async () => {
  const model = (await loadPretrained("test/fixtures/models/gpt2")) as unknown as {
    forward(i: Record<string, unknown>): { logits: import("../../src/tensor/tensor.ts").Tensor };
    train(on?: boolean): unknown;
    eval(): unknown;
  };
  const ids = tensor(Int32Array.from([5, 9, 17, 3]), { shape: [1, 4] });
  model.eval();
  assert.deepEqual(model.forward({ inputIds: ids }).logits.toList(), model.forward({ inputIds: ids }).logits.toList());
  model.train();
  // the fixture's config has 0 dropout (the parity fixtures ran without it): set HF's defaults
  const cfg = (model as unknown as { transformer: { cfg: Record<string, number> } }).transformer.cfg;
  Object.assign(cfg, { attn_pdrop: 0.1, resid_pdrop: 0.1, embd_pdrop: 0.1 });
  const a = model.forward({ inputIds: ids }).logits.toList();
  const b = model.forward({ inputIds: ids }).logits.toList();
  assert.notDeepEqual(a, b);
});
