/**
 * loadPretrained / saveModel: legacy prefixes, new heads (and the HF-style warning), classifier
 * losses and pooling, tied weights on save, sharded and bf16 checkpoints, tokenizer, and an
 * `hf:` id served by a local mock hub.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  loadSafetensorsDir,
  readSafetensorsHeader,
  writeSafetensors,
  writeSafetensorsSharded,
} from "../../src/formats/safetensors.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import { getArchitecture } from "../../src/models/index.ts";
import { type LoadedModel, loadPretrained, saveModel } from "../../src/models/pretrained.ts";
import { bceWithLogits, crossEntropy, mseLoss } from "../../src/ops/index.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { tensor } from "../../src/tensor/tensor.ts";
import { Tokenizer, trainByteLevelBPE } from "../../src/tokenize/index.ts";
import { FIXTURES, loadJson, maxRelDiff } from "../helpers.ts";

type LM = LoadedModel & DecoderLM;
const GPT2 = join(FIXTURES, "models", "gpt2");
const LLAMA = join(FIXTURES, "models", "llama");
const ref = loadJson<{ inputs: { input_ids: number[][]; attention_mask: number[][] }; logits: number[][][] }>(
  "models/gpt2/reference.json",
);
const ids2 = (rows: number[][]) => tensor(Int32Array.from(rows.flat()), { shape: [rows.length, rows[0].length] });
const INPUTS = { inputIds: ids2(ref.inputs.input_ids), attentionMask: ids2(ref.inputs.attention_mask) };
const tmp = (p: string) => mkdtemp(join(tmpdir(), `tk-${p}-`));
const load = async (dir: string, opts: Parameters<typeof loadPretrained>[1] = {}) => {
  const warnings: string[] = [];
  const m = (await loadPretrained(dir, { onWarning: (w) => warnings.push(w), ...opts })) as LM;
  return { m, warnings };
};

/** A folder with the gpt2 fixture's config and `tensors` as model.safetensors. */
async function gpt2Variant(name: string, edit: (k: string) => string | null): Promise<string> {
  const dir = await tmp(name);
  await writeFile(join(dir, "config.json"), await readFile(join(GPT2, "config.json")));
  const out = new Map();
  for (const [k, v] of await loadSafetensorsDir(GPT2)) {
    const nk = edit(k);
    if (nk) out.set(nk, v);
  }
  await writeSafetensors(join(dir, "model.safetensors"), out);
  return dir;
}

describe("loadPretrained", () => {
  test("a bare GPT2Model checkpoint (no 'transformer.' prefix, old attn.bias buffers) loads into the LM head model", async () => {
    const dir = await gpt2Variant("gpt2-base", (k) => k.replace(/^transformer\./, ""));
    const st = await loadSafetensorsDir(dir);
    st.set("h.0.attn.bias", { dtype: "F32", shape: [1], data: new Uint8Array(4) });
    await writeSafetensors(join(dir, "model.safetensors"), st);
    const { m, warnings } = await load(dir);
    assert.deepEqual(warnings, []);
    assert.equal(m.loadReport.renamed, 28);
    assert.ok(maxRelDiff(m.forward(INPUTS).logits.toFloat64Array(), ref.logits.flat(2)) < 1e-4);
  });

  test("a causal-LM checkpoint loaded for sequence classification: new score head, HF-style warning, labels in config", async () => {
    const { m, warnings } = await load(LLAMA, { task: "sequence-classification", id2label: ["neg", "neu", "pos"] });
    assert.deepEqual(m.loadReport.newlyInitialized, ["score.weight"]);
    assert.deepEqual(m.loadReport.unexpected, ["lm_head.weight"]);
    assert.match(
      warnings.join("\n"),
      /Some weights of LlamaForSequenceClassification were not initialized from the model checkpoint .* newly initialized: \['score.weight'\]/,
    );
    assert.deepEqual(m.config.id2label, { 0: "neg", 1: "neu", 2: "pos" });
    assert.deepEqual(m.config.architectures, ["LlamaForSequenceClassification"]);
    const w = new Map(m.namedParameters()).get("score.weight")!;
    assert.deepEqual([...w.shape], [3, 64]);
    assert.ok(
      w.toFloat64Array().some((v) => v !== 0),
      "the new head is randomly initialised, not zeros",
    );
  });

  test("sequence classification pools the last non-pad token and computes HF's three losses", async () => {
    const { m } = await load(GPT2, { task: "sequence-classification", numLabels: 3 });
    const { logits } = m.forward(INPUTS);
    assert.deepEqual([...logits.shape], [2, 3]);
    // Row 1 is right-padded after 4 tokens: same as running those 4 tokens alone.
    const alone = m.forward({ inputIds: ids2([ref.inputs.input_ids[1].slice(0, 4)]) }).logits.toFloat64Array();
    assert.ok(maxRelDiff(logits.toFloat64Array().slice(3), alone) < 1e-5);
    const y = tensor(Int32Array.from([2, 0]), { shape: [2] });
    assert.ok(Math.abs(m.forward({ ...INPUTS, labels: y }).loss!.item() - crossEntropy(logits, y).item()) < 1e-6);
    const multi = tensor([
      [1, 0, 1],
      [0, 0, 1],
    ]);
    assert.ok(
      Math.abs(m.forward({ ...INPUTS, labels: multi }).loss!.item() - bceWithLogits(logits, multi).item()) < 1e-6,
    );
    const { m: reg } = await load(GPT2, { task: "sequence-classification", numLabels: 1 });
    const rl = reg.forward(INPUTS).logits;
    const target = tensor([0.5, -1]);
    assert.ok(
      Math.abs(reg.forward({ ...INPUTS, labels: target }).loss!.item() - mseLoss(rl.reshape(-1), target).item()) < 1e-6,
    );
  });

  test("a classifier head of another size is reported as mismatched and re-initialised", async () => {
    const { m } = await load(GPT2, { task: "sequence-classification", numLabels: 3 });
    const dir = await tmp("clf3");
    await saveModel(m, dir);
    const { m: same, warnings: none } = await load(dir);
    assert.equal(same.task, "sequence-classification");
    assert.deepEqual(none, []);
    assert.deepEqual(same.forward(INPUTS).logits.toFloat64Array(), m.forward(INPUTS).logits.toFloat64Array());
    const { m: five, warnings } = await load(dir, { numLabels: 5 });
    assert.deepEqual(five.loadReport.mismatched, [{ key: "score.weight", checkpoint: [3, 32], model: [5, 32] }]);
    assert.deepEqual(five.loadReport.newlyInitialized, ["score.weight"]);
    assert.match(warnings[0], /found shape \[3,32\] in the checkpoint and \[5,32\] in the model/);
  });

  test("sharded checkpoints load", async () => {
    const dir = await tmp("sharded");
    await writeFile(join(dir, "config.json"), await readFile(join(GPT2, "config.json")));
    const { files } = await writeSafetensorsSharded(dir, await loadSafetensorsDir(GPT2), { maxShardBytes: 40_000 });
    assert.ok(files.length > 1);
    const { m } = await load(dir);
    assert.ok(maxRelDiff(m.forward(INPUTS).logits.toFloat64Array(), ref.logits.flat(2)) < 1e-4);
  });
});

describe("saveModel", () => {
  test("writes an HF folder: tied lm_head omitted, config with architectures/model_type/torch_dtype; round trip is exact", async () => {
    const { m } = await load(GPT2);
    const dir = await tmp("save");
    await saveModel(m, dir);
    const cfg = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    assert.deepEqual(cfg.architectures, ["GPT2LMHeadModel"]);
    assert.equal(cfg.model_type, "gpt2");
    assert.equal(cfg.torch_dtype, "float32");
    const h = await readSafetensorsHeader(join(dir, "model.safetensors"));
    assert.ok(!h.tensors.has("lm_head.weight") && h.tensors.has("transformer.wte.weight"));
    assert.equal(h.tensors.size, 28);
    assert.deepEqual(h.metadata, { format: "pt" });
    // Same tensors as the transformers-written file.
    const a = await loadSafetensorsDir(dir);
    for (const [k, v] of await loadSafetensorsDir(GPT2))
      assert.deepEqual(Buffer.from(a.get(k)!.data), Buffer.from(v.data), k);
    const { m: back } = await load(dir);
    assert.deepEqual(back.forward(INPUTS).logits.toFloat64Array(), m.forward(INPUTS).logits.toFloat64Array());
  });

  test("tie_word_embeddings on llama: one parameter under two names, saved once", async () => {
    manualSeed(7);
    const raw = { ...JSON.parse(await readFile(join(LLAMA, "config.json"), "utf8")), tie_word_embeddings: true };
    const m = getArchitecture("llama").create(raw, "causal-lm") as LM;
    const names = new Map(m.namedModules());
    assert.equal(
      (names.get("lm_head") as unknown as { weight: unknown }).weight,
      (names.get("model.embed_tokens") as unknown as { weight: unknown }).weight,
    );
    const dir = await tmp("tied");
    await saveModel(m, dir);
    assert.ok(!(await readSafetensorsHeader(join(dir, "model.safetensors"))).tensors.has("lm_head.weight"));
    const { m: back, warnings } = await load(dir);
    assert.deepEqual(warnings, []);
    assert.deepEqual(back.forward(INPUTS).logits.toFloat64Array(), m.forward(INPUTS).logits.toFloat64Array());
  });

  test("bfloat16: saved as BF16, loaded back as float32 by default or kept with dtype 'auto'", async () => {
    const { m } = await load(LLAMA);
    const dir = await tmp("bf16");
    await saveModel(m, dir, { dtype: "bfloat16" });
    assert.equal(JSON.parse(await readFile(join(dir, "config.json"), "utf8")).torch_dtype, "bfloat16");
    const { m: f32 } = await load(dir);
    assert.ok(f32.parameters().every((p) => p.dtype === "float32"));
    assert.ok(
      maxRelDiff(f32.forward(INPUTS).logits.toFloat64Array(), m.forward(INPUTS).logits.toFloat64Array()) < 0.05,
    );
    const { m: auto } = await load(dir, { dtype: "auto" });
    assert.ok(auto.parameters().every((p) => p.dtype === "bfloat16"));
  });

  test("the tokenizer is saved and loaded with the model", async () => {
    const tok = Tokenizer.fromJSON(
      trainByteLevelBPE(["hello world", "hello there"], { vocabSize: 270, specialTokens: ["<|endoftext|>"] }),
      { eos_token: "<|endoftext|>" },
    );
    const { m } = await load(GPT2);
    const dir = await tmp("tok");
    await saveModel(m, dir, { tokenizer: tok });
    const { m: back } = await load(dir);
    assert.deepEqual(back.tokenizer!.encode("hello world").ids, tok.encode("hello world").ids);
    assert.equal(back.tokenizer!.eosTokenId, 0);
  });
});

describe("loadPretrained('hf:...')", () => {
  test("downloads from a hub that serves the gpt2 fixture and loads it", async () => {
    const commit = "0123456789abcdef0123456789abcdef01234567";
    const files = new Map<string, Buffer>();
    for (const f of ["config.json", "generation_config.json", "model.safetensors"])
      files.set(f, await readFile(join(GPT2, f)));
    const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");
    const oid = (b: Buffer) => createHash("sha1").update(`blob ${b.length}\0`).update(b).digest("hex");
    const lfs = (p: string) => p.endsWith(".safetensors");
    const server = createServer((req, res) => {
      const path = new URL(req.url ?? "", "http://x").pathname;
      const json = (body: unknown) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
      };
      if (path === "/api/models/tiny/gpt2/revision/main")
        return json({ id: "tiny/gpt2", sha: commit, siblings: [...files.keys()].map((rfilename) => ({ rfilename })) });
      if (path === `/api/models/tiny/gpt2/tree/${commit}`) {
        return json(
          [...files].map(([p, d]) => ({
            type: "file",
            path: p,
            size: d.length,
            oid: oid(d),
            ...(lfs(p) ? { lfs: { oid: sha(d), size: d.length, pointerSize: 134 } } : {}),
          })),
        );
      }
      const m = /^\/tiny\/gpt2\/resolve\/[^/]+\/(.+)$/.exec(path);
      const d = m ? files.get(m[1]) : undefined;
      if (!m || !d) {
        res.writeHead(404, { "x-error-code": "EntryNotFound" });
        return res.end();
      }
      const etag = lfs(m[1]) ? sha(d) : oid(d);
      res.writeHead(200, {
        "x-repo-commit": commit,
        etag: `"${etag}"`,
        "content-length": String(d.length),
        ...(lfs(m[1]) ? { "x-linked-etag": `"${etag}"`, "x-linked-size": String(d.length) } : {}),
      });
      res.end(d);
    });
    await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
    try {
      const hubUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const cacheDir = await tmp("hub-cache");
      const { m } = await load("hf:tiny/gpt2", { hub: { hubUrl, cacheDir, onProgress: () => {} } });
      assert.ok(m.sourceDir.startsWith(cacheDir));
      assert.ok(maxRelDiff(m.forward(INPUTS).logits.toFloat64Array(), ref.logits.flat(2)) < 1e-4);
      assert.deepEqual(m.generationConfig!.eosTokenId, [2]);
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

test("an encoder given a new classification head saves architectures and loads back with it", async () => {
  const m = await loadPretrained("test/fixtures/models/distilbert", { task: "token-classification", id2label: ["O", "B", "I"], onWarning: () => {} });
  const d = await mkdtemp(join(tmpdir(), "tk-arch-"));
  await saveModel(m, d);
  const back = await loadPretrained(d, { onWarning: () => {} });
  assert.equal(back.task, "token-classification");
  assert.deepEqual(back.config.architectures, ["DistilBertForTokenClassification"]);
});
