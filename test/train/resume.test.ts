// Resume after SIGKILL: a child process trains a tiny GPT-2 with a checkpoint every step, is killed
// at random moments (a test hook pauses inside every checkpoint file write so many kills land
// mid-checkpoint), restarted with resume: true until it finishes, and must end bitwise identical
// to an uninterrupted run: final model.safetensors bytes and every metrics.jsonl line.
// 5 trials by default; TUNEKIT_LONG_TESTS=1 runs 20.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { Generator } from "../../src/tensor/rng.ts";

const CHILD = fileURLToPath(new URL("./resume-child.ts", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../fixtures/models/", import.meta.url));
const TRIALS = process.env.TUNEKIT_LONG_TESTS === "1" ? 20 : 5;
const root = mkdtempSync(join(tmpdir(), "tunekit-resume-"));
after(() => rmSync(root, { recursive: true, force: true }));

/**
 * The child as one ESM bundle (esbuild, which tsx ships): the same code as `node --import tsx
 * resume-child.ts` without transpiling ~100 files at every start (5 s -> 1 s per start on a busy
 * 2-core machine). Falls back to tsx when esbuild is unavailable.
 */
let bundled: string | null = null;
before(async () => {
  try {
    const { build } = (await import("esbuild")) as typeof import("esbuild");
    const out = fileURLToPath(new URL("../../node_modules/.cache/tunekit-test/resume-child.mjs", import.meta.url));
    await build({
      entryPoints: [CHILD],
      bundle: true,
      platform: "node",
      format: "esm",
      target: "node20",
      outfile: out,
      packages: "external",
      logLevel: "error",
    });
    bundled = out;
  } catch {
    bundled = null;
  }
});

interface Exit {
  code: number | null;
  signal: string | null;
  trainMs: number;
  stderr: string;
}

/** Runs the child; with `killAt` (ms after training started, i.e. metrics.jsonl appeared) SIGKILLs it. */
function runChild(dir: string, killAt?: number): Promise<Exit> {
  return new Promise((resolve) => {
    const env = {
      ...process.env,
      TUNEKIT_TEST_CKPT_PAUSE_MS: "10",
      TUNEKIT_BACKEND: "reference",
      TUNEKIT_FIXTURE_MODELS: FIXTURES,
    };
    const args = bundled ? [bundled, dir] : ["--import", "tsx", CHILD, dir];
    const p = spawn(process.execPath, args, { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    p.stderr.on("data", (d) => (stderr += d));
    let started = 0;
    const metrics = join(dir, "metrics.jsonl");
    const poll = setInterval(() => {
      if (!started && existsSync(metrics)) {
        started = Date.now();
        if (killAt !== undefined) setTimeout(() => p.kill("SIGKILL"), killAt);
      }
    }, 5);
    p.on("exit", (code, signal) => {
      clearInterval(poll);
      resolve({ code, signal, trainMs: started ? Date.now() - started : 0, stderr });
    });
  });
}

/** Checkpoint folders left without a manifest (a kill during a checkpoint write). */
function incomplete(dir: string): number {
  const ck = join(dir, "checkpoints");
  if (!existsSync(ck)) return 0;
  return readdirSync(ck).filter(
    (d) => !existsSync(join(ck, d, "manifest.json")) || readdirSync(join(ck, d)).some((f) => f.endsWith(".tmp")),
  ).length;
}

test(`resume after SIGKILL is bitwise identical to an uninterrupted run (${TRIALS} trials)`, {
  timeout: 900_000,
}, async () => {
  const refDir = join(root, "ref");
  const ref = await runChild(refDir);
  assert.equal(ref.code, 0, ref.stderr);
  const refModel = readFileSync(join(refDir, "model", "model.safetensors"));
  const refMetrics = readFileSync(join(refDir, "metrics.jsonl"), "utf8");
  assert.ok(refMetrics.split("\n").length > 10);
  const g = new Generator(Number(process.env.TUNEKIT_RESUME_SEED ?? 1234));
  let kills = 0;
  let midWrite = 0;
  let identical = 0;
  for (let t = 0; t < TRIALS; t++) {
    const dir = join(root, `trial-${t}`);
    for (let attempt = 0; ; attempt++) {
      const killAt = attempt < 2 ? Math.floor(g.random() * ref.trainMs) : undefined;
      const r = await runChild(dir, killAt);
      if (r.signal === "SIGKILL") {
        kills++;
        if (incomplete(dir)) midWrite++;
        continue;
      }
      assert.equal(r.code, 0, `trial ${t} attempt ${attempt}: ${r.stderr}`);
      break;
    }
    assert.deepEqual(readFileSync(join(dir, "metrics.jsonl"), "utf8"), refMetrics, `trial ${t}: metrics.jsonl differs`);
    assert.ok(
      readFileSync(join(dir, "model", "model.safetensors")).equals(refModel),
      `trial ${t}: final weights differ`,
    );
    identical++;
  }
  console.log(
    `# resume (${bundled ? "bundled child" : "tsx child"}): ${identical}/${TRIALS} identical; ${kills} SIGKILLs, ${midWrite} left a half-written checkpoint; reference training ${ref.trainMs} ms`,
  );
  assert.equal(identical, TRIALS);
  assert.ok(kills > 0);
});
