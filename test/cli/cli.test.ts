/** The CLI as a user runs it: `node bin/tunekit.mjs <command> ...` in a child process. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { promisify } from "node:util";
import { generate } from "../../src/models/generate.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import { getArchitecture } from "../../src/models/index.ts";
import { type LoadedModel, loadPretrained, saveModel } from "../../src/models/pretrained.ts";
import { manualSeed } from "../../src/tensor/rng.ts";
import { Tokenizer, trainByteLevelBPE } from "../../src/tokenize/index.ts";
import { FIXTURES, loadJson } from "../helpers.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const GPT2 = join(FIXTURES, "models", "gpt2");

async function tunekit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [join(ROOT, "bin", "tunekit.mjs"), ...args],
      { cwd: ROOT },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("tunekit", () => {
  test("without arguments lists the subcommands", async () => {
    const r = await tunekit();
    assert.equal(r.code, 0);
    assert.match(r.stdout, /inspect\s+show/);
    assert.match(r.stdout, /generate\s+generate/);
    for (const c of ["train", "plan", "eval", "merge", "predict"])
      assert.match(r.stdout, new RegExp(`\\n\\s+${c}\\s+\\w`));
  });

  test("unknown commands exit 2 (usage); bad paths fail with a one-line message and exit code 1", async () => {
    assert.equal((await tunekit("bogus")).code, 2);
    const r = await tunekit("inspect", "/no/such/model");
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tunekit inspect: \/no\/such\/model: no such folder/);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace for a user error");
  });
});

describe("tunekit inspect", () => {
  test("architecture, parameters by module, dtypes, head and tokenizer of the gpt2 fixture", async () => {
    const r = await tunekit("inspect", "test/fixtures/models/gpt2");
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /architecture: GPT2LMHeadModel \(model_type gpt2\)/);
    assert.match(r.stdout, /causal-lm; lm_head \(tied to the input embedding\)/);
    assert.match(r.stdout, /31,616/);
    assert.match(r.stdout, /F32 28 tensors/);
    assert.match(r.stdout, /tokenizer:\s+none/);
    const j = JSON.parse((await tunekit("inspect", "test/fixtures/models/gpt2", "--json")).stdout);
    assert.deepEqual(Object.keys(j.byModule), [
      "transformer.wte",
      "transformer.wpe",
      "transformer.h",
      "transformer.ln_f",
    ]);
    assert.equal(
      j.byModule["transformer.h"],
      2 * (4 * 32 + 32 * 96 + 96 + 32 * 32 + 32 + 32 * 128 + 128 + 128 * 32 + 32),
    );
    assert.equal(j.parameters, 31616);
    assert.deepEqual(j.tied, ["lm_head.weight"]);
  });
});

describe("tunekit generate", () => {
  let dir: string;
  before(async () => {
    // A random GPT-2 sized for a small byte-level tokenizer.
    manualSeed(11);
    const tok = Tokenizer.fromJSON(
      trainByteLevelBPE(["hello world, hello there", "the world is wide"], {
        vocabSize: 280,
        specialTokens: ["<|endoftext|>"],
      }),
      { eos_token: "<|endoftext|>" },
    );
    const model = getArchitecture("gpt2").create(
      {
        model_type: "gpt2",
        vocab_size: 280,
        n_embd: 16,
        n_layer: 2,
        n_head: 2,
        n_positions: 64,
        initializer_range: 0.5,
      },
      "causal-lm",
    );
    dir = await mkdtemp(join(tmpdir(), "tk-cli-gen-"));
    await saveModel(model, dir, { tokenizer: tok });
  });

  test("--prompt-ids with greedy decoding gives transformers' ids on the gpt2 fixture", async () => {
    const ref = loadJson<{ generate: { input_ids: number[][]; output_ids: number[][] } }>(
      "models/gpt2/reference.json",
    ).generate;
    const r = await tunekit(
      "generate",
      "--model",
      GPT2,
      "--prompt-ids",
      ref.input_ids[0].join(","),
      "--max-new-tokens",
      "8",
      "--json",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout).ids, ref.output_ids[0]);
  });

  test("--prompt text through the tokenizer, sampled with a seed: same ids as the library, streamed text = final text", async () => {
    const args = [
      "generate",
      "--model",
      dir,
      "--prompt",
      "hello world",
      "--max-new-tokens",
      "6",
      "--temperature",
      "0.9",
      "--top-k",
      "20",
      "--seed",
      "5",
    ];
    const j = JSON.parse((await tunekit(...args, "--json")).stdout);
    const m = (await loadPretrained(dir)) as LoadedModel & DecoderLM;
    const prompt = m.tokenizer!.encode("hello world").ids;
    assert.deepEqual(j.promptIds, prompt);
    const lib = generate(m, prompt, { maxNewTokens: 6, doSample: true, temperature: 0.9, topK: 20, seed: 5 });
    assert.deepEqual(j.newIds, lib.newIds);
    const streamed = await tunekit(...args);
    assert.equal(streamed.code, 0, streamed.stderr);
    assert.equal(streamed.stdout, `${j.text}\n`);
  });

  test("usage errors: both or neither prompt, bad numbers", async () => {
    assert.match((await tunekit("generate", "--model", GPT2)).stderr, /exactly one of --prompt or --prompt-ids/);
    const r = await tunekit("generate", "--model", GPT2, "--prompt-ids", "1,2", "--top-p", "abc");
    assert.equal(r.code, 2, "a bad flag value is a usage error");
    assert.match(r.stderr, /expected a number, got 'abc'/);
  });
});
