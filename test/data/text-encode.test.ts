import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, test } from "node:test";
import { collate, countTargets, IGNORE_INDEX } from "../../src/data/batch.ts";
import { DataError } from "../../src/data/errors.ts";
import { loadTextDataset } from "../../src/data/text/dataset.ts";
import { encodeTextDataset, formatLengthStats, packSequences } from "../../src/data/text/encode.ts";
import { prepareTextData } from "../../src/data/text/prepare.ts";
import { renderExample } from "../../src/data/text/render.ts";
import { Tokenizer } from "../../src/tokenize/tokenizer.ts";
import { FIXTURES } from "../helpers.ts";

const DIR = join(FIXTURES, "data", "text");
const f = (name: string) => join(DIR, name);
const CLS = "text-classification" as const;
const REVIEWS = { task: CLS, columns: { text: "review", label: "sentiment" } };

async function rejectsWith(p: Promise<unknown> | (() => unknown), code: string, re: RegExp): Promise<DataError> {
  let caught: unknown;
  try {
    await (typeof p === "function" ? p() : p);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof DataError, `expected a DataError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  assert.match(caught.message, re);
  return caught;
}

/** The additive-mask rule of the batch contract: i may attend to j iff same non-zero segment and j <= i. */
function allowed(seg: ArrayLike<number>, T: number, row: number, i: number, j: number): boolean {
  const a = seg[row * T + i]!;
  return a !== 0 && a === seg[row * T + j] && j <= i;
}

describe("text encoding", async () => {
  const tok = await Tokenizer.fromDir(join(FIXTURES, "tokenize", "chatml"));
  const EOS = tok.eosTokenId!;

  test("classification: truncation to maxLength and exact length statistics", async () => {
    const ds = await loadTextDataset(f("reviews.csv"), REVIEWS);
    const full = ds.examples.map((e) => tok.encode((e as { text: string }).text).ids);
    const enc = encodeTextDataset(ds, tok, { maxLength: 20 });
    const lengths = full.map((x) => x.length).sort((a, b) => a - b);
    const over = full.filter((x) => x.length > 20).length;
    assert.ok(over > 0 && over < full.length, "the fixture has examples on both sides of 20 tokens");
    assert.equal(enc.stats.count, 12);
    assert.equal(enc.stats.truncated, over);
    assert.equal(enc.stats.percentTruncated, (100 * over) / 12);
    assert.equal(enc.stats.max, lengths[11]);
    assert.equal(enc.stats.min, lengths[0]);
    assert.equal(enc.stats.p50, lengths[5], "nearest rank: ceil(0.5 * 12) = 6th");
    assert.equal(enc.stats.p90, lengths[10]);
    assert.equal(enc.stats.mean, lengths.reduce((a, b) => a + b, 0) / 12);
    enc.examples.forEach((e, i) => {
      assert.deepEqual(e.inputIds, full[i]!.slice(0, 20));
      assert.deepEqual(e.origins, [i]);
    });
    assert.deepEqual(
      enc.examples.map((e) => e.label),
      [2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1],
    );
    assert.equal(enc.padTokenId, tok.padTokenId);
    assert.match(
      formatLengthStats(enc.stats),
      new RegExp(
        `^12 examples, tokens per example: mean [\\d.]+, p50 ${lengths[5]}, .*; ${over} \\(\\d+\\.\\d%\\) truncated to 20$`,
      ),
    );
  });

  test("dynamic padding: pad to the longest in the batch, right side, pad id, attention mask", async () => {
    const enc = encodeTextDataset(await loadTextDataset(f("reviews.csv"), REVIEWS), tok, { maxLength: 64 });
    const rows = [enc.examples[2]!, enc.examples[0]!, enc.examples[3]!];
    const T = Math.max(...rows.map((r) => r.inputIds.length));
    const b = collate(rows, [2, 0, 3], { padTokenId: enc.padTokenId });
    assert.deepEqual([...b.inputIds.shape], [3, T]);
    assert.equal(b.inputIds.dtype, "int32");
    assert.deepEqual([...b.labels.shape], [3]);
    assert.equal(b.labels.dtype, "int32");
    assert.deepEqual([...b.labels.toFloat64Array()], [1, 2, 2]);
    assert.equal(b.numTargets, 3);
    assert.deepEqual(b.indices, [2, 0, 3]);
    const ids = b.inputIds.toFloat64Array();
    const mask = b.attentionMask.toFloat64Array();
    rows.forEach((r, i) => {
      for (let t = 0; t < T; t++) {
        assert.equal(ids[i * T + t], t < r.inputIds.length ? r.inputIds[t] : enc.padTokenId);
        assert.equal(mask[i * T + t], t < r.inputIds.length ? 1 : 0);
      }
    });
    assert.equal(
      collate(rows, [0, 1, 2], { padTokenId: 2, padToMultipleOf: 8 }).inputIds.shape[1],
      Math.ceil(T / 8) * 8,
    );
  });

  test("multi-label and regression labels collate to float32 (B, K)", async () => {
    const ml = encodeTextDataset(
      await loadTextDataset(f("multilabel.jsonl"), {
        task: CLS,
        columns: { label: "tags" },
        problemType: "multi_label_classification",
      }),
      tok,
    );
    const b = collate(ml.examples, [0, 1, 2, 3], { padTokenId: 2 });
    assert.equal(b.labels.dtype, "float32");
    assert.deepEqual([...b.labels.shape], [4, 3]);
    assert.deepEqual([...b.labels.toFloat64Array()], [1, 1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1]);
    assert.equal(b.numTargets, 12);
    const rg = encodeTextDataset(
      await loadTextDataset(f("regression.csv"), { task: CLS, columns: { label: "score" }, problemType: "regression" }),
      tok,
    );
    const r = collate(rg.examples, [0, 1, 2], { padTokenId: 2 });
    assert.deepEqual([...r.labels.shape], [3, 1]);
    assert.deepEqual([...r.labels.toFloat64Array()], [4.5, 1, 3]);
    assert.equal(
      renderExample(ml.examples[0]!, tok, { labelNames: ml.labels!.names }),
      "funny and sad -> label: [funny, sad]",
    );
  });

  test("packing: block-diagonal segments, positions restart, boundary labels ignored, EOS trained", async () => {
    const ds = await loadTextDataset(f("lm.jsonl"), { task: "causal-lm" });
    const docs = ds.examples.map((e) => [...tok.encode((e as { text: string }).text).ids, EOS]);
    const flat = docs.flat();
    // A final block of one token has no target and would be dropped; this test keeps every token.
    assert.ok(flat.length % 12 > 1);
    const enc = encodeTextDataset(ds, tok, { blockSize: 12 });
    assert.equal(enc.packed, true);
    // Every token is kept, in order, across the blocks.
    assert.deepEqual(
      enc.examples.flatMap((b) => b.inputIds),
      flat,
    );
    assert.ok(enc.examples.slice(0, -1).every((b) => b.inputIds.length === 12));
    assert.equal(enc.stats.blocks, Math.ceil(flat.length / 12));
    assert.equal(enc.stats.truncated, 0);
    // Expected segment layout, computed independently: a piece per (document, block) overlap.
    let pos = 0;
    const expectSeg: number[][] = [];
    const expectPos: number[][] = [];
    const expectLab: number[][] = [];
    for (const d of docs) {
      for (let k = 0; k < d.length; k++, pos++) {
        const blk = Math.floor(pos / 12);
        expectSeg[blk] ??= [];
        expectPos[blk] ??= [];
        expectLab[blk] ??= [];
        const startsPiece = k === 0 || pos % 12 === 0;
        const prevSeg = expectSeg[blk].at(-1) ?? 0;
        expectSeg[blk].push(startsPiece ? prevSeg + 1 : prevSeg);
        expectPos[blk].push(startsPiece ? 0 : expectPos[blk].at(-1)! + 1);
        expectLab[blk].push(startsPiece ? IGNORE_INDEX : d[k]!);
      }
    }
    assert.deepEqual(
      enc.examples.map((b) => b.segmentIds),
      expectSeg,
    );
    assert.deepEqual(
      enc.examples.map((b) => b.positionIds),
      expectPos,
    );
    assert.deepEqual(
      enc.examples.map((b) => b.labels),
      expectLab,
    );
    // Each document's EOS is a target; no label is predicted across a boundary.
    for (const b of enc.examples) {
      b.labels!.forEach((l, t) => {
        if (l !== IGNORE_INDEX)
          assert.equal(b.segmentIds![t], b.segmentIds![t - 1], "a target's predecessor is in its document");
      });
    }
    const batch = collate(
      enc.examples,
      enc.examples.map((_, i) => i),
      { padTokenId: enc.padTokenId },
    );
    const B = enc.examples.length;
    const T = 12;
    assert.deepEqual([...batch.segmentIds!.shape], [B, T]);
    assert.deepEqual([...batch.positionIds!.shape], [B, T]);
    const seg = batch.segmentIds!.toFloat64Array();
    const mask = batch.attentionMask.toFloat64Array();
    for (let r = 0; r < B; r++) {
      for (let i = 0; i < T; i++) {
        assert.equal(mask[r * T + i], seg[r * T + i]! > 0 ? 1 : 0);
        for (let j = 0; j < T; j++) {
          const sameDoc = seg[r * T + i] !== 0 && seg[r * T + i] === seg[r * T + j];
          if (allowed(seg, T, r, i, j)) assert.ok(sameDoc && j <= i);
        }
      }
    }
    // At every document boundary inside a row, the new document cannot see the previous one.
    let boundaries = 0;
    for (let r = 0; r < B; r++) {
      for (let t = 1; t < T - 1; t++) {
        if (seg[r * T + t] === seg[r * T + t - 1] || seg[r * T + t] === 0) continue;
        boundaries++;
        assert.equal(allowed(seg, T, r, t, t - 1), false);
        for (let j = 0; j < t; j++) assert.equal(allowed(seg, T, r, t + 1, j), false);
        assert.equal(allowed(seg, T, r, t + 1, t), seg[r * T + t + 1] === seg[r * T + t]);
      }
    }
    assert.ok(boundaries >= 2, `the fixture has document boundaries inside blocks (${boundaries})`);
    assert.equal(batch.numTargets, expectLab.flat().filter((l, _i) => l !== IGNORE_INDEX).length);
    assert.equal(batch.numTargets, enc.stats.trainedTokens);
  });

  test("packSequences: split documents and dropped target-less blocks", () => {
    const seq = (ids: number[], origin: number) => ({ ids, labels: ids, origin });
    const { blocks, splitDocuments } = packSequences([seq([1, 2, 3], 0), seq([4, 5, 6, 7, 8], 1), seq([9], 2)], 4);
    assert.deepEqual(
      blocks.map((b) => b.inputIds),
      [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
      ],
      "the last block [9] has no target and is dropped",
    );
    assert.deepEqual(
      blocks.map((b) => b.segmentIds),
      [
        [1, 1, 1, 2],
        [1, 1, 1, 1],
      ],
    );
    assert.deepEqual(
      blocks.map((b) => b.positionIds),
      [
        [0, 1, 2, 0],
        [0, 1, 2, 3],
      ],
    );
    assert.deepEqual(
      blocks.map((b) => b.labels),
      [
        [-100, 2, 3, -100],
        [-100, 6, 7, 8],
      ],
    );
    assert.deepEqual(
      blocks.map((b) => b.origins),
      [[0, 1], [1]],
    );
    assert.equal(splitDocuments, 1);
  });

  test("prompt/completion: loss on the completion and EOS only", async () => {
    const ds = await loadTextDataset(f("prompts.jsonl"), { task: "causal-lm" });
    const enc = encodeTextDataset(ds, tok, { maxLength: 128 });
    assert.equal(enc.packed, false);
    const prompt = tok.encode("Translate to French: cat\n").ids;
    const completion = tok.encode("chat", { addSpecialTokens: false }).ids;
    const ex = enc.examples[0]!;
    assert.deepEqual(ex.inputIds, [...prompt, ...completion, EOS]);
    assert.deepEqual(ex.labels, [...prompt.map(() => -100), ...completion, EOS]);
    assert.equal(countTargets(ex.labels!), completion.length + 1);
    assert.equal(renderExample(ex, tok), "Translate to French: cat\n[[chat<|im_end|>]]");
  });

  test("prompt/completion: a completion truncated away stops with file:line (or is skipped)", async () => {
    const ds = await loadTextDataset(f("prompts.jsonl"), { task: "causal-lm" });
    const promptLen = tok.encode(
      "Translate to French: a very long sentence that will not fit in a short context window at all\n",
    ).ids.length;
    assert.ok(promptLen > 40 && tok.encode("Translate to French: dog\n").ids.length + 3 < 40);
    const e = await rejectsWith(
      () => encodeTextDataset(ds, tok, { maxLength: 40 }),
      "empty_loss_mask",
      /prompts\.jsonl:3: example has no token to train on: the completion starts at token \d+, but examples are truncated to 40 tokens/,
    );
    assert.equal(e.line, 3);
    const enc = encodeTextDataset(ds, tok, { maxLength: 40, skipInvalid: true });
    assert.equal(enc.examples.length, 2);
    assert.deepEqual(
      enc.skipped.map((s) => s.line),
      [3],
    );
    assert.equal(enc.stats.truncated, 1);
  });

  test("chat: loss on assistant turns only, exactly", async () => {
    const ds = await loadTextDataset(f("chat.jsonl"), { task: "causal-lm" });
    const enc = encodeTextDataset(ds, tok, { maxLength: 512 });
    const trained = (i: number) => {
      const ex = enc.examples[i]!;
      const runs: string[] = [];
      let cur: number[] = [];
      ex.labels!.forEach((l, t) => {
        if (l !== IGNORE_INDEX) {
          assert.equal(l, ex.inputIds[t]);
          cur.push(l);
        } else if (cur.length) {
          runs.push(tok.decode(cur));
          cur = [];
        }
      });
      if (cur.length) runs.push(tok.decode(cur));
      return runs;
    };
    assert.deepEqual(trained(0), ["Hello!<|im_end|>\n"]);
    assert.deepEqual(trained(1), ["Paris.<|im_end|>\n", "Rome.<|im_end|>\n"]);
    assert.deepEqual(trained(2), ["4<|im_end|>\n"]);
    assert.equal(
      renderExample(enc.examples[2]!, tok),
      "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n[[4<|im_end|>\n]]",
    );
    const b = collate(enc.examples, [0, 1, 2], { padTokenId: enc.padTokenId });
    const T = b.inputIds.shape[1]!;
    assert.deepEqual([...b.labels.shape], [3, T]);
    const lab = b.labels.toFloat64Array();
    for (let t = enc.examples[0]!.inputIds.length; t < T; t++) assert.equal(lab[t], -100, "padding is ignored");
    assert.equal(
      b.numTargets,
      enc.examples.reduce((a, e) => a + e.labels!.filter((l) => l !== -100).length, 0),
    );
  });

  test("chat: a conversation with no assistant turn is an empty-loss-mask error naming file:line", async () => {
    const ds = await loadTextDataset(f("chat-no-assistant.jsonl"), { task: "causal-lm" });
    await rejectsWith(
      () => encodeTextDataset(ds, tok),
      "empty_loss_mask",
      /chat-no-assistant\.jsonl:2: example has no token to train on: no assistant turn to train on/,
    );
  });

  test("renderExample marks packed documents and trained spans", async () => {
    const enc = encodeTextDataset(await loadTextDataset(f("lm.jsonl"), { task: "causal-lm" }), tok, { blockSize: 128 });
    const s = renderExample(enc.examples[0]!, tok);
    assert.equal(
      s,
      "T[[he cat sat on the mat.<|im_end|>]] ‖ A[[ dog ran.<|im_end|>]] ‖ B[[irds fly south in winter, and come back in spring.<|im_end|>]] ‖ H[[i.<|im_end|>]]",
    );
  });

  test("prepareTextData: stratified validation split, labels from train, errors before training", async () => {
    const data = await prepareTextData({
      train: f("reviews.csv"),
      ...REVIEWS,
      tokenizer: tok,
      validationSplit: 0.25,
      maxLength: 32,
    });
    assert.equal(data.train.examples.length, 9);
    assert.equal(data.validation!.examples.length, 3);
    assert.deepEqual(
      [...data.validation!.examples.map((e) => e.label as number)].sort(),
      [0, 1, 2],
      "one of each class",
    );
    assert.deepEqual(data.labels!.names, ["negative", "neutral", "positive"]);
    const again = await prepareTextData({
      train: f("reviews.csv"),
      ...REVIEWS,
      tokenizer: tok,
      validationSplit: 0.25,
      maxLength: 32,
    });
    assert.deepEqual(again.validation!.examples, data.validation!.examples);
    await rejectsWith(
      prepareTextData({ train: f("reviews.csv"), validation: f("reviews-val.csv"), ...REVIEWS, tokenizer: tok }),
      "unknown_label",
      /reviews-val\.csv:4: unknown label "postive"/,
    );
    const skipping = await prepareTextData({
      train: f("reviews.csv"),
      validation: f("reviews-val.csv"),
      ...REVIEWS,
      tokenizer: tok,
      skipInvalid: true,
    });
    assert.equal(skipping.validation!.examples.length, 3);
    assert.deepEqual(skipping.skipped, [{ file: f("reviews-val.csv"), line: 4, reason: skipping.skipped[0]!.reason }]);
  });
});
