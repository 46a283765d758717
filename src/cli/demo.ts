/**
 * `tunekit demo`: fine-tuning on the bundled pre-trained models and bundled data, offline, with the
 * evidence: each task also spends the same data and compute on the baselines a practitioner would
 * ask about (the same architecture from scratch, and head-only on frozen features), writes a run
 * folder with `report.html`, and the demo ends with one table of what fine-tuning gained.
 *
 * @example
 * ```sh
 * tunekit demo                 # all three tasks (a few minutes on 2 cores)
 * tunekit demo --list
 * tunekit demo images --out runs/demo-images
 * tunekit demo text --quick    # tiny budgets: a smoke test, numbers mean little
 * ```
 */
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Command } from "commander";
import { backend } from "../backend/index.ts";
import type { DemoOptions, DemoResult, DemoRunner } from "../demo/common.ts";
import { resultTable } from "../demo/table.ts";
import { DEMO_TASKS, type DemoTask, TASK_SUMMARY } from "../demo/tasks.ts";
import { int, RUN_META, setupBackend, UsageError } from "./common.ts";

/** The bundled models (`<package>/models`). */
export const BUNDLED_MODELS = fileURLToPath(new URL("../../models", import.meta.url));

/** Each task's module, loaded on demand. */
const RUNNERS: Record<DemoTask, () => Promise<DemoRunner>> = {
  text: async () => (await import("../demo/text.ts")).runText,
  images: async () => (await import("../demo/images.ts")).runImages,
  generation: async () => (await import("../demo/generation.ts")).runGeneration,
};

/** `runs/demo-<yyyymmdd-hhmmss>`. */
function defaultOut(): string {
  const t = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
  return join("runs", `demo-${t}`);
}

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command("tunekit demo")
    .description(
      "Fine-tune the bundled pre-trained models on bundled data (offline) and compare with from-scratch and head-only baselines",
    )
    .argument("[task]", `one of ${DEMO_TASKS.join(", ")} (default: all three)`)
    .option("--list", "list the demo tasks and exit")
    .option("--quick", "tiny budgets (smoke test: seconds per task, the numbers mean little)")
    .option("--out <dir>", "output folder (default runs/demo-<timestamp>); one run folder per task")
    .option("--models <dir>", "folder with tiny-lm/ and digits-resnet/ (default: the bundled models)")
    .option("--seed <n>", "seed for data sampling, initialisation and data order", int, 42)
    .option("--quiet", "no progress bars or progress lines")
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.replace(/^error: /, "tunekit demo: ")) });
  await cmd.parseAsync(argv, { from: "user" });
  const opts = cmd.opts<{
    list?: boolean;
    quick?: boolean;
    out?: string;
    models?: string;
    seed: number;
    quiet?: boolean;
  }>();
  if (opts.list) {
    for (const t of DEMO_TASKS) process.stdout.write(`${t.padEnd(11)} ${TASK_SUMMARY[t]}\n`);
    return;
  }
  const [name] = cmd.args;
  if (name !== undefined && !(DEMO_TASKS as readonly string[]).includes(name))
    throw new UsageError(`unknown demo task '${name}' (${DEMO_TASKS.join(", ")}; --list describes them)`);
  const tasks: DemoTask[] = name ? [name as DemoTask] : [...DEMO_TASKS];
  await setupBackend();
  const out = resolve(opts.out ?? defaultOut());
  await mkdir(out, { recursive: true });
  const log = opts.quiet ? () => {} : (s: string) => process.stderr.write(`${s}\n`);
  const load = loadavg()[0];
  log(`tunekit demo: ${tasks.join(", ")}${opts.quick ? " (quick)" : ""} -> ${out}`);
  log(`backend ${backend().name}; load average ${load.toFixed(2)}`);
  const results: DemoResult[] = [];
  for (const t of tasks) {
    const o: DemoOptions = {
      dir: join(out, t),
      quick: !!opts.quick,
      modelsDir: resolve(opts.models ?? BUNDLED_MODELS),
      seed: opts.seed,
      quiet: !!opts.quiet,
      log,
    };
    const r = await (await RUNNERS[t]())(o);
    await (await import("../demo/common.ts")).writeReports(r);
    if (r.runMeta) writeFileSync(join(r.dir, RUN_META), `${JSON.stringify(r.runMeta, null, 2)}\n`);
    results.push(r);
  }
  const summary = {
    quick: !!opts.quick,
    seed: opts.seed,
    backend: backend().name,
    loadAverage: { start: load, end: loadavg()[0] },
    tasks: results.map((r) => ({
      task: r.task,
      metric: r.metric,
      data: r.data,
      seconds: r.seconds,
      dir: r.dir,
      arms: r.arms.map(({ name, kind, value, trainable, steps, seconds, note }) => ({
        name,
        kind,
        value,
        trainable,
        steps,
        seconds,
        note,
      })),
    })),
  };
  writeFileSync(join(out, "demo.json"), `${JSON.stringify(summary, null, 2)}\n`);
  const text = resultTable(results);
  writeFileSync(join(out, "results.md"), `${text}\n`);
  process.stdout.write(`\n${text}\n`);
}
