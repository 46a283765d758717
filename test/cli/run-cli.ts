// Runs the CLI as a user does: `node bin/tunekit.mjs <args>` in a child process, with
// TUNEKIT_BACKEND unset (native when built, else reference), and reads a run's metrics.jsonl.
import { execFile, spawn } from "node:child_process";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import sharp from "sharp";
import { Generator } from "../../src/tensor/rng.ts";

export const ROOT = join(import.meta.dirname, "..", "..");
export const CLI_FIXTURES = join(ROOT, "test", "fixtures", "cli");
export const LLAMA = join(CLI_FIXTURES, "llama-chatml");
export const DISTILBERT = join(CLI_FIXTURES, "distilbert-chatml");
export const MOBILENET = join(ROOT, "test", "fixtures", "models", "mobilenet_v2");
export const REVIEWS = join(CLI_FIXTURES, "data", "reviews.csv");
export const CHAT = join(CLI_FIXTURES, "data", "chat.jsonl");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function env(): NodeJS.ProcessEnv {
  const e = { ...process.env };
  delete e.TUNEKIT_BACKEND;
  return e;
}

/** Runs `tunekit ...args` to the end. */
export function tunekit(...args: string[]): Promise<CliResult> {
  return new Promise((res) => {
    execFile(
      process.execPath,
      [join(ROOT, "bin", "tunekit.mjs"), ...args],
      { cwd: ROOT, env: env(), maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        res({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

/** Starts `tunekit ...args` without waiting (for kill tests). */
export function spawnTunekit(...args: string[]) {
  return spawn(process.execPath, [join(ROOT, "bin", "tunekit.mjs"), ...args], {
    cwd: ROOT,
    env: env(),
    stdio: "ignore",
  });
}

/** The rows of a run's metrics.jsonl. */
export function metrics(runDir: string): { step: number; split: string; loss: number; [k: string]: unknown }[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l));
}

/** Train losses by step. */
export function trainLosses(runDir: string): number[] {
  return metrics(runDir)
    .filter((r) => r.split === "train")
    .map((r) => r.loss);
}

/** A two-class image folder (`red`, `blue`: noisy 24x24 PNGs), seeded. */
export async function imageFolder(dir: string, perClass: number, seed: number): Promise<string> {
  const g = new Generator(seed);
  for (const [cls, rgb] of [
    ["red", [200, 40, 40]],
    ["blue", [40, 40, 200]],
  ] as const) {
    mkdirSync(join(dir, cls), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const px = Buffer.alloc(24 * 24 * 3);
      for (let j = 0; j < px.length; j++) px[j] = Math.max(0, Math.min(255, rgb[j % 3] + g.randint(-60, 60)));
      await sharp(px, { raw: { width: 24, height: 24, channels: 3 } })
        .png()
        .toFile(join(dir, cls, `${i}.png`));
    }
  }
  return dir;
}
