// Child process for the resume test: trains a tiny GPT-2 LM with frequent checkpoints and
// `resume: true`. Usage: node --import tsx resume-child.ts <runDir>. The parent SIGKILLs it at
// random moments (TUNEKIT_TEST_CKPT_PAUSE_MS widens the checkpoint-write window) and restarts it.
import { Trainer } from "../../src/train/index.ts";
import { lmData, tinyModel } from "./helpers.ts";

const runDir = process.argv[2];
if (!runDir) throw new Error("usage: resume-child.ts <runDir>");
const model = tinyModel("gpt2", "causal-lm", { resid_pdrop: 0.1, embd_pdrop: 0.1 }, 3);
await new Trainer({
  model,
  train: lmData(24),
  eval: lmData(4, 7),
  strategy: "full",
  optimizer: { name: "adamw", lr: 3e-3 },
  schedule: { name: "cosine", warmupSteps: 2 },
  epochs: 2,
  batchSize: 3,
  gradAccumulation: 2,
  evalEvery: 3,
  logEvery: 1,
  checkpoint: { every: 1, keepLast: 2 },
  seed: 11,
  runDir,
  resume: true,
  quiet: true,
}).fit();
