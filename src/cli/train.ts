/**
 * `tunekit train`: fine-tune a model from flags or a YAML recipe plus dotted overrides. Writes a
 * run folder: `cli.yaml` (the resolved CLI config; `tunekit train -c <run>/cli.yaml` repeats the
 * run), `run.json`, the trainer's `config.json`, `metrics.jsonl`, checkpoints, `model/` (or
 * `adapter/`), `report.html` and `summary.txt`. A progress bar on a TTY, plain lines otherwise.
 *
 * @example
 * ```sh
 * tunekit train --model ./distilbert --data reviews.csv --strategy lora lora.targets=[q_lin,v_lin]
 * tunekit train -c recipes/mobilenet-two-phase.yaml data.train=./photos train.epochs=5
 * tunekit train -c recipes/mobilenet-two-phase.yaml output.runDir=runs/a --resume
 * ```
 */
import { writeFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Command, Option } from "commander";
import type { LoraConfig } from "../peft/index.ts";
import type { StrategyConfig, TrainerConfig } from "../train/index.ts";
import { int, posInt, positive } from "./args.ts";
import type { PreparedRun, RunMeta } from "./common.ts";
import {
  type CliConfig,
  configYaml,
  requireRunnable,
  resolveCliConfig,
  UsageError,
  validKeys,
} from "./config-schema.ts";

/** The LoRA section in the library's terms. */
export function loraConfig(c: CliConfig): LoraConfig | undefined {
  const l = c.lora;
  if (!l?.targets) return undefined;
  return {
    targets: l.targets,
    ...(l.rank !== undefined ? { rank: l.rank } : {}),
    ...(l.alpha !== undefined ? { alpha: l.alpha } : {}),
    ...(l.dropout !== undefined ? { dropout: l.dropout } : {}),
    ...(l.rsLoRA !== undefined ? { useRslora: l.rsLoRA } : {}),
    ...(l.rankPattern ? { rankPattern: l.rankPattern } : {}),
    ...(l.alphaPattern ? { alphaPattern: l.alphaPattern } : {}),
    ...(l.modulesToSave ? { modulesToSave: l.modulesToSave } : {}),
    ...(l.excludeModules ? { excludeModules: l.excludeModules } : {}),
  };
}

/** The strategy object the trainer takes. */
export function strategyConfig(c: CliConfig): StrategyConfig {
  const s: StrategyConfig = { ...c.strategy };
  if (s.name === "lora") s.lora = loraConfig(c);
  return s;
}

/** CLI config + prepared data/model -> the trainer's options. */
export function trainerOptions(c: CliConfig, r: PreparedRun, runDir: string | undefined): TrainerConfig {
  const t = c.train;
  const o: TrainerConfig = {
    model: r.model,
    train: r.train as TrainerConfig["train"],
    task: r.task,
    strategy: strategyConfig(c),
    optimizer: c.optimizer as TrainerConfig["optimizer"],
    schedule: c.schedule,
    seed: t.seed ?? 42,
    modelName: r.modelDir,
  };
  if (r.eval) o.eval = r.eval as TrainerConfig["train"];
  const copy = [
    "epochs",
    "maxSteps",
    "batchSize",
    "evalBatchSize",
    "gradAccumulation",
    "clipGradNorm",
    "evalEvery",
    "evalEachEpoch",
    "earlyStopping",
    "checkpoint",
    "nonFinite",
    "logEvery",
  ] as const;
  for (const k of copy) if (t[k] !== undefined) (o as unknown as Record<string, unknown>)[k] = t[k];
  if (runDir) o.runDir = runDir;
  if (t.resume) o.resume = true;
  if (c.output.saveMerged) o.saveMerged = true;
  return o;
}

/** Flags shared by `train` and `plan`. */
export function configCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .argument("[overrides...]", "dotted overrides, e.g. train.epochs=5 lora.rank=16")
    .option("-c, --config <file>", "YAML recipe (flags and overrides apply on top)")
    .option("--model <dir>", "model folder or hf:owner/name (model.path)")
    .option("--data <path>", "training file, image folder or image list (data.train)")
    .option("--validation <path>", "validation file (data.validation)")
    .addOption(
      new Option("--task <task>", "model.task").choices([
        "text-classification",
        "token-classification",
        "causal-lm",
        "image-classification",
      ]),
    )
    .option("--strategy <s>", "head | top:N | full | two-phase | lora (strategy)")
    .option("--epochs <n>", "train.epochs", posInt)
    .option("--max-steps <n>", "train.maxSteps", posInt)
    .option("--lr <x>", "optimizer.lr", positive)
    .option("--batch-size <n>", "train.batchSize", posInt)
    .option("--seed <n>", "train.seed", int)
    .option("--out <dir>", "run folder (output.runDir)")
    .option("--skip-invalid", "skip malformed records/images and report them (data.skipInvalid)")
    .addHelpText("after", () => `\nConfig keys (YAML sections, or key=value on the command line):\n${keyHelp()}`)
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({
      writeErr: (s) => process.stderr.write(s.replace(/^error: /, `tunekit ${name.split(" ")[1]}: `)),
    });
}

/** Every config key, one line per section (for --help). */
function keyHelp(): string {
  const bySection = new Map<string, string[]>();
  for (const k of validKeys()) {
    const [sec, ...rest] = k.split(".");
    if (!rest.length) continue;
    bySection.set(sec, [...(bySection.get(sec) ?? []), rest.join(".")]);
  }
  return [...bySection].map(([sec, keys]) => `  ${sec}: ${keys.join(", ")}`).join("\n");
}

/** The validated config from a parsed command (flags, `-c`, overrides). */
export function configFromCommand(cmd: Command): CliConfig {
  const o = cmd.opts();
  const flags: Record<string, unknown> = {};
  for (const k of [
    "model",
    "data",
    "validation",
    "task",
    "strategy",
    "epochs",
    "maxSteps",
    "lr",
    "batchSize",
    "seed",
    "out",
  ])
    if (o[k] !== undefined) flags[k] = o[k];
  if (o.skipInvalid) flags.skipInvalid = true;
  if (o.resume) flags.resume = true;
  return resolveCliConfig({ file: o.config, flags, overrides: cmd.args });
}

/** The exact command line, for `cli.yaml`'s header. */
function commandLine(argv: string[]): string {
  const q = (s: string) => (/^[\w./:=@,[\]+-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`);
  return ["tunekit", "train", ...argv.map(q)].join(" ");
}

export async function main(argv: string[]): Promise<void> {
  const cmd = configCommand("tunekit train", "Fine-tune a model (flags or -c recipe.yaml plus dotted overrides)")
    .option("--resume", "continue from the newest complete checkpoint in the run folder (train.resume)")
    .option("--quiet", "no progress output");
  await cmd.parseAsync(argv, { from: "user" });
  const c = configFromCommand(cmd);
  requireRunnable(c);
  if (c.train.resume && !c.output.runDir)
    throw new UsageError("--resume needs the run folder: --out <dir> or output.runDir=<dir>");
  // The heavy modules load only once the command line is known to be valid.
  const { dataLines, defaultRunDir, preprocessorJson, prepareRun, RUN_META, setupBackend } = await import(
    "./common.ts"
  );
  const { Trainer } = await import("../train/index.ts");
  await setupBackend();
  const runDir = c.output.runDir ?? defaultRunDir(c.model.path as string);
  const r = await prepareRun(c);
  const log = (s: string) => process.stderr.write(`${s}\n`);
  for (const w of r.warnings) log(`note: ${w}`);
  for (const l of dataLines(r)) log(l);
  await mkdir(runDir, { recursive: true });
  writeFileSync(join(runDir, "cli.yaml"), `# ${commandLine(argv)}\n${configYaml(c)}`);
  const meta: RunMeta = {
    task: r.task,
    modelPath: r.modelDir,
    ...(r.labels && r.task !== "causal-lm" ? { labels: [...r.labels] } : {}),
    ...(r.preprocessor ? { preprocessor: r.preprocessor } : {}),
  };
  writeFileSync(join(runDir, RUN_META), `${JSON.stringify(meta, null, 2)}\n`);
  const opts = trainerOptions(c, r, runDir);
  if (cmd.opts().quiet) opts.quiet = true;
  const trainer = new Trainer(opts);
  log(`run folder: ${runDir}${c.train.resume ? " (resuming)" : ""}`);
  const run = await trainer.fit();
  if (r.preprocessor)
    for (const p of [run.paths.model, run.paths.merged])
      if (p)
        writeFileSync(
          join(p, "preprocessor_config.json"),
          `${JSON.stringify(preprocessorJson(r.preprocessor), null, 2)}\n`,
        );
  const ev = run.eval?.metrics;
  const lines = [
    `done: ${run.steps} steps${run.skippedSteps ? ` (${run.skippedSteps} skipped as non-finite)` : ""}`,
    ...(ev
      ? [
          `eval: ${Object.entries(ev)
            .map(([k, v]) => `${k} ${v.toFixed(4)}`)
            .join(", ")}`,
        ]
      : []),
    ...(run.best ? [`best: ${run.best.metric} ${run.best.value.toFixed(4)} at step ${run.best.step}`] : []),
    ...Object.entries(run.paths)
      .filter(([k]) => k !== "runDir")
      .map(([k, v]) => `${k}: ${v}`),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
