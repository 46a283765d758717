/**
 * End-to-end benchmark: whole fine-tuning steps (forward + backward + AdamW) and generation, tunekit
 * against PyTorch on the same machine, shapes, dtype and thread count. Prints one table.
 *
 *   npm run bench                      # full suite (< 15 min on 2 cores)
 *   npm run bench -- --quick           # smaller shapes, 2 repetitions (< 2 min)
 *   npm run bench -- --rows gpt2-lora,resnet18-full
 *   npm run bench -- --write           # also write bench/RESULTS.md
 *   npm run bench -- --profile         # tunekit time per backend op (what NOTES.md quotes)
 *   npm run bench -- --reps 2          # override the repetitions of every row (loaded machine)
 *   npm run bench -- --no-scope        # tunekit's training steps without stepScope (the Trainer's default)
 *
 * Each finished row is also appended to bench/out/e2e-rows.jsonl (gitignored) as it completes.
 *
 * Each row runs in two child processes of its own (bench/e2e/tunekit-worker.ts and
 * bench/e2e/torch_worker.py), so each side's peak RSS is that row's alone. Both build the model
 * and warm up, then timed repetitions alternate tunekit, torch, tunekit, ... so load from other
 * processes hits both sides alike; the table shows medians. PyTorch is Debian's python3-torch;
 * without it the table has tunekit columns only and says how to install it.
 */
import { type ChildProcessWithoutNullStreams, execSync, spawn, spawnSync } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { fullRows, quickRows, type RowSpec, unitsPerRep } from "./e2e/rows.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, "..");
const PYTHON = "/usr/bin/python3";

interface Args {
  quick: boolean;
  rows: string[] | null;
  write: boolean;
  profile: boolean;
  reps: number | null;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { quick: false, rows: null, write: false, profile: false, reps: null };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s === "--quick") a.quick = true;
    else if (s === "--write") a.write = true;
    else if (s === "--profile") a.profile = true;
    else if (s === "--scope") process.env.TUNEKIT_BENCH_SCOPE = "1";
    else if (s === "--no-scope") process.env.TUNEKIT_BENCH_SCOPE = "0";
    else if (s === "--rows") a.rows = (argv[++i] ?? "").split(",").filter(Boolean);
    else if (s.startsWith("--rows=")) a.rows = s.slice(7).split(",").filter(Boolean);
    else if (s === "--reps") a.reps = Number(argv[++i]);
    else throw new Error(`bench: unknown argument '${s}' (known: --quick, --rows a,b, --reps N, --write, --profile, --scope, --no-scope)`);
    if (a.reps !== null && !(Number.isInteger(a.reps) && a.reps >= 1))
      throw new Error("bench: --reps takes an integer >= 1");
  }
  return a;
}

// ---- workers -----------------------------------------------------------------------------------

/** A row's worker process: one JSON object per line out, commands ("rep", "end") in. */
class Worker {
  private lines: AsyncIterator<string>;
  private stderr = "";
  private constructor(
    readonly name: string,
    private proc: ChildProcessWithoutNullStreams,
  ) {
    this.lines = createInterface({ input: proc.stdout })[Symbol.asyncIterator]();
    proc.stderr.on("data", (d: Buffer) => {
      this.stderr = (this.stderr + d.toString()).slice(-4000);
    });
  }

  static async start(name: string, cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<Worker> {
    const w = new Worker(name, spawn(cmd, args, { cwd: ROOT, env }));
    await w.read();
    return w;
  }

  private async read(): Promise<Record<string, unknown>> {
    for (;;) {
      const r = await this.lines.next();
      if (r.done) throw new Error(`${this.name} worker exited: ${this.stderr.trim().split("\n").slice(-6).join("\n")}`);
      if (r.value.startsWith("{")) return JSON.parse(r.value) as Record<string, unknown>;
    }
  }

  async rep(): Promise<number> {
    this.proc.stdin.write("rep\n");
    return (await this.read()).ms as number;
  }

  async end(): Promise<Record<string, unknown>> {
    this.proc.stdin.write("end\n");
    const r = await this.read();
    this.proc.stdin.end();
    return r;
  }

  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill();
  }
}

interface Side {
  ms: number[];
  maxRssKB: number;
  /** Minor page faults during the timed repetitions. */
  minorFaults: number;
  profile?: { totalMs: number; gcMs: number; ops: Record<string, { ms: number; calls: number }> };
}

interface RowResult {
  spec: RowSpec;
  tunekit?: Side;
  torch?: Side;
  error?: string;
}

function tunekitWorker(spec: RowSpec, threads: number, profile: boolean): Promise<Worker> {
  const args = ["--import", "tsx", join(HERE, "e2e", "tunekit-worker.ts"), JSON.stringify(spec)];
  if (profile) args.push("--profile");
  return Worker.start("tunekit", process.execPath, args, { ...process.env, TUNEKIT_THREADS: String(threads) });
}

function torchWorker(spec: RowSpec, threads: number): Promise<Worker> {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads) };
  return Worker.start(
    "torch",
    PYTHON,
    [join(HERE, "e2e", "torch_worker.py"), JSON.stringify(spec), String(threads)],
    env,
  );
}

/** Runs one row: both workers built and warmed up, then alternating timed repetitions. */
async function runRow(spec: RowSpec, threads: number, withTorch: boolean, profile: boolean): Promise<RowResult> {
  const res: RowResult = { spec };
  const workers: Worker[] = [];
  try {
    const tk = await tunekitWorker(spec, threads, profile);
    workers.push(tk);
    const th = withTorch ? await torchWorker(spec, threads) : null;
    if (th) workers.push(th);
    const tkMs: number[] = [];
    const thMs: number[] = [];
    for (let i = 0; i < spec.reps; i++) {
      tkMs.push(await tk.rep());
      if (th) thMs.push(await th.rep());
      process.stderr.write(".");
    }
    const tkEnd = await tk.end();
    res.tunekit = {
      ms: tkMs,
      maxRssKB: tkEnd.maxRssKB as number,
      minorFaults: tkEnd.minorFaults as number,
      profile: tkEnd.profile as Side["profile"],
    };
    if (th) {
      const e = await th.end();
      res.torch = { ms: thMs, maxRssKB: e.maxRssKB as number, minorFaults: e.minorFaults as number };
    }
  } catch (e) {
    res.error = (e as Error).message;
  } finally {
    for (const w of workers) w.kill();
  }
  return res;
}

// ---- table -------------------------------------------------------------------------------------

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmtRate = (x: number) => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const fmtMB = (kb: number) => `${(kb / 1024).toFixed(0)} MB`;

function tableRows(results: RowResult[]): string[][] {
  const head = [
    "row",
    "unit",
    "tunekit",
    "torch",
    "ratio",
    "tunekit peak RSS",
    "torch peak RSS",
    "ms/rep tk / torch (median)",
  ];
  const out = [head];
  for (const r of results) {
    const title = r.spec.note ? `${r.spec.title} [quick: ${r.spec.note}]` : r.spec.title;
    if (r.error || !r.tunekit) {
      out.push([title, r.spec.unit, "error", "", "", "", "", (r.error ?? "").split("\n")[0].slice(0, 120)]);
      continue;
    }
    const units = unitsPerRep(r.spec);
    const tkMs = median(r.tunekit.ms);
    const tkRate = (units / tkMs) * 1e3;
    const thMs = r.torch ? median(r.torch.ms) : Number.NaN;
    const thRate = (units / thMs) * 1e3;
    out.push([
      title,
      r.spec.unit,
      fmtRate(tkRate),
      r.torch ? fmtRate(thRate) : "-",
      r.torch ? `${(tkRate / thRate).toFixed(2)}x` : "-",
      fmtMB(r.tunekit.maxRssKB),
      r.torch ? fmtMB(r.torch.maxRssKB) : "-",
      `${tkMs.toFixed(0)} / ${r.torch ? thMs.toFixed(0) : "-"}`,
    ]);
  }
  return out;
}

function printTable(rows: string[][]): void {
  const w = rows[0].map((_, k) => Math.max(...rows.map((r) => r[k].length)));
  for (const r of rows) console.log(r.map((s, k) => (k === 0 ? s.padEnd(w[k]) : s.padStart(w[k]))).join("  "));
}

function markdownTable(rows: string[][]): string {
  const line = (r: string[]) => `| ${r.join(" | ")} |`;
  return [line(rows[0]), line(rows[0].map((_, k) => (k < 2 ? "---" : "---:"))), ...rows.slice(1).map(line)].join("\n");
}

function printProfiles(results: RowResult[]): void {
  for (const r of results) {
    const p = r.tunekit?.profile;
    if (!p) continue;
    const inOps = Object.values(p.ops).reduce((a, o) => a + o.ms, 0);
    const perRep = (n: number) => Math.round(n / r.spec.reps).toLocaleString("en-US");
    console.log(
      `\nprofile ${r.spec.id}: ${p.totalMs.toFixed(0)} ms over ${r.spec.reps} reps; backend calls ${inOps.toFixed(0)} ms, ` +
        `outside them (JS, autograd, allocation) ${(p.totalMs - inOps).toFixed(0)} ms, of which GC pauses ${p.gcMs.toFixed(0)} ms; ` +
        `minor page faults per rep: tunekit ${perRep(r.tunekit?.minorFaults ?? 0)}, torch ${r.torch ? perRep(r.torch.minorFaults) : "-"}`,
    );
    const sorted = Object.entries(p.ops).sort((a, b) => b[1].ms - a[1].ms);
    for (const [name, o] of sorted.slice(0, 14))
      console.log(
        `  ${name.padEnd(28)} ${o.ms.toFixed(0).padStart(7)} ms ${((100 * o.ms) / p.totalMs).toFixed(1).padStart(5)}%  ${String(o.calls).padStart(6)} calls`,
      );
  }
}

// ---- machine -----------------------------------------------------------------------------------

function machine(threads: number, torchVersion: string | null): Record<string, string> {
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "unknown";
  const flags = /flags\s*:\s*(.*)/.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1].split(" ") ?? [];
  const isa = ["avx512f", "avx512_bf16", "avx2", "fma"].filter((f) => flags.includes(f)).join(", ");
  // BENCH_COMMIT: for runs from an exported snapshot (git archive) that has no .git.
  let commit = process.env.BENCH_COMMIT ?? "unknown";
  try {
    commit = execSync("git rev-parse --short HEAD", {
      cwd: ROOT,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    if (execSync("git status --porcelain -- src native", { cwd: ROOT, encoding: "utf8" }).trim())
      commit += " + uncommitted changes in src/native";
  } catch {}
  return {
    cpu: `${cpu} (${isa})`,
    cores: String(availableParallelism()),
    threads: String(threads),
    node: process.version,
    torch: torchVersion ?? "not installed",
    commit,
  };
}

function torchVersion(): string | null {
  const p = spawnSync(PYTHON, ["-c", "import torch, torchvision; print(torch.__version__, torchvision.__version__)"], {
    encoding: "utf8",
  });
  if (p.status !== 0) return null;
  const [t, tv] = p.stdout.trim().split(" ");
  return `${t} (torchvision ${tv})`;
}

// ---- main --------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const threads = Number(process.env.TUNEKIT_THREADS) || availableParallelism();
  let rows = args.quick ? quickRows() : fullRows();
  if (args.rows) {
    const known = rows.map((r) => r.id);
    const bad = args.rows.filter((id) => !known.includes(id));
    if (bad.length) throw new Error(`bench: unknown row(s) ${bad.join(", ")} (known: ${known.join(", ")})`);
    rows = rows.filter((r) => args.rows?.includes(r.id));
  }
  if (args.reps) rows = rows.map((r) => ({ ...r, reps: args.reps ?? r.reps }));
  const tv = torchVersion();
  if (!tv) {
    console.log(
      "PyTorch not found: tunekit columns only. Install it with\n" +
        "  apt-get install -y python3-torch python3-torchvision libopenblas0-pthread\n" +
        `(check: ${PYTHON} -c "import torch, torchvision")`,
    );
  }
  const m = machine(threads, tv);
  const load0 = loadavg()[0];
  const t0 = performance.now();
  console.log(
    `tunekit end-to-end benchmark${args.quick ? " [QUICK: reduced shapes, 2 reps]" : ""}; ${threads} threads each side; load average ${load0.toFixed(1)}`,
  );
  const results: RowResult[] = [];
  for (const spec of rows) {
    process.stderr.write(`${spec.id} `);
    const r = await runRow(spec, threads, tv !== null, args.profile);
    results.push(r);
    const line = tableRows([r])[1];
    process.stderr.write(` ${((performance.now() - t0) / 1e3).toFixed(0)} s: ${line.slice(2).join("  ")}\n`);
    mkdirSync(join(HERE, "out"), { recursive: true });
    appendFileSync(
      join(HERE, "out", "e2e-rows.jsonl"),
      `${JSON.stringify({ time: new Date().toISOString(), load: loadavg()[0], ...r })}\n`,
    );
  }
  const load1 = loadavg()[0];
  const minutes = (performance.now() - t0) / 60e3;
  const table = tableRows(results);
  printTable(table);
  console.log(
    `ratio = tunekit throughput / torch throughput (> 1: tunekit faster). Medians of ${args.reps ?? (args.quick ? 2 : "3-4")} alternating repetitions after warm-up; peak RSS per side from its own process. ` +
      `Load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}; ${minutes.toFixed(1)} min.`,
  );
  for (const r of results) if (r.error) console.log(`\n${r.spec.id} failed:\n${r.error}`);
  if (args.profile) printProfiles(results);
  if (args.write) {
    const md = [
      "# End-to-end benchmark results",
      "",
      `Written by \`npm run bench -- --write${args.quick ? " --quick" : ""}\` on ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC${args.quick ? " (**quick mode: reduced shapes**)" : ""}.`,
      "Rows, methods and caveats: bench/NOTES.md.",
      "",
      ...Object.entries(m).map(([k, v]) => `- ${k}: ${v}`),
      `- load average (1 min) at start / end: ${load0.toFixed(1)} / ${load1.toFixed(1)}`,
      `- suite time: ${minutes.toFixed(1)} min`,
      "",
      markdownTable(table),
      "",
      "ratio = tunekit throughput / PyTorch throughput (> 1: tunekit faster). Each side runs in its own",
      "process with the same thread count; repetitions alternate tunekit / PyTorch after warm-up;",
      "medians shown. Peak RSS is each worker process's `maxRSS` (node `process.resourceUsage()`,",
      "python `getrusage`), i.e. runtime + model + optimiser + activations.",
      "",
    ].join("\n");
    writeFileSync(join(HERE, "RESULTS.md"), md);
    console.log("wrote bench/RESULTS.md");
  }
}

await main();
