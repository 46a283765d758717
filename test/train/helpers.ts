// Tiny models and data for the trainer tests: the GPT-2 / BERT fixtures' configs built with random
// weights from a seed, and synthetic token data (learnable labels, uneven lengths).
import { readFileSync } from "node:fs";
import type { EncodedExample } from "../../src/data/batch.ts";
import type { EncodedDataset } from "../../src/data/text/encode.ts";
import { getArchitecture, type PretrainedModel, type Task } from "../../src/models/index.ts";
import { Generator, manualSeed } from "../../src/tensor/rng.ts";

// The resume test runs a bundled copy of a child script from elsewhere: it passes the folder.
const FIX = process.env.TUNEKIT_FIXTURE_MODELS
  ? new URL(`file://${process.env.TUNEKIT_FIXTURE_MODELS.replace(/\/?$/, "/")}`)
  : new URL("../fixtures/models/", import.meta.url);

/** The fixture config of `name` (gpt2, bert, distilbert, llama, mobilenet_v2). */
export function fixtureConfig(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(new URL(`${name}/config.json`, FIX), "utf8"));
}

/** A randomly initialised model from a fixture config (seeded). */
export function tinyModel(name: string, task: Task, extra: Record<string, unknown> = {}, seed = 0): PretrainedModel {
  manualSeed(seed);
  return getArchitecture(name).create({ ...fixtureConfig(name), ...extra }, task);
}

function dataset(examples: EncodedExample[]): EncodedDataset {
  return { examples, padTokenId: 0, sources: [], skipped: [], packed: false } as unknown as EncodedDataset;
}

/** Classification: label 1 when token 7 occurs; lengths 3..10; vocab 3..60 (0 = pad). */
export function clsData(n: number, seed = 1): EncodedDataset {
  const g = new Generator(seed);
  const ex: EncodedExample[] = [];
  for (let i = 0; i < n; i++) {
    const len = 3 + g.randint(0, 8);
    const ids = Array.from({ length: len }, () => 3 + g.randint(0, 57));
    const label = i % 2;
    if (label) ids[g.randint(0, len)] = 7;
    else for (let t = 0; t < len; t++) if (ids[t] === 7) ids[t] = 8;
    ex.push({ inputIds: ids, label, origins: [i] });
  }
  return dataset(ex);
}

/** Causal LM: sequences of uneven length, some positions ignored (-100) so token counts differ. */
export function lmData(n: number, seed = 2): EncodedDataset {
  const g = new Generator(seed);
  const ex: EncodedExample[] = [];
  for (let i = 0; i < n; i++) {
    const len = 4 + g.randint(0, 12);
    const start = 3 + g.randint(0, 10);
    const ids = Array.from({ length: len }, (_, t) => 3 + ((start + t * 3) % 50));
    const prompt = g.randint(0, 3);
    const labels = ids.map((v, t) => (t < prompt ? -100 : v));
    ex.push({ inputIds: ids, labels, origins: [i] });
  }
  return dataset(ex);
}
