// `tunekit train` and `tunekit plan` end to end: config errors (exit 2, one line, the closest key),
// the run folder, progress lines when not a TTY, cli.yaml repeating the run, and SIGKILL + --resume
// ending where an uninterrupted run ends.
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { CHAT, DISTILBERT, LLAMA, REVIEWS, spawnTunekit, trainLosses, tunekit } from "./run-cli.ts";

const tmp = mkdtempSync(join(tmpdir(), "tunekit-cli-train-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

const base = ["--model", DISTILBERT, "--data", REVIEWS, "data.maxLength=64"];

describe("tunekit train: usage errors exit 2 with one line", { concurrency: 4 }, () => {
  const cases: [string[], RegExp][] = [
    [[...base, "train.epoch=3"], /^tunekit train: unknown key 'train\.epoch' \(did you mean 'train\.epochs'\?\)\n$/],
    [[...base, "lr=1e-3"], /^tunekit train: unknown key 'lr' \(did you mean 'optimizer\.lr'\?\)\n$/],
    [[...base, "train.epochs=five"], /^tunekit train: train\.epochs: expected number, got 'five'\n$/],
    [[...base, "optimizer.lr=-1"], /^tunekit train: optimizer\.lr: expected > 0, got number -1\n$/],
    [
      [...base, "--strategy", "bogus"],
      /strategy\.name: expected one of 'head', 'top', 'full', 'two-phase', 'lora', got 'bogus'/,
    ],
    [[...base, "--strategy", "lora"], /strategy 'lora' needs lora\.targets/],
    [[...base, "--epochs", "abc"], /option '--epochs <n>' argument 'abc' is invalid/],
    [[...base, "--bogus"], /unknown option '--bogus'/],
    [[...base, "epochs"], /expected key=value \(e\.g\. train\.epochs=5\), got 'epochs'/],
    [["--data", REVIEWS], /no model: give --model/],
    [["-c", "/no/such.yaml"], /\/no\/such\.yaml: cannot read/],
    [[...base, "--resume"], /--resume needs the run folder/],
  ];
  for (const [args, re] of cases)
    test(args.slice(4).join(" ") || args.join(" "), async () => {
      const r = await tunekit("train", ...args);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, re);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    });

  test("an error inside a YAML file names the file and the key", async () => {
    const f = join(tmp, "bad.yaml");
    writeFileSync(f, "model:\n  path: x\ntrain:\n  batchsize: 4\n");
    const r = await tunekit("train", "-c", f);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /bad\.yaml: unknown key 'train\.batchsize' \(did you mean 'train\.batchSize'\?\)/);
  });

  test("runtime errors exit 1: a missing model folder, a missing data column", async () => {
    const r = await tunekit("train", "--model", "/no/such/model", "--data", REVIEWS);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tunekit train: \/no\/such\/model: no such folder/);
    const r2 = await tunekit("train", ...base, "data.columns.text=review");
    assert.equal(r2.code, 1);
    assert.match(r2.stderr, /no column "review"/);
    assert.doesNotMatch(r2.stderr, /\n\s+at /);
  });
});

describe("tunekit train", () => {
  test("writes the run folder; plain progress lines when not a TTY; cli.yaml repeats the run", async () => {
    const out = join(tmp, "run-a");
    const r = await tunekit(
      "train",
      ...base,
      "--max-steps",
      "4",
      "--batch-size",
      "8",
      "--lr",
      "1e-3",
      "train.logEvery=2",
      "--out",
      out,
    );
    assert.equal(r.code, 0, r.stderr);
    for (const f of ["cli.yaml", "run.json", "config.json", "metrics.jsonl", "model/model.safetensors", "report.html"])
      assert.ok(existsSync(join(out, f)), f);
    assert.match(r.stderr, /^step 2\/4 loss \d+\.\d{4} lr \d\.\d\de-\d \d+\.\d samples\/s ETA \d+m\d\ds$/m);
    assert.match(r.stderr, /^step 4\/4 loss/m);
    assert.ok(
      !r.stderr.includes("\r") && !r.stderr.includes("\u001b["),
      "no carriage returns or escapes without a TTY",
    );
    assert.match(r.stderr, /train: 36 examples, tokens per example: .*truncated to 64/);
    assert.match(r.stdout, /^done: 4 steps$/m);
    const yaml = readFileSync(join(out, "cli.yaml"), "utf8");
    assert.match(yaml.split("\n")[0], /^# tunekit train --model .* --max-steps 4 .* --out /);
    assert.deepEqual(JSON.parse(readFileSync(join(out, "run.json"), "utf8")).labels, ["neg", "pos"]);
    const again = join(tmp, "run-a2");
    const r2 = await tunekit("train", "-c", join(out, "cli.yaml"), `output.runDir=${again}`, "--quiet");
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.stderr.includes("step 2/4"), false, "--quiet");
    assert.deepEqual(trainLosses(again), trainLosses(out));
  });

  test("SIGKILL mid-run, then --resume: the same losses and weights as an uninterrupted run", async () => {
    const args = [
      ...base,
      "--max-steps",
      "12",
      "--batch-size",
      "4",
      "--lr",
      "1e-3",
      "train.logEvery=1",
      "train.checkpoint.every=2",
      "--quiet",
    ];
    const a = join(tmp, "resume-a");
    const b = join(tmp, "resume-b");
    assert.equal((await tunekit("train", ...args, "--out", a)).code, 0);
    const child = spawnTunekit("train", ...args, "--out", b);
    const exited = new Promise((res) => child.on("exit", res));
    const ckpts = join(b, "checkpoints");
    let killed = false;
    for (let i = 0; i < 3000 && child.exitCode === null; i++) {
      const done = existsSync(ckpts) && readdirSync(ckpts).some((d) => existsSync(join(ckpts, d, "manifest.json")));
      if (done) {
        killed = child.kill("SIGKILL");
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    await exited;
    assert.ok(killed, "the run was killed after its first checkpoint");
    assert.ok(!existsSync(join(b, "model")), "no final model before the resume");
    const r = await tunekit("train", ...args, "--out", b, "--resume");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(trainLosses(b), trainLosses(a));
    assert.equal(trainLosses(a).length, 12);
    assert.ok(
      readFileSync(join(a, "model", "model.safetensors")).equals(readFileSync(join(b, "model", "model.safetensors"))),
      "bitwise the same final weights",
    );
  });
});

describe("tunekit plan", () => {
  test("chat SFT with LoRA: config, trainable parameters, memory, truncation stats, the trained tokens marked", async () => {
    const r = await tunekit(
      "plan",
      "-c",
      "recipes/smollm2-chat-sft-lora.yaml",
      `model.path=${LLAMA}`,
      `data.train=${CHAT}`,
      "data.maxLength=64",
      "data.skipInvalid=true",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^# resolved config\nmodel:\n {2}path: .*llama-chatml\n {2}task: causal-lm/);
    assert.match(
      r.stdout,
      /strategy: {3}lora: trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: \d+\.\d{4}/,
    );
    assert.match(
      r.stdout,
      /memory: +~[\d.]+ [KM]iB \(weights .*, gradients .*, optimizer .*, activations [\d.]+ [KM]iB\)/,
    );
    assert.match(r.stdout, /steps: +\d+ optimizer steps \(\d+ per epoch, batch 4 x 4 accumulated\)/);
    assert.match(r.stdout, /truncated to 64/);
    assert.match(r.stdout, /skipped \d+ invalid record\(s\):\n {2}.*chat\.jsonl:\d+: /);
    assert.match(r.stdout, /<\|im_start\|>assistant\n\[\[Hello!<\|im_end\|>\n\]\]/);
    assert.ok(!existsSync("runs/smollm2-chat-lora"), "plan writes nothing");
  });

  test("--json: the trainable count of top:1 and the label set", async () => {
    const r = await tunekit("plan", ...base, "--strategy", "top:1", "--json");
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.task, "text-classification");
    assert.deepEqual(j.data.labels, ["neg", "pos"]);
    assert.equal(j.config.strategy.topN, 1);
    assert.ok(j.phases[0].trainable > 0 && j.phases[0].trainable < j.phases[0].total);
    assert.match(j.example, / -> label: (pos|neg) \(\d\)$/);
  });
});
