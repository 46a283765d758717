/**
 * tunekit side of one end-to-end benchmark row, run as its own child process so its peak RSS is
 * the row's alone. `node --import tsx bench/e2e/tunekit-worker.ts '<RowSpec JSON>' [--profile]`.
 *
 * Protocol (one JSON object per line): after building the model and the warm-up it prints
 * `{"ready":true}`; each `rep` line on stdin runs one timed repetition and prints `{"ms":...}`;
 * `end` prints `{"maxRssKB":...}` (plus the op profile with `--profile`) and exits.
 * `TUNEKIT_THREADS` (set by bench/run.ts) fixes the native thread count. Each training step runs
 * inside `stepScope` (pooled storage, with `releaseActivations`), as the Trainer's does;
 * `TUNEKIT_BENCH_SCOPE=0` (`npm run bench -- --no-scope`) runs it without.
 */
import { createInterface } from "node:readline";
import { PerformanceObserver } from "node:perf_hooks";
import {
  applyLora,
  backend,
  backward,
  generate,
  getArchitecture,
  manualSeed,
  noGrad,
  optim,
  type PretrainedModel,
  randint,
  randn,
  setBackend,
  stepScope,
  type Tensor,
  tensor,
} from "../../src/index.ts";
import type { Backend } from "../../src/backend/backend.ts";
import type { DecoderLM } from "../../src/models/heads.ts";
import type { ImageClassifier } from "../../src/models/vision-common.ts";
import type { RowSpec } from "./rows.ts";

const spec = JSON.parse(process.argv[2]) as RowSpec;
const profiling = process.argv.includes("--profile");
const scoped = process.env.TUNEKIT_BENCH_SCOPE !== "0";

// ---- optional profile: time spent in each backend call, by name ---------------------------------

const prof = new Map<string, { ms: number; calls: number }>();
let profOn = false;

/** Wraps every backend function (and the fused ones) with a timer; what is not in it is JS/autograd time. */
function installProfiler(): void {
  const wrap = (obj: Record<string, unknown>, prefix: string): Record<string, unknown> => {
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(obj)) {
      const f = obj[k];
      if (typeof f !== "function") {
        out[k] = f;
        continue;
      }
      const name = prefix + k;
      out[k] = (...args: unknown[]) => {
        if (!profOn) return (f as (...a: unknown[]) => unknown).apply(obj, args);
        const t = performance.now();
        try {
          return (f as (...a: unknown[]) => unknown).apply(obj, args);
        } finally {
          const e = prof.get(name) ?? { ms: 0, calls: 0 };
          e.ms += performance.now() - t;
          e.calls++;
          prof.set(name, e);
        }
      };
    }
    return out;
  };
  const be = backend() as unknown as Record<string, unknown>;
  const all: Record<string, unknown> = {};
  for (const k of [...Object.keys(be), ...Object.getOwnPropertyNames(Object.getPrototypeOf(be))]) {
    if (k !== "constructor") all[k] = be[k];
  }
  const wrapped = wrap(all, "");
  wrapped.fused = wrap({ ...(be.fused as Record<string, unknown>) }, "fused.");
  setBackend(wrapped as unknown as Backend);
}

// ---- the rows ----------------------------------------------------------------------------------

/** One timed repetition of the row's work. */
type Rep = () => void;

function adamw(model: PretrainedModel): optim.AdamW {
  return new optim.AdamW(
    model.parameters().filter((p) => p.requiresGrad),
    { lr: 1e-4, weightDecay: 0.01 },
  );
}

function trainStep(model: PretrainedModel, opt: optim.AdamW, inputs: () => Record<string, Tensor>): void {
  if (scoped) stepScope(() => step(model, opt, inputs), { keep: [model, opt], releaseActivations: true });
  else step(model, opt, inputs);
}

function step(model: PretrainedModel, opt: optim.AdamW, inputs: () => Record<string, Tensor>): void {
  const out = (model as unknown as { forward(i: Record<string, Tensor>): { loss?: Tensor } }).forward(inputs());
  if (!out.loss) throw new Error("the model returned no loss");
  backward(out.loss);
  opt.step();
  opt.zeroGrad();
}

function buildRow(): Rep {
  const r = spec;
  const model = getArchitecture(r.model).create(
    r.config,
    r.kind === "lm-lora" || r.kind === "generate"
      ? "causal-lm"
      : r.kind === "seqcls-full"
        ? "sequence-classification"
        : "image-classification",
  );
  const vocab = Number(r.config.vocab_size ?? 0);
  const B = r.batch;
  const T = r.seq ?? 0;
  switch (r.kind) {
    case "lm-lora": {
      if (!r.lora) throw new Error("lm-lora row without lora settings");
      applyLora(model, { targets: r.lora.targets, rank: r.lora.rank, alpha: r.lora.alpha });
      model.train();
      const opt = adamw(model);
      const ids = randint(0, vocab, [B, T]);
      return () => {
        for (let s = 0; s < r.stepsPerRep; s++) trainStep(model, opt, () => ({ inputIds: ids, labels: ids }));
      };
    }
    case "seqcls-full": {
      model.train();
      const opt = adamw(model);
      const ids = randint(1, vocab, [B, T]);
      const mask = tensor(new Int32Array(B * T).fill(1), { shape: [B, T] });
      const labels = randint(0, Number(r.config.num_labels ?? 2), [B]);
      return () => {
        for (let s = 0; s < r.stepsPerRep; s++)
          trainStep(model, opt, () => ({ inputIds: ids, attentionMask: mask, labels }));
      };
    }
    case "image-full": {
      model.train();
      const opt = adamw(model);
      const S = r.image ?? 224;
      const x = randn([B, 3, S, S]);
      const labels = randint(0, Number(r.config.num_classes ?? 10), [B]);
      return () => {
        for (let s = 0; s < r.stepsPerRep; s++) trainStep(model, opt, () => ({ pixelValues: x, labels }));
      };
    }
    case "image-head-cache":
      return headCacheRow(model as unknown as ImageClassifier & PretrainedModel);
    case "generate": {
      model.eval();
      const prompt = Array.from({ length: T }, (_, i) => (i * 7919) % vocab);
      return () => {
        const out = generate(model as unknown as DecoderLM, prompt, { maxNewTokens: r.newTokens, eosTokenId: [] });
        if (out.newIds.length !== r.newTokens) throw new Error("generation stopped early");
      };
    }
  }
}

/**
 * Head-only training with the feature cache, the way the trainer does it: the frozen backbone runs
 * once per image under noGrad (eval mode, BatchNorm frozen), then the head trains on the cached
 * (N, 512) features. One repetition = feature pass over `images` + one head epoch (batch `batch`).
 */
function headCacheRow(model: ImageClassifier & PretrainedModel): Rep {
  const r = spec;
  const N = r.images ?? 1000;
  const FB = r.featureBatch ?? 50;
  const S = r.image ?? 224;
  model.freeze();
  model.unfreeze([model.headPrefix]);
  model.eval();
  const opt = adamw(model);
  // Speed does not depend on pixel values: one random batch stands for every backbone batch.
  const x = randn([FB, 3, S, S]);
  const labels = randint(0, Number(r.config.num_classes ?? 10), [N]);
  return () => {
    const feats: Float32Array[] = [];
    for (let i = 0; i < N; i += FB) {
      const feature = () => {
        const f = noGrad(() => model.pooledFeatures(x));
        return Float32Array.from(f.data.subarray(f.offset, f.offset + f.size));
      };
      // As computeFeatures does: a scope per batch returns the backbone's intermediates to the pool.
      feats.push(scoped ? stepScope(feature, { keep: [model, x] }) : feature());
    }
    const F = model.numFeatures;
    const cache = new Float32Array(N * F);
    let off = 0;
    for (const f of feats) {
      cache.set(f.subarray(0, Math.min(f.length, cache.length - off)), off);
      off += f.length;
    }
    const ldata = labels.data as Int32Array;
    const order = Array.from({ length: N }, (_, i) => i);
    for (let i = N - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    for (let s = 0; s < N; s += r.batch) {
      const idx = order.slice(s, s + r.batch);
      const fb = new Float32Array(idx.length * F);
      idx.forEach((k, j) => fb.set(cache.subarray(k * F, (k + 1) * F), j * F));
      const feat = tensor(fb, { shape: [idx.length, F] });
      const y = tensor(Int32Array.from(idx, (k) => ldata[k]), { shape: [idx.length] });
      const { loss } = model.classify(feat, y);
      if (!loss) throw new Error("no loss");
      backward(loss);
      opt.step();
      opt.zeroGrad();
    }
  };
}

// ---- protocol ----------------------------------------------------------------------------------

manualSeed(0);
if (profiling) installProfiler();
const rep = buildRow();
for (let i = 0; i < spec.warmup; i++) rep();
const send = (o: unknown) => process.stdout.write(`${JSON.stringify(o)}\n`);
send({ ready: true });
let repMs = 0;
// Page faults and GC pauses inside the timed repetitions: fresh ArrayBuffers per op fault in
// their pages on first write (inside the kernels), and large external memory triggers V8 GCs.
let faults = 0;
const gcPauses: [number, number][] = []; // [start, duration] of every GC
const repWindows: [number, number][] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push([e.startTime, e.duration]);
}).observe({ entryTypes: ["gc"] });
for await (const line of createInterface({ input: process.stdin })) {
  if (line === "rep") {
    profOn = profiling;
    const f0 = process.resourceUsage().minorPageFault;
    const t = performance.now();
    rep();
    const ms = performance.now() - t;
    faults += process.resourceUsage().minorPageFault - f0;
    profOn = false;
    repWindows.push([t, t + ms]);
    repMs += ms;
    send({ ms });
  } else if (line === "end") {
    await new Promise((r) => setTimeout(r, 50)); // the GC observer reports asynchronously
    const gcMs = gcPauses
      .filter(([st]) => repWindows.some(([a, b]) => st >= a && st <= b))
      .reduce((a, [, d]) => a + d, 0);
    const out: Record<string, unknown> = { maxRssKB: process.resourceUsage().maxRSS, minorFaults: faults };
    if (profiling) out.profile = { totalMs: repMs, gcMs, ops: Object.fromEntries(prof) };
    send(out);
    process.exit(0);
  }
}
