/**
 * Kernel benchmark: native SGEMM, conv2d and attention against PyTorch on the same machine and
 * thread count, plus the machine's FMA peak. `npm run bench:kernels [-- --quick] [--filter=REGEX] [--budget=SECONDS]`.
 * PyTorch runs in the same process run through `/usr/bin/python3` (skipped, with a note, when
 * `import torch` fails). Times are the best of several repetitions (the machine is shared).
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { createInterface } from "node:readline";
import type { Backend, Conv2dParams, Pool2dParams } from "../src/backend/backend.ts";
import { loadNativeBackend } from "../src/backend/native.ts";
import { loadAddon } from "../src/backend/native-binding.ts";
import { f32ToBf16 } from "../src/tensor/dtype.ts";
import { Tensor } from "../src/tensor/tensor.ts";

const quick = process.argv.includes("--quick");
// --filter=REGEX keeps only the cases whose name matches (e.g. --filter=resnet18 while iterating).
const filterArg = process.argv.find((a) => a.startsWith("--filter="));
const filter = filterArg ? new RegExp(filterArg.slice("--filter=".length)) : null;
// --budget=SECONDS overrides the seconds of repetitions per case (more = steadier on a busy machine).
const budgetArg = process.argv.find((a) => a.startsWith("--budget="));
const BUDGET = budgetArg ? Number(budgetArg.slice("--budget=".length)) : quick ? 0.15 : 0.6;

type Case =
  | { kind: "gemm"; name: string; M: number; N: number; K: number }
  // x (M, K) float32 @ W^T, W (N, K) stored as `wdt` (a linear layer; bfloat16 = a frozen LoRA base)
  | { kind: "linear"; name: string; M: number; N: number; K: number; wdt: "float32" | "bfloat16" }
  // F.linear with a bias (+ F.gelu): the bias epilogue vs the GEMM + broadcast add (+ the activation pass both)
  | { kind: "linearEpi"; name: string; M: number; N: number; K: number; act: "none" | "gelu" | "gelu_tanh" }
  | {
      kind: "conv";
      name: string;
      N: number;
      C: number;
      H: number;
      W: number;
      O: number;
      k: number;
      s: number;
      p: number;
      g: number;
    }
  | { kind: "attn"; name: string; B: number; H: number; T: number; D: number; causal: boolean }
  // max-pool 2d (N,C,H,W), k x k / s, padding p; "flops" = window cells compared (fwd), outputs (bwd)
  | { kind: "maxpool"; name: string; N: number; C: number; H: number; W: number; k: number; s: number; p: number };

function rand(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = Math.random() * 2 - 1;
  return new Tensor(d, "float32", shape);
}
const empty = (shape: number[]) => new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), "float32", shape);

/** Best time in ms of fn over a time budget (at least 2 runs after a warm-up). */
function best(fn: () => void, budget = BUDGET): number {
  fn();
  let min = Infinity;
  const t0 = performance.now();
  for (let r = 0; r < 2 || (performance.now() - t0) / 1e3 < budget; r++) {
    const t = performance.now();
    fn();
    min = Math.min(min, performance.now() - t);
    if (r > 200) break;
  }
  return min;
}

const convOut = (h: number, k: number, s: number, p: number) => Math.floor((h + 2 * p - k) / s) + 1;

/** Returns [ms, flops] pairs: one for gemm, [fwd, bwd] for conv and attention. */
function runOurs(be: Backend, c: Case): { ms: number[]; flops: number[] } {
  if (c.kind === "gemm") {
    const a = rand([c.M, c.K]);
    const b = rand([c.K, c.N]);
    const o = empty([c.M, c.N]);
    const flops = 2 * c.M * c.N * c.K;
    return { ms: [best(() => be.matmul(a, b, o), flops > 2e10 ? 0 : BUDGET)], flops: [flops] };
  }
  if (c.kind === "linear") {
    const x = rand([c.M, c.K]);
    const wf = rand([c.N, c.K]);
    const w =
      c.wdt === "float32"
        ? wf
        : new Tensor(Uint16Array.from(wf.data as Float32Array, f32ToBf16), "bfloat16", [c.N, c.K]);
    const wt = w.view_([c.K, c.N], [1, c.K], 0);
    const o = empty([c.M, c.N]);
    return { ms: [best(() => be.matmul(x, wt, o))], flops: [2 * c.M * c.N * c.K] };
  }
  if (c.kind === "linearEpi") {
    const [x, w, b] = [rand([c.M, c.K]), rand([c.N, c.K]), rand([c.N])];
    const [y, y2, y3] = [empty([c.M, c.N]), empty([c.M, c.N]), empty([c.M, c.N])];
    const act = c.act;
    // F.linear (+ F.gelu) now: the bias in the GEMM's epilogue, then the activation pass
    const fused = () => {
      be.fused.linear?.(x, w, b, y);
      if (act !== "none") be.fused.activation?.(act, y, y3);
    };
    // what they ran before the epilogue: GEMM, broadcast add, activation pass
    const wt = w.view_([c.K, c.N], [1, c.K], 0);
    const bx = b.view_([c.M, c.N], [0, 1], 0);
    const unfused = () => {
      be.matmul(x, wt, y);
      be.binary("add", y, bx, y2);
      if (act !== "none") be.fused.activation?.(act, y2, y3);
    };
    const flops = 2 * c.M * c.N * c.K;
    return { ms: [best(fused), best(unfused)], flops: [flops, flops] };
  }
  if (c.kind === "maxpool") {
    const OH = convOut(c.H, c.k, c.s, c.p);
    const OW = convOut(c.W, c.k, c.s, c.p);
    const p: Pool2dParams = { kernel: [c.k, c.k], stride: [c.s, c.s], padding: [c.p, c.p] };
    const x = rand([c.N, c.C, c.H, c.W]);
    const y = empty([c.N, c.C, OH, OW]);
    const idx = new Tensor(new Int32Array(c.N * c.C * OH * OW), "int32", [c.N, c.C, OH, OW]);
    const dy = rand([c.N, c.C, OH, OW]);
    const dx = empty([c.N, c.C, c.H, c.W]);
    const fwd = best(() => be.maxPool2d(x, y, idx, p));
    const bwd = best(() => {
      (dx.data as Float32Array).fill(0); // the op zero-fills dx (zeros) before the scatter
      be.maxPool2dBackward(dy, idx, dx);
    });
    const outs = c.N * c.C * OH * OW;
    return { ms: [fwd, bwd], flops: [outs * c.k * c.k, outs] };
  }
  if (c.kind === "conv") {
    const OH = convOut(c.H, c.k, c.s, c.p);
    const OW = convOut(c.W, c.k, c.s, c.p);
    const p: Conv2dParams = { stride: [c.s, c.s], padding: [c.p, c.p], dilation: [1, 1], groups: c.g };
    const x = rand([c.N, c.C, c.H, c.W]);
    const w = rand([c.O, c.C / c.g, c.k, c.k]);
    const y = empty([c.N, c.O, OH, OW]);
    const dy = rand([c.N, c.O, OH, OW]);
    const dx = empty(x.shape as number[]);
    const dw = empty(w.shape as number[]);
    const flops = 2 * c.N * c.O * OH * OW * (c.C / c.g) * c.k * c.k;
    const fwd = best(() => be.conv2d(x, w, y, p));
    const bwd = best(() => {
      be.conv2dBackwardInput(dy, w, dx, p);
      be.conv2dBackwardWeight(x, dy, dw, p);
    });
    return { ms: [fwd, bwd], flops: [flops, 2 * flops] };
  }
  const { B, H, T, D } = c;
  const q = rand([B, H, T, D]);
  const k = rand([B, H, T, D]);
  const v = rand([B, H, T, D]);
  const out = empty([B, H, T, D]);
  const lse = empty([B, H, T]);
  const dout = rand([B, H, T, D]);
  const [dq, dk, dv] = [empty([B, H, T, D]), empty([B, H, T, D]), empty([B, H, T, D])];
  const f = be.fused;
  const scale = 1 / Math.sqrt(D);
  const fwd = best(() => f.attention!(q, k, v, null, c.causal, scale, out, lse));
  const bwd = best(() => f.attentionBackward!(q, k, v, null, c.causal, scale, out, lse, dout, dq, dk, dv));
  const flops = 4 * B * H * T * T * D; // nominal (full, non-causal) count for both sides
  return { ms: [fwd, bwd], flops: [flops, 2 * flops] };
}

const PY = String.raw`
import json, sys, time
import torch
import torch.nn.functional as F
threads, budget = int(sys.argv[1]), float(sys.argv[2])
torch.set_num_threads(threads)
torch.set_grad_enabled(True)
def best(fn, budget=budget):
    fn(); m = float("inf"); t0 = time.perf_counter(); r = 0
    while r < 2 or (time.perf_counter() - t0 < budget and r < 200):
        t = time.perf_counter(); fn(); m = min(m, time.perf_counter() - t); r += 1
    return m * 1e3
def run(c):
    if c["kind"] == "gemm":
        a = torch.randn(c["M"], c["K"]); b = torch.randn(c["K"], c["N"]); o = torch.empty(c["M"], c["N"])
        big = 2 * c["M"] * c["N"] * c["K"] > 2e10
        return [best(lambda: torch.mm(a, b, out=o), 0 if big else budget)]
    elif c["kind"] == "linear":
        # bfloat16: F.linear on bf16 x and W (torch has no f32 x bf16 GEMM; this is its bf16 path,
        # bf16 inputs and output), else the float32 F.linear
        dt = torch.bfloat16 if c["wdt"] == "bfloat16" else torch.float32
        x = torch.randn(c["M"], c["K"]).to(dt); w = torch.randn(c["N"], c["K"]).to(dt)
        with torch.no_grad():
            return [best(lambda: F.linear(x, w))]
    elif c["kind"] == "linearEpi":
        x = torch.randn(c["M"], c["K"]); w = torch.randn(c["N"], c["K"]); b = torch.randn(c["N"])
        act = c["act"]
        f = (lambda: F.linear(x, w, b)) if act == "none" else (lambda: F.gelu(F.linear(x, w, b), approximate="tanh" if act == "gelu_tanh" else "none"))
        with torch.no_grad():
            t = best(f)
        return [t, t]
    elif c["kind"] == "maxpool":
        x = torch.randn(c["N"], c["C"], c["H"], c["W"], requires_grad=True)
        pool = lambda: F.max_pool2d(x, c["k"], c["s"], c["p"])
        with torch.no_grad():
            fwd = best(pool)
        y = pool(); dy = torch.randn_like(y)
        return [fwd, best(lambda: torch.autograd.grad(y, (x,), dy, retain_graph=True))]
    elif c["kind"] == "conv":
        x = torch.randn(c["N"], c["C"], c["H"], c["W"], requires_grad=True)
        w = torch.randn(c["O"], c["C"] // c["g"], c["k"], c["k"], requires_grad=True)
        conv = lambda: F.conv2d(x, w, stride=c["s"], padding=c["p"], groups=c["g"])
        with torch.no_grad():
            fwd = best(conv)
        y = conv(); dy = torch.randn_like(y)
        return [fwd, best(lambda: torch.autograd.grad(y, (x, w), dy, retain_graph=True))]
    else:
        B, H, T, D = c["B"], c["H"], c["T"], c["D"]
        q, k, v = [torch.randn(B, H, T, D, requires_grad=True) for _ in range(3)]
        mask = torch.full((T, T), float("-inf")).triu(1) if c["causal"] else None
        def attn():
            s = (q @ k.transpose(-1, -2)) * (D ** -0.5)
            if mask is not None: s = s + mask
            return torch.softmax(s, -1) @ v
        with torch.no_grad():
            fwd = best(attn)
        dout = torch.randn(B, H, T, D)
        o = attn()
        return [fwd, best(lambda: torch.autograd.grad(o, (q, k, v), dout, retain_graph=True))]
print("ready", flush=True)
for line in sys.stdin:
    print(json.dumps(run(json.loads(line))), flush=True)
`;

/** A persistent PyTorch process answering one case per line, so ours and theirs alternate in time. */
class Torch {
  private proc: ChildProcessWithoutNullStreams;
  private lines: AsyncIterator<string>;
  private constructor(threads: number) {
    this.proc = spawn("/usr/bin/python3", ["-c", PY, String(threads), String(BUDGET)]);
    this.lines = createInterface({ input: this.proc.stdout })[Symbol.asyncIterator]();
  }
  static async start(threads: number): Promise<Torch | { error: string }> {
    const probe = spawnSync("/usr/bin/python3", ["-c", "import torch"], { encoding: "utf8" });
    if (probe.status !== 0)
      return {
        error:
          "PyTorch columns skipped: install it with `apt-get install -y python3-torch libopenblas0-pthread` (check: /usr/bin/python3 -c 'import torch')",
      };
    const t = new Torch(threads);
    const first = await t.lines.next();
    if (first.done || first.value !== "ready") return { error: "PyTorch worker failed to start" };
    return t;
  }
  async run(c: Case): Promise<number[]> {
    this.proc.stdin.write(`${JSON.stringify(c)}\n`);
    const r = await this.lines.next();
    if (r.done) throw new Error("PyTorch worker exited");
    return JSON.parse(r.value) as number[];
  }
  close(): void {
    this.proc.stdin.end();
  }
}

function cases(): Case[] {
  const out: Case[] = [];
  for (const n of quick ? [128, 512, 1024] : [128, 256, 512, 1024, 2048])
    out.push({ kind: "gemm", name: `sgemm ${n}^3`, M: n, N: n, K: n });
  const tr: [number, number, number][] = quick
    ? [
        [1024, 768, 768],
        [1024, 3072, 768],
      ]
    : [
        [1024, 768, 768],
        [1024, 3072, 768],
        [1024, 768, 3072],
        [1024, 50257, 768],
      ];
  for (const [M, N, K] of tr) out.push({ kind: "gemm", name: `sgemm ${M}x${N}x${K} (MxNxK)`, M, N, K });
  // x @ W^T with the weight in float32 and in bf16 (widened inside the GEMM's packing; M = 1 is a
  // decode step, the streamed GEMV)
  for (const [M, N, K] of [
    [1024, 768, 768],
    [1024, 768, 3072],
    [1, 3072, 768],
  ])
    for (const wdt of ["float32", "bfloat16"] as const)
      out.push({ kind: "linear", name: `linear x@W^T ${M}x${N}x${K} W ${wdt}`, M, N, K, wdt });
  // the transformer MLP: up-projection + gelu (GPT-2's tanh form, BERT's erf), down-projection + bias
  for (const [M, N, K, act] of [
    [1024, 3072, 768, "gelu_tanh"],
    [1024, 3072, 768, "gelu"],
    [1024, 768, 3072, "none"],
  ] as const)
    out.push({ kind: "linearEpi", name: `linear+bias${act === "none" ? "" : `+${act}`} ${M}x${N}x${K}`, M, N, K, act });
  const nb = quick ? 2 : 8;
  const resnet: [string, number, number, number, number, number, number][] = [
    ["conv1 7x7/2", 3, 224, 64, 7, 2, 3],
    ["layer1 3x3", 64, 56, 64, 3, 1, 1],
    ["layer2 3x3/2", 64, 56, 128, 3, 2, 1],
    ["layer2 3x3", 128, 28, 128, 3, 1, 1],
    ["layer2 down 1x1/2", 64, 56, 128, 1, 2, 0],
    ["layer3 3x3", 256, 14, 256, 3, 1, 1],
    ["layer4 3x3", 512, 7, 512, 3, 1, 1],
  ];
  for (const [name, C, H, O, k, s, p] of quick ? resnet.slice(1, 4) : resnet)
    out.push({ kind: "conv", name: `resnet18 ${name} ${C}->${O} @${H} N=${nb}`, N: nb, C, H, W: H, O, k, s, p, g: 1 });
  out.push({
    kind: "maxpool",
    name: `resnet18 maxpool 3x3/2 64 @112 N=${nb}`,
    N: nb,
    C: 64,
    H: 112,
    W: 112,
    k: 3,
    s: 2,
    p: 1,
  });
  const mbv2: [string, number, number, number, number, number, number, number][] = [
    ["dw 3x3", 144, 56, 144, 3, 1, 1, 144],
    ["dw 3x3/2", 144, 56, 144, 3, 2, 1, 144],
    ["dw 3x3", 384, 14, 384, 3, 1, 1, 384],
    ["pw 1x1", 24, 56, 144, 1, 1, 0, 1],
    ["pw 1x1", 144, 56, 24, 1, 1, 0, 1],
    ["pw 1x1", 320, 7, 1280, 1, 1, 0, 1],
  ];
  for (const [name, C, H, O, k, s, p, g] of quick ? mbv2.slice(0, 4) : mbv2)
    out.push({ kind: "conv", name: `mobilenetv2 ${name} ${C}->${O} @${H} N=${nb}`, N: nb, C, H, W: H, O, k, s, p, g });
  for (const T of [256, 1024])
    out.push({ kind: "attn", name: `attention causal B=2 H=12 T=${T} D=64`, B: 2, H: 12, T, D: 64, causal: true });
  if (!quick)
    out.push({ kind: "attn", name: "attention full B=2 H=12 T=1024 D=64", B: 2, H: 12, T: 1024, D: 64, causal: false });
  return filter ? out.filter((c) => filter.test(c.name)) : out;
}

async function main(): Promise<void> {
  const loaded = loadNativeBackend();
  const addon = loadAddon();
  if ("error" in loaded || "error" in addon) {
    console.error(`native backend unavailable: ${"error" in loaded ? loaded.error : ""}`);
    process.exit(1);
  }
  const be = loaded.backend;
  const { isa, threads } = addon.info;
  const iters = 2e7;
  let peakMs = Infinity;
  let flops = 0;
  for (let r = 0; r < 3; r++) {
    const t = performance.now();
    flops = addon.addon.fmaPeak(iters);
    peakMs = Math.min(peakMs, performance.now() - t);
  }
  const peak = flops / peakMs / 1e6;
  console.log(
    `tunekit native: isa=${isa} threads=${threads}; FMA peak (register-only) ${peak.toFixed(1)} GFLOP/s${quick ? " [quick]" : ""}`,
  );
  const list = cases();
  const torchProc = await Torch.start(threads);
  if ("error" in torchProc) console.log(`(${torchProc.error})`);
  // Alternate ours / theirs per case, twice, keeping the best of each: load from other
  // processes on a shared machine then hits both sides alike.
  const ours: { ms: number[]; flops: number[] }[] = [];
  const theirs: number[][] = [];
  for (const c of list) {
    let o = runOurs(be, c);
    let t = "error" in torchProc ? null : await torchProc.run(c);
    if (!quick) {
      const o2 = runOurs(be, c);
      o = { ms: o.ms.map((v, j) => Math.min(v, o2.ms[j])), flops: o.flops };
      if (t && !("error" in torchProc)) {
        const t2 = await torchProc.run(c);
        t = t.map((v, j) => Math.min(v, t2[j]));
      }
    }
    ours.push(o);
    theirs.push(t ?? []);
    process.stderr.write(".");
  }
  process.stderr.write("\n");
  if (!("error" in torchProc)) torchProc.close();
  const torch = "error" in torchProc ? torchProc : { ms: theirs };
  const rows: string[][] = [["case", "pass", "ms", "GFLOP/s", "% peak", "torch GFLOP/s", "ratio vs torch"]];
  list.forEach((c, i) => {
    const passes =
      c.kind === "gemm" || c.kind === "linear"
        ? ["-"]
        : c.kind === "linearEpi"
          ? ["epilogue", "add pass"]
          : ["fwd", "bwd", "fwd+bwd"];
    passes.forEach((pass, j) => {
      const o = ours[i];
      const ms = j === 2 ? o.ms[0] + o.ms[1] : o.ms[j];
      const fl = j === 2 ? o.flops[0] + o.flops[1] : o.flops[j];
      const g = fl / ms / 1e6;
      let tg = "";
      let ratio = "";
      if (!("error" in torch)) {
        const t = torch.ms[i];
        const tms = j === 2 ? t[0] + t[1] : t[j];
        tg = (fl / tms / 1e6).toFixed(1);
        ratio = `${(tms / ms).toFixed(2)}x`;
      }
      rows.push([
        c.name,
        pass,
        ms.toFixed(2),
        g.toFixed(1),
        c.kind === "gemm" || c.kind === "linear" || c.kind === "linearEpi" ? `${((100 * g) / peak).toFixed(0)}%` : "",
        tg,
        ratio,
      ]);
    });
  });
  const w = rows[0].map((_, k) => Math.max(...rows.map((r) => r[k].length)));
  for (const r of rows) console.log(r.map((s, k) => (k === 0 ? s.padEnd(w[k]) : s.padStart(w[k]))).join("  "));
  console.log(
    "ratio = torch time / our time (> 1: we are faster). Best of repetitions; the machine is shared, expect noise.\n" +
      "linear ... W bfloat16: ours is f32 x @ widened bf16 W^T (f32 accumulate); torch's is F.linear on bf16 x and W.\n" +
      "linear+bias[+gelu]: epilogue = bias added in the GEMM's epilogue (then the gelu pass); add pass = GEMM, broadcast add (, gelu);\n" +
      "  torch's is F.linear(x, W, b) [then F.gelu] (no_grad); GFLOP/s counts the GEMM's 2MNK only.",
  );
}

await main();
