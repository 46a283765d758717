// Runs the CLI as a user does: `node bin/tunekit.mjs <args>` in a child process, with
// TUNEKIT_BACKEND unset (native when built, else reference), and reads a run's metrics.jsonl.
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";

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

export { imageFolder } from "../helpers.ts";
