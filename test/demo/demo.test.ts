// `tunekit demo` as a user runs it (a child process): `--list`, usage errors, and a `--quick` run of
// each task (tiny budgets, so the numbers mean nothing) checking the final table's row, the run
// folders with report.html (baseline comparison included) and demo.json. The bundled models are
// used when present; otherwise the tiny CLI fixture LM stands in for models/tiny-lm.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { promisify } from "node:util";
import { encodeTextDataset, LabelSet } from "../../src/data/text/index.ts";
import { cleanEmail, stratifiedSample } from "../../src/demo/spam.ts";
import { resultTable } from "../../src/demo/table.ts";
import { SPAM_QUESTION, spamPrompt } from "../../src/demo/text.ts";
import { Tokenizer } from "../../src/tokenize/tokenizer.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "tunekit-demo-test-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** The bundled models, with the CLI fixture LM standing in for a missing tiny-lm. */
function modelsDir(): string {
  const bundled = join(ROOT, "models");
  if (existsSync(join(bundled, "tiny-lm", "model.safetensors"))) return bundled;
  const dir = join(tmp, "models");
  if (existsSync(dir)) return dir;
  mkdirSync(dir, { recursive: true });
  symlinkSync(join(ROOT, "test", "fixtures", "cli", "llama-chatml"), join(dir, "tiny-lm"));
  symlinkSync(join(bundled, "digits-resnet"), join(dir, "digits-resnet"));
  return dir;
}

async function tunekit(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [join(ROOT, "bin", "tunekit.mjs"), ...args],
      {
        cwd: ROOT,
        maxBuffer: 1 << 24,
      },
    );
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const skipImages = existsSync(join(ROOT, "models", "digits-resnet", "model.safetensors"))
  ? false
  : "models/digits-resnet missing";

describe("tunekit demo", () => {
  test("--list names the three tasks, one line each", async () => {
    const r = await tunekit("demo", "--list");
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.deepEqual(
      lines.map((l) => l.split(/\s+/)[0]),
      ["text", "images", "generation"],
    );
    assert.match(r.stdout, /SpamAssassin/);
    assert.match(r.stdout, /LoRA/);
  });

  test("an unknown task is a usage error (exit 2)", async () => {
    const r = await tunekit("demo", "audio", "--quick");
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown demo task 'audio'/);
  });

  for (const task of ["text", "images", "generation"] as const) {
    test(`--quick ${task}: the table row, demo.json and run folders with report.html`, {
      skip: task === "images" ? skipImages : false,
      timeout: 180_000,
    }, async () => {
      const out = join(tmp, `run-${task}`);
      const r = await tunekit("demo", task, "--quick", "--out", out, "--models", modelsDir());
      assert.equal(r.code, 0, r.stderr);
      const metric = task === "generation" ? "held-out perplexity" : "test accuracy";
      const row = r.stdout.split("\n").find((l) => l.startsWith(`| ${task} `));
      assert.ok(row, r.stdout);
      const cells = row.split("|").map((c) => c.trim());
      assert.equal(cells[2], metric);
      for (const c of cells.slice(3, 6)) assert.match(c, task === "generation" ? /^[\d.]+$/ : /^[\d.]+%$/, row);
      assert.match(r.stdout, /\| task\s+\| metric\s+\| fine-tuned\s+\| from scratch\s+\| head-only\s+\| gain/);
      const summary = JSON.parse(readFileSync(join(out, "demo.json"), "utf8"));
      assert.equal(summary.tasks.length, 1);
      const kinds = summary.tasks[0].arms.map((a: { kind: string }) => a.kind);
      assert.deepEqual(kinds.slice(0, 1), ["finetuned"]);
      assert.ok(kinds.includes("scratch") && kinds.includes("head"), kinds.join());
      const dir = join(out, task);
      const html = readFileSync(join(dir, "report.html"), "utf8");
      assert.match(html, /Did fine-tuning help\?/);
      assert.match(html, /from scratch/);
      assert.match(html, /head-only/);
      if (task === "generation") assert.match(html, /Generation samples/);
      for (const b of ["from-scratch", "head-only"]) assert.ok(existsSync(join(dir, "baselines", b, "report.html")), b);
      assert.ok(existsSync(join(dir, task === "generation" ? "adapter" : "model")));
      assert.ok(existsSync(join(dir, "run.json")));
      assert.ok(existsSync(join(out, "results.md")));
    });
  }
});

describe("demo data", () => {
  test("cleanEmail keeps the subject and the body, drops headers, MIME parts and HTML", () => {
    const raw = [
      "From x@y.z Mon Jun 24 2002",
      "Received: from somewhere",
      "Subject: Cheap =",
      " meds",
      "Content-Type: text/html",
      "",
      "------=_NextPart_000",
      "Content-Type: text/html; charset=us-ascii",
      "",
      "<html><body><p>Buy&nbsp;now &amp; save</p><style>p{}</style></body></html>",
    ].join("\n");
    assert.equal(cleanEmail(raw), "Subject: Cheap = meds\nBuy now & save");
  });

  test("spamPrompt: truncation cuts the email and keeps the question at the end", async () => {
    const tok = await Tokenizer.fromDir(join(modelsDir(), "tiny-lm"));
    const email = `Subject: Cheap meds\n${"Buy now and save big on all your orders. ".repeat(20)}`;
    const short = "Subject: lunch?\nSee you at noon.";
    const labels = LabelSet.fromNames(["ham", "spam"]);
    const examples = [email, short].map((t, i) => ({
      kind: "classification" as const,
      file: "x",
      line: i,
      ...spamPrompt(t),
      label: i,
    }));
    const enc = encodeTextDataset(
      {
        file: "x",
        task: "text-classification",
        examples,
        skipped: [],
        labels,
        problemType: "single_label_classification",
      },
      tok,
      { maxLength: 32 },
    );
    const [long, whole] = enc.examples.map((e) => tok.decode(e.inputIds));
    assert.equal(enc.examples[0].inputIds.length, 32);
    assert.ok(long.startsWith("Subject: Cheap meds\nBuy now"), long);
    assert.ok(long.endsWith(`\n\n${SPAM_QUESTION}`), long);
    assert.equal(whole, `${short}\n\n${SPAM_QUESTION}`);
    assert.equal(enc.stats.truncated, 1);
  });

  test("stratifiedSample: exact sizes, class shares kept, disjoint, seeded", () => {
    const labels = Array.from({ length: 1000 }, (_, i) => (i % 10 < 3 ? 1 : 0));
    const a = stratifiedSample(labels, 150, 50, 7);
    assert.equal(a.train.length, 150);
    assert.equal(a.test.length, 50);
    assert.equal(a.train.filter((i) => labels[i] === 1).length, 45);
    assert.equal(a.test.filter((i) => labels[i] === 1).length, 15);
    assert.equal(new Set([...a.train, ...a.test]).size, 200);
    assert.deepEqual(stratifiedSample(labels, 150, 50, 7), a);
    assert.notDeepEqual(stratifiedSample(labels, 150, 50, 8).train, a.train);
  });

  test("resultTable: a row per task with the gain over each baseline", () => {
    const arm = (kind: "finetuned" | "scratch" | "head", value: number) => ({
      name: kind,
      kind,
      value,
      trainable: 1,
      steps: 1,
      seconds: 1,
    });
    const t = resultTable([
      {
        task: "text",
        metric: "test accuracy",
        higherIsBetter: true,
        arms: [arm("finetuned", 0.95), arm("scratch", 0.8), arm("head", 0.9)],
        dir: "/r/text",
        seconds: 3,
        data: "",
      },
      {
        task: "generation",
        metric: "held-out perplexity",
        higherIsBetter: false,
        arms: [arm("finetuned", 50), arm("scratch", 200), arm("head", 100)],
        dir: "/r/gen",
        seconds: 3,
        data: "",
      },
    ]);
    assert.match(t, /\| text\s+\| test accuracy\s+\| 95\.0%\s+\| 80\.0%\s+\| 90\.0%\s+\| \+15\.0 pts\s+\| \+5\.0 pts/);
    assert.match(
      t,
      /\| generation\s+\| held-out perplexity\s+\| 50\.0\s+\| 200\s+\| 100\s+\| 4\.00x lower\s+\| 2\.00x lower/,
    );
  });
});
