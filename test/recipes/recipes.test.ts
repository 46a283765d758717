// Recipe tests (torchtune style): each recipe in recipes/ runs through the CLI for a few steps on
// tiny fixture models and data, and the train losses logged in metrics.jsonl must match the pinned
// values within a relative 1e-4. A change in the training math (loss, masking, accumulation,
// optimizer, schedule, LoRA, data order, augmentation) moves these numbers.
// Re-record after an intended change: TUNEKIT_RECORD=1 node --import tsx --test test/recipes/recipes.test.ts
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CHAT, DISTILBERT, imageFolder, LLAMA, MOBILENET, REVIEWS, trainLosses, tunekit } from "../cli/run-cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "tunekit-recipes-"));
after(() => rmSync(tmp, { recursive: true, force: true }));
const RECORD = process.env.TUNEKIT_RECORD === "1";
const RTOL = 1e-4;

/** Overrides per recipe: tiny model and data, a few steps, a learning rate large enough to move the loss. */
const RECIPES: Record<string, { overrides: () => string[]; expected: number[] }> = {
  "distilbert-text-classification-full": {
    overrides: () => [
      `model.path=${DISTILBERT}`,
      `data.train=${REVIEWS}`,
      "data.maxLength=64",
      "train.maxSteps=4",
      "train.batchSize=8",
      "optimizer.lr=1e-3",
    ],
    expected: [0.6941520571708679, 0.6902072429656982, 0.6833034753799438, 0.7612489461898804],
  },
  "distilbert-text-classification-lora": {
    overrides: () => [
      `model.path=${DISTILBERT}`,
      `data.train=${REVIEWS}`,
      "data.maxLength=64",
      "train.maxSteps=4",
      "train.batchSize=8",
      "optimizer.lr=1e-2",
    ],
    expected: [0.6941520571708679, 0.6902072429656982, 0.65753173828125, 1.025842308998108],
  },
  "smollm2-chat-sft-lora": {
    overrides: () => [
      `model.path=${LLAMA}`,
      `data.train=${CHAT}`,
      "data.maxLength=128",
      "train.maxSteps=4",
      "train.batchSize=2",
      "train.gradAccumulation=2",
      "optimizer.lr=1e-2",
    ],
    expected: [5.862637042999268, 5.79054774178399, 5.410059787131645, 5.440052278580204],
  },
  "resnet18-images-two-phase": {
    // mobilenet_v2 stands in for resnet18; 1 head epoch (4 steps) then 4 full steps.
    overrides: () => [
      `model.path=${MOBILENET}`,
      `data.train=${join(tmp, "photos")}`,
      "data.image.size=32",
      "data.image.cropSize=32",
      "strategy.headEpochs=1",
      "train.maxSteps=8",
      "train.batchSize=4",
      "optimizer.lr=1e-2",
    ],
    expected: [
      0.6988964080810547, 1.2013972997665405, 0.5886821746826172, 1.1436030864715576, 0.18512529134750366,
      1.099449872970581, 1.9269903898239136, 1.2788928747177124,
    ],
  },
};

describe("recipes: pinned train losses", () => {
  before(async () => {
    await imageFolder(join(tmp, "photos"), 10, 1);
  });
  for (const [name, r] of Object.entries(RECIPES)) {
    test(name, async () => {
      const runDir = join(tmp, name);
      const res = await tunekit(
        "train",
        "-c",
        `recipes/${name}.yaml`,
        ...r.overrides(),
        "train.logEvery=1",
        `output.runDir=${runDir}`,
        "--quiet",
      );
      assert.equal(res.code, 0, res.stderr);
      const got = trainLosses(runDir);
      if (RECORD) {
        process.stdout.write(`${name}: ${JSON.stringify(got)}\n`);
        return;
      }
      assert.equal(got.length, r.expected.length, `steps logged: ${JSON.stringify(got)}`);
      got.forEach((v, i) => {
        const rel = Math.abs(v - r.expected[i]) / Math.max(1e-12, Math.abs(r.expected[i]));
        assert.ok(
          rel <= RTOL,
          `step ${i + 1}: loss ${v}, pinned ${r.expected[i]} (relative difference ${rel.toExponential(2)})\nall: ${JSON.stringify(got)}`,
        );
      });
    });
  }
});
