/**
 * The bundled pre-trained LM (`models/tiny-lm`, made by `npm run pretrain:lm`): it loads, its
 * tokenizer round-trips, it predicts held-out Brown text far better than chance, and the
 * pre-training script is deterministic (two tiny runs give byte-identical files).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { loadBrown } from "../../scripts/lib/brown.ts";
import type { DecoderForCausalLM } from "../../src/models/heads.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const MODEL_DIR = join(ROOT, "models", "tiny-lm");

type Tk = typeof import("../../src/index.ts");
let tk: Tk;
let model: Awaited<ReturnType<Tk["loadPretrained"]>> & DecoderForCausalLM;

before(async () => {
  tk = await import("../../src/index.ts");
  model = (await tk.loadPretrained(MODEL_DIR)) as typeof model;
});

describe("bundled tiny-lm", () => {
  test("loads as a tied LlamaForCausalLM with its tokenizer and generation config", () => {
    assert.equal(model.modelType, "llama");
    assert.equal(model.task, "causal-lm");
    assert.deepEqual(model.loadReport.newlyInitialized, []);
    assert.deepEqual(model.loadReport.unexpected, []);
    assert.equal(model.config.tie_word_embeddings, true);
    const tok = model.tokenizer!;
    assert.ok(tok, "tokenizer.json loaded");
    assert.equal(tok.vocabSize, model.config.vocab_size);
    assert.equal(tok.eosTokenId, 0);
    assert.equal(tok.padTokenId, 0);
    assert.equal(model.config.pad_token_id, 0);
    assert.deepEqual(model.generationConfig?.eosTokenId, [0]);
  });

  test("tokenizer round-trips text and knows the ChatML tokens", () => {
    const tok = model.tokenizer!;
    for (const text of [
      'The jury said it did find that many of Georgia\'s laws "are outmoded."',
      "Numbers 1961, 3.14 -- and ünïcödé, emoji 🙂, tabs\tand\nnewlines.",
      "",
    ]) {
      const { ids } = tok.encode(text);
      assert.equal(tok.decode(ids), text);
    }
    assert.deepEqual(
      ["<|endoftext|>", "<|im_start|>", "<|im_end|>"].map((t) => tok.tokenToId(t)),
      [0, 1, 2],
    );
    const chat = tok.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: true });
    assert.equal(chat, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    assert.equal(tok.encode("<|im_start|>user").ids[0], 1);
  });

  test("held-out Brown perplexity is far below a uniform guess over the vocabulary", () => {
    const { heldOut } = loadBrown();
    const tok = model.tokenizer!;
    // The opening paragraphs of three held-out documents from different genres.
    const texts = [heldOut[0]!, heldOut[10]!, heldOut[20]!].map((d) => d.text.split("\n\n").slice(0, 3).join("\n\n"));
    let nll = 0;
    let n = 0;
    tk.noGrad(() => {
      for (const text of texts) {
        const ids = [0, ...tok.encode(text, { addSpecialTokens: false }).ids].slice(0, 256);
        const t = tk.tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: "int32" });
        nll += model.forward({ inputIds: t, labels: t }).loss!.item() * (ids.length - 1);
        n += ids.length - 1;
      }
    });
    const ppl = Math.exp(nll / n);
    const vocab = model.config.vocab_size as number;
    assert.ok(ppl < vocab / 10, `perplexity ${ppl.toFixed(1)} should be far below ${vocab}`);
  });

  test("greedy generation continues a prompt with English words", () => {
    const tok = model.tokenizer!;
    const ids = [0, ...tok.encode("The man said that", { addSpecialTokens: false }).ids];
    const out = tk.generate(model, ids, { maxNewTokens: 20, eosTokenId: [] });
    const text = tok.decode(out.newIds);
    const words = text.match(/[A-Za-z]+/g) ?? [];
    assert.ok(words.length >= 5, `expected words in ${JSON.stringify(text)}`);
    assert.ok(
      words.some((w) => ["the", "of", "and", "to", "a", "in", "was", "he", "it", "that"].includes(w.toLowerCase())),
      `expected common English words in ${JSON.stringify(text)}`,
    );
  });
});

/** Runs the pre-training script in a child process (it picks its own thread count). */
function runScript(out: string): Promise<void> {
  const args = ["--import", "tsx", "scripts/pretrain-lm.ts", "--out", out, "--steps", "3", "--seed", "7"];
  args.push("--threads", "1", "--batch-size", "2", "--max-docs", "12", "--eval-every", "2");
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let log = "";
    p.stdout.on("data", (d) => (log += d));
    p.stderr.on("data", (d) => (log += d));
    p.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`pretrain-lm exited ${code}:\n${log}`))));
  });
}

/** training.json without what may differ between runs: timing and the checkout. */
function stableSummary(dir: string): Record<string, unknown> {
  const s = JSON.parse(readFileSync(join(dir, "training.json"), "utf8")) as Record<string, unknown>;
  for (const k of ["train_seconds", "total_seconds", "tokens_per_second", "tokens_per_cpu_second", "git_commit"])
    delete s[k];
  return s;
}

describe("scripts/pretrain-lm.ts", () => {
  const dirs: string[] = [];
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  test("two 3-step runs with the same seed write identical files", { timeout: 120_000 }, async () => {
    const a = mkdtempSync(join(tmpdir(), "tunekit-lm-a-"));
    const b = mkdtempSync(join(tmpdir(), "tunekit-lm-b-"));
    dirs.push(a, b);
    await Promise.all([runScript(a), runScript(b)]);
    const files = readdirSync(a).sort();
    assert.deepEqual(files, [
      "config.json",
      "generation_config.json",
      "model.safetensors",
      "tokenizer.json",
      "tokenizer_config.json",
      "training.json",
    ]);
    assert.deepEqual(readdirSync(b).sort(), files);
    for (const f of files) {
      if (f === "training.json") continue;
      assert.ok(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), `${f} differs between the two runs`);
    }
    assert.deepEqual(stableSummary(a), stableSummary(b));
    const summary = stableSummary(a) as { steps: number; history: unknown[] };
    assert.equal(summary.steps, 3);
    assert.equal(summary.history.length, 3);
  });
});
