/**
 * The `tunekit` command: a thin dispatcher. Each subcommand is one module exporting
 * `main(argv)`; adding one is one line in {@link COMMANDS}.
 *
 * @example
 * ```sh
 * tunekit inspect ./gpt2
 * tunekit generate --model ./SmolLM2-135M --prompt "Once upon a time" --max-new-tokens 20
 * ```
 */
import { Command, CommanderError } from "commander";

export interface Subcommand {
  main(argv: string[]): Promise<void>;
}

/** name -> one-line summary and a lazy import (startup stays fast; unused subcommands never load). */
export const COMMANDS: Record<string, { summary: string; load: () => Promise<Subcommand> }> = {
  inspect: {
    summary: "show a model folder's architecture, parameters, dtypes, head and tokenizer",
    load: () => import("./inspect.ts"),
  },
  generate: { summary: "generate text from a prompt with a causal LM", load: () => import("./generate.ts") },
  train: {
    summary: "fine-tune a model (flags or -c recipe.yaml + key=value overrides)",
    load: () => import("./train.ts"),
  },
  plan: {
    summary: "dry run: resolved config, trainable parameters, memory, data statistics",
    load: () => import("./plan.ts"),
  },
  eval: { summary: "evaluate a model or run folder on a dataset (metrics, JSON)", load: () => import("./eval.ts") },
  merge: {
    summary: "merge a LoRA adapter into its base model (a full model folder)",
    load: () => import("./merge.ts"),
  },
  predict: { summary: "classify images or texts with a fine-tuned model (top-k)", load: () => import("./predict.ts") },
  demo: {
    summary: "fine-tune the bundled models on bundled data vs from-scratch and head-only baselines (offline)",
    load: () => import("./demo.ts"),
  },
};

/** Runs the CLI with `argv` (without node and the script). Sets `process.exitCode` on failure. */
export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  try {
    const cmd = name === undefined ? undefined : COMMANDS[name];
    if (cmd) return await (await cmd.load()).main(rest);
    const program = new Command("tunekit")
      .description("Fine-tune pre-trained models in TypeScript")
      .version(await version())
      .exitOverride();
    for (const [n, c] of Object.entries(COMMANDS))
      program.command(n).description(c.summary).helpOption(false).allowUnknownOption();
    program.addHelpText("after", "\nRun 'tunekit <command> --help' for a command's options.");
    if (name === undefined) return program.outputHelp();
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    reportError(name, err);
  }
}

/**
 * Prints an error the way a CLI should: one line for known errors, the stack for bugs. Exit code 2
 * for usage errors (bad flag, key or value), 1 for runtime errors.
 */
export function reportError(command: string | undefined, err: unknown): void {
  if (err instanceof CommanderError) {
    // Commander already printed help/version or the usage error.
    if (err.exitCode !== 0) process.exitCode = 2;
    return;
  }
  const e = err as Error;
  // Built-in error classes mean a bug: show the stack. Our own classes carry a message for the user.
  const builtins: unknown[] = [Error, TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];
  const known = e && typeof e === "object" && !builtins.includes(e.constructor);
  process.stderr.write(`tunekit${command ? ` ${command}` : ""}: ${known ? e.message : (e?.stack ?? String(err))}\n`);
  process.exitCode = (e as { exitCode?: unknown })?.exitCode === 2 ? 2 : 1;
}

async function version(): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  const pkg = JSON.parse(await readFile(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return pkg.version;
}
