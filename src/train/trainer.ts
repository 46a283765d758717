/**
 * `Trainer`: one readable loop. Per optimizer step: gather `gradAccumulation` micro-batches, run
 * forward/backward with each loss weighted by its share of the loss targets (so the update equals
 * the big batch's), check loss and gradient norm are finite, clip, step, audit the freeze after the
 * first step of each trainable set, log, evaluate, checkpoint. Everything that decides a number
 * (data order, dropout, new heads, LoRA init) comes from the seed, and everything that changes
 * during training is in the checkpoint, so a resumed run is bitwise the uninterrupted one.
 *
 * @example
 * ```ts
 * const run = await new Trainer({ model, train: data.train, eval: data.validation, strategy: "top:2",
 *   optimizer: { lr: 3e-5 }, epochs: 3, runDir: "./runs/reviews" }).fit();
 * console.log(run.best, run.paths.model);
 * ```
 */

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import YAML from "yaml";
import { backward } from "../autograd/index.ts";
import { ImageLoader } from "../data/images/loader.ts";
import type { Module } from "../nn/module.ts";
import { mul } from "../ops/index.ts";
import {
  Adam,
  AdamW,
  type BaseHyper,
  clipGradNorm,
  getScheduler,
  globalNorm,
  type LRScheduler,
  type Optimizer,
  SGD,
} from "../optim/index.ts";
import type { MetricRow } from "../report/types.ts";
import { TunekitError, ValueError } from "../tensor/errors.ts";
import { defaultGenerator, manualSeed } from "../tensor/rng.ts";
import { stepScope } from "../tensor/scope.ts";
import { Tensor } from "../tensor/tensor.ts";
import { type FrozenSnapshot, snapshotFrozen } from "./audit.ts";
import {
  checkpointName,
  findLatestCheckpoint,
  loadCheckpoint,
  pruneCheckpoints,
  saveCheckpoint,
} from "./checkpoint.ts";
import { configHash, configJson, type ResolvedConfig, resolveConfig, type TrainerConfig } from "./config.ts";
import {
  type BatchSource,
  computeFeatures,
  type EvalSource,
  evalSource,
  FeatureSource,
  type ImageDataSpec,
  isSeparable,
  type TrainBatch,
  trainSource,
} from "./data.ts";
import { type EvalResult, evaluate, forwardBatch } from "./evaluate.ts";
import { JsonlLogger, type Logger, ProgressLogger, type TrainerCallback } from "./loggers.ts";
import { EarlyStopping } from "./metrics.ts";
import { finishRun, type RunResult, readRows } from "./run.ts";
import { paramGroups, parseStrategy, prepareStrategy, type StrategyPlan } from "./strategies.ts";

/** Training stopped because losses or gradients stayed non-finite (policy "halt" or K consecutive skips). */
export class NonFiniteError extends TunekitError {
  result?: RunResult;
}

/** What `trainer_state.json` holds besides the loop state. */
type SavedState = LoopState & {
  configHash: string;
  scheduler: ReturnType<LRScheduler["stateDict"]>;
  rng: {
    default: ReturnType<typeof defaultGenerator.getState>;
    lora: ReturnType<typeof defaultGenerator.getState> | null;
  };
  data: unknown;
  es: ReturnType<EarlyStopping["state"]> | null;
  phaseEs: ReturnType<EarlyStopping["state"]> | null;
  metricsLines: number;
  auditVerified: boolean;
};

/** Trainer state that a checkpoint carries (JSON). */
interface LoopState {
  step: number;
  phase: number;
  phaseStartStep: number;
  phaseStartEpoch: number;
  skippedSteps: number;
  consecutiveSkips: number;
  lossWindow: number[];
  lastEvalStep: number;
  bestDir: string | null;
}

export class Trainer {
  readonly config: ResolvedConfig;
  readonly model: Module;
  plan!: StrategyPlan;
  optimizer!: Optimizer<BaseHyper>;
  scheduler!: LRScheduler;
  private src!: BatchSource;
  private evalSrc?: EvalSource;
  private readonly loggers: Logger[];
  private readonly callbacks: TrainerCallback[];
  private s: LoopState = {
    step: 0,
    phase: 0,
    phaseStartStep: 0,
    phaseStartEpoch: 0,
    skippedSteps: 0,
    consecutiveSkips: 0,
    lossWindow: [],
    lastEvalStep: -1,
    bestDir: null,
  };
  private rows: MetricRow[] = [];
  private es: EarlyStopping | null = null;
  private phaseEs: EarlyStopping | null = null;
  private best: Map<string, Tensor> | null = null;
  private audit: FrozenSnapshot | null = null;
  private auditVerified = false;
  private lastEval: EvalResult | null = null;
  private stopRequested = false;
  private timing = { start: 0, samples: 0, tokens: 0 };

  constructor(readonly options: TrainerConfig) {
    const strategy = parseStrategy(options.strategy);
    if (strategy.name === "lora" && !strategy.lora) strategy.lora = options.lora;
    this.model = options.model;
    this.config = resolveConfig(options, strategy, options.eval !== undefined);
    this.callbacks = options.callbacks ?? [];
    this.loggers = [...(options.loggers ?? [])];
    if (!options.quiet) this.loggers.push(new ProgressLogger(process.stderr, this.config.logEvery));
  }

  /** Trains; returns the run (metrics, best, paths) with `save(dir)`. */
  async fit(): Promise<RunResult> {
    const c = this.config;
    manualSeed(c.seed);
    this.plan = prepareStrategy(this.model, c.strategy);
    await this.setupData();
    const runDir = this.options.runDir;
    const ckptRoot = runDir ? join(runDir, "checkpoints") : null;
    const resumeFrom =
      this.options.resume && ckptRoot ? await findLatestCheckpoint(ckptRoot, (m) => process.emitWarning(m)) : null;
    if (runDir) {
      mkdirSync(runDir, { recursive: true });
      const json = configJson({ ...c, configHash: configHash(c) }, 2);
      writeFileSync(join(runDir, "config.json"), `${json}\n`);
      writeFileSync(join(runDir, "config.yaml"), YAML.stringify(JSON.parse(json)));
    }
    const es = c.earlyStopping;
    this.es = es ? new EarlyStopping(es) : null;
    if (resumeFrom) await this.restore(resumeFrom);
    else this.enterPhase(0, 0);
    if (runDir)
      this.loggers.push(new JsonlLogger(join(runDir, "metrics.jsonl"), resumeFrom ? this.rows.length : undefined));
    this.timing.start = performance.now();
    let halted: string | null = null;
    try {
      halted = await this.loop(ckptRoot);
    } finally {
      await this.src.close();
    }
    if (this.es?.restoreBest && this.s.bestDir)
      this.model.loadStateDict((await loadCheckpoint(this.s.bestDir)).model, { strict: false });
    else if (this.es?.restoreBest && this.best) this.model.loadStateDict(this.best, { strict: false });
    if (this.evalSrc && (this.lastEval === null || this.es?.restoreBest))
      this.lastEval = await evaluate(this.model, this.evalSrc, c.task);
    for (const cb of this.callbacks) await cb.onTrainEnd?.(this.rows);
    for (const l of this.loggers) l.close?.();
    const result = await finishRun(this, {
      rows: this.rows,
      lastEval: this.lastEval,
      auditVerified: this.auditVerified,
      skippedSteps: this.s.skippedSteps,
      timing: this.timingRecord(),
      halted,
      bestStep: this.es?.bestStep ?? null,
      bestValue: this.es?.best ?? null,
      dataset: { train: this.src.numExamples, ...(this.evalSrc ? { eval: this.evalSrc.numExamples } : {}) },
    });
    if (halted) {
      const e = new NonFiniteError(halted);
      e.result = result;
      throw e;
    }
    return result;
  }

  /** Optimizer steps per epoch: micro-batches per epoch over the accumulation, rounded up (an epoch's tail is one smaller step). */
  get stepsPerEpoch(): number {
    return Math.ceil(this.src.batchesPerEpoch / this.config.gradAccumulation);
  }

  private lastPhase(): boolean {
    return this.s.phase >= this.plan.phases.length - 1;
  }

  /** Epoch (exclusive) and step at which the current phase ends. */
  private phaseEnd(): { epoch: number; step: number } {
    const p = this.plan.phases[this.s.phase];
    const epochs = this.lastPhase() ? this.config.epochs : (p.epochs ?? 1);
    const end = { epoch: this.s.phaseStartEpoch + epochs, step: this.s.phaseStartStep + epochs * this.stepsPerEpoch };
    if (this.config.maxSteps !== null && this.lastPhase()) end.step = Math.min(end.step, this.config.maxSteps);
    return end;
  }

  /** Sets the trainable set, builds the phase's optimizer and schedule, and takes the audit snapshot. */
  private enterPhase(phase: number, atStep: number, atEpoch = this.src.cursor().epoch): void {
    const c = this.config;
    this.s.phase = phase;
    this.s.phaseStartStep = atStep;
    this.s.phaseStartEpoch = atEpoch;
    this.plan.apply(phase, 0);
    const p = this.plan.phases[phase];
    const o = c.optimizer;
    const lr = o.lr * p.lrFactor;
    const groups = paramGroups(
      this.model,
      this.plan.optimizerModules(phase),
      { lr, weightDecay: o.weightDecay, layerwiseLrDecay: o.layerwiseLrDecay, groups: o.groups },
      this.plan.layout,
    );
    if (o.name === "sgd")
      this.optimizer = new SGD(groups, {
        lr,
        momentum: o.momentum,
        nesterov: o.nesterov,
        weightDecay: o.weightDecay,
      }) as unknown as Optimizer<BaseHyper>;
    else {
      const Ctor = o.name === "adam" ? Adam : AdamW;
      this.optimizer = new Ctor(groups, {
        lr,
        betas: o.betas,
        eps: o.eps,
        weightDecay: o.weightDecay,
      }) as unknown as Optimizer<BaseHyper>;
    }
    const total = Math.max(1, this.phaseEnd().step - atStep);
    const warm = c.schedule.warmupSteps ?? Math.ceil((c.schedule.warmupRatio ?? 0) * total);
    this.scheduler = getScheduler(c.schedule.name, this.optimizer, { numWarmupSteps: warm, numTrainingSteps: total });
    this.phaseEs = p.earlyStopping ? new EarlyStopping(p.earlyStopping) : null;
    if (phase > 0 && this.lastPhase() && c.earlyStopping) {
      // The run's early stopping judges the final phase only, from a fresh start: an earlier
      // phase's best (say, head-only) is a different trainable set, and restoring it would put
      // back the head but leave the unfrozen blocks as the last step left them.
      this.es = new EarlyStopping(c.earlyStopping);
      this.best = null;
      this.s.bestDir = null;
    }
    this.audit = snapshotFrozen(this.model);
  }

  private async setupData(): Promise<void> {
    const c = this.config;
    const o = this.options;
    const spec = o.train as { transform?: { augment?: unknown }; mix?: unknown };
    const noAug = spec.transform !== undefined && "dataset" in spec && !spec.transform.augment && !spec.mix;
    if (c.strategy.name === "head" && c.strategy.cacheFeatures !== false && isSeparable(this.model) && noAug) {
      // Head-only on a frozen backbone without augmentation: features once, then only the head runs.
      const tr = await computeFeatures(this.model, evalSource(o.train, { batchSize: c.evalBatchSize }));
      // Same batches as the image loader would give: its epoch order over the cached rows.
      const img = o.train as ImageDataSpec;
      const ref = new ImageLoader(img.dataset, {
        transform: img.transform,
        batchSize: c.batchSize,
        seed: c.seed,
        workers: 0,
      });
      const fs = new FeatureSource(tr.features, tr.dim, tr.labels, c.batchSize, c.seed, true, (e) => ref.epochOrder(e));
      this.src = fs;
      if (o.eval) {
        const images = evalSource(o.eval, { batchSize: c.evalBatchSize });
        const ev = await computeFeatures(this.model, images);
        const cached = new FeatureSource(ev.features, ev.dim, ev.labels, c.evalBatchSize, c.seed, false).evalSource();
        // Rows keep their dataset order, so the mistakes still show their images.
        this.evalSrc = { ...cached, describe: images.describe };
      }
      return;
    }
    this.src = trainSource(o.train, { batchSize: c.batchSize, seed: c.seed });
    if (o.eval) this.evalSrc = evalSource(o.eval, { batchSize: c.evalBatchSize });
  }

  /** The loop. Returns a halt reason, or null. */
  private async loop(ckptRoot: string | null): Promise<string | null> {
    const c = this.config;
    let windowStart = performance.now();
    let windowUnits = 0;
    while (!this.stopRequested) {
      const end = this.phaseEnd();
      if (this.s.step >= end.step || this.src.cursor().epoch >= end.epoch) {
        if (this.lastPhase()) break;
        this.enterPhase(this.s.phase + 1, this.s.step);
        continue;
      }
      const micro: TrainBatch[] = [];
      do micro.push(await this.src.next());
      while (micro.length < c.gradAccumulation && this.src.cursor().position !== 0);
      const lr = this.optimizer.paramGroups[0].lr;
      const { loss, ok } =
        this.options.stepScope === false
          ? this.trainStep(micro)
          : stepScope(() => this.trainStep(micro), {
              keep: [this.model, this.optimizer, this.scheduler, this.audit, this.best],
              releaseActivations: true, // trainStep reads nothing of the graph after backward
            });
      this.s.step++;
      for (const b of micro) {
        this.timing.samples += b.numSamples;
        this.timing.tokens += b.numTokens;
        windowUnits += c.task === "causal-lm" ? b.numTokens : b.numSamples;
      }
      if (!ok) {
        this.s.skippedSteps++;
        this.s.consecutiveSkips++;
        if (c.nonFinite.policy === "halt" || this.s.consecutiveSkips >= c.nonFinite.maxConsecutive)
          return `non-finite loss or gradient at step ${this.s.step} (${this.s.consecutiveSkips} consecutive skipped step(s), policy ${c.nonFinite.policy})`;
      } else this.s.consecutiveSkips = 0;
      this.s.lossWindow.push(loss);
      if (this.s.step % c.logEvery === 0 || this.s.step === end.step) this.logTrain(lr);
      const now = performance.now();
      for (const l of this.loggers)
        l.progress?.({
          step: this.s.step,
          totalSteps: this.plannedSteps(),
          loss,
          lr,
          throughput: windowUnits / Math.max(1e-9, (now - windowStart) / 1000),
          unit: c.task === "causal-lm" ? "tokens/s" : "samples/s",
          elapsedMs: now - this.timing.start,
        });
      if (now - windowStart > 5000) [windowStart, windowUnits] = [now, 0];
      for (const cb of this.callbacks)
        if (
          (await cb.onStepEnd?.({
            step: this.s.step,
            epoch: this.epochF(),
            phase: this.s.phase,
            loss,
            lr,
            skipped: !ok,
          })) === "stop"
        )
          this.stopRequested = true;
      let isBest = false;
      if (c.evalEvery && this.s.step % c.evalEvery === 0) isBest = (await this.runEval()) || isBest;
      const epochDone = this.src.cursor().position === 0;
      if (epochDone) isBest = (await this.endEpoch()) || isBest;
      if (ckptRoot) await this.maybeCheckpoint(ckptRoot, epochDone, isBest);
    }
    return null;
  }

  /** Forward/backward over the micro-batches, then clip and step unless something is non-finite. */
  private trainStep(micro: TrainBatch[]): { loss: number; ok: boolean } {
    const total = micro.reduce((a, b) => a + b.numTargets, 0);
    this.setModes();
    let sum = 0;
    let ok = total > 0;
    for (const b of micro) {
      const out = forwardBatch(this.model, b);
      if (!out.loss) throw new ValueError("the model returned no loss: the batch needs labels");
      const l = out.loss.item();
      sum += l * b.numTargets;
      if (!Number.isFinite(l)) ok = false;
      // Mean loss x (targets / total) = this micro-batch's summed loss over the big batch's count.
      if (ok && out.loss.requiresGrad) backward(mul(out.loss, b.numTargets / total));
    }
    const params = this.optimizer.paramGroups.flatMap((g) => g.params);
    if (ok) {
      const max = this.config.clipGradNorm;
      const norm = max ? clipGradNorm(params, max) : globalNorm(params.flatMap((p) => (p.grad ? [p.grad] : [])));
      ok = Number.isFinite(norm);
    }
    if (ok) {
      this.optimizer.step();
      if (this.audit) {
        this.audit.verify(this.model); // throws FreezeViolationError naming the tensor
        this.audit = null;
        this.auditVerified = true;
      }
      this.scheduler.step();
    }
    this.optimizer.zeroGrad();
    return { loss: sum / Math.max(1, total), ok };
  }

  /** Train mode; for head-only training the frozen backbone runs in inference mode (Keras `training=False`). */
  private setModes(): void {
    if (!this.plan.backboneEval(this.s.phase)) {
      this.model.train();
      return;
    }
    this.model.eval();
    const mods = new Map(this.model.namedModules());
    for (const h of this.plan.layout.head) mods.get(h)?.train();
  }

  private epochF(): number {
    const cur = this.src.cursor();
    return cur.epoch + cur.position / this.src.batchesPerEpoch;
  }

  private plannedSteps(): number {
    let steps = this.phaseEnd().step;
    for (let p = this.s.phase + 1; p < this.plan.phases.length; p++)
      steps +=
        (p === this.plan.phases.length - 1 ? this.config.epochs : (this.plan.phases[p].epochs ?? 1)) *
        this.stepsPerEpoch;
    return this.config.maxSteps ?? steps;
  }

  private emit(row: MetricRow): void {
    this.rows.push(row);
    for (const l of this.loggers) l.log(row);
  }

  private logTrain(lr: number): void {
    const w = this.s.lossWindow;
    const loss = w.reduce((a, b) => a + b, 0) / w.length;
    const row: MetricRow = {
      step: this.s.step,
      epoch: this.epochF(),
      split: "train",
      loss,
      lr,
      skippedSteps: this.s.skippedSteps,
    };
    if (this.plan.phases.length > 1) row.phase = this.s.phase;
    this.s.lossWindow = [];
    this.emit(row);
  }

  /** Evaluates, logs, updates early stopping; returns true when this is the best evaluation so far. */
  private async runEval(): Promise<boolean> {
    if (!this.evalSrc || this.s.lastEvalStep === this.s.step) return false;
    this.s.lastEvalStep = this.s.step;
    this.lastEval = await evaluate(this.model, this.evalSrc, this.config.task);
    const row: MetricRow = { step: this.s.step, epoch: this.epochF(), split: "eval", ...this.lastEval.metrics };
    if (this.plan.phases.length > 1) row.phase = this.s.phase;
    this.emit(row);
    for (const cb of this.callbacks) if ((await cb.onEvaluate?.(row)) === "stop") this.stopRequested = true;
    const m = this.lastEval.metrics;
    if (this.phaseEs && !this.lastPhase()) {
      const v = m[this.phaseEs.metric];
      if (v !== undefined && this.phaseEs.update(v, this.s.step).stop) this.enterPhase(this.s.phase + 1, this.s.step);
      return false;
    }
    if (!this.es || !this.lastPhase()) return false;
    const v = m[this.es.metric];
    if (v === undefined)
      throw new ValueError(
        `earlyStopping.metric '${this.es.metric}' is not an eval metric (${Object.keys(m).join(", ")})`,
      );
    const { improved, stop } = this.es.update(v, this.s.step);
    if (stop) this.stopRequested = true;
    if (improved && this.es.restoreBest && !this.options.runDir) this.best = this.trainableState();
    return improved;
  }

  /** Epoch end: evaluation, callbacks, gradual unfreezing. */
  private async endEpoch(): Promise<boolean> {
    const best = this.config.evalEachEpoch ? await this.runEval() : false;
    const epoch = this.src.cursor().epoch - 1;
    for (const cb of this.callbacks) await cb.onEpochEnd?.(epoch);
    if (this.plan.config.unfreezeEvery) {
      const before = this.model.numParameters({ trainable: true });
      this.plan.apply(this.s.phase, this.src.cursor().epoch - this.s.phaseStartEpoch);
      if (this.model.numParameters({ trainable: true }) !== before) this.audit = snapshotFrozen(this.model);
    }
    return best;
  }

  /** The tensors a checkpoint needs: trainable parameters (the only ones that change) and buffers. */
  private trainableState(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [n, p] of this.model.namedParameters()) if (p.requiresGrad) out.set(n, copy(p));
    for (const [n, b] of this.model.namedBuffers()) if (b.persistent) out.set(n, copy(b.value));
    return out;
  }

  private async maybeCheckpoint(root: string, epochDone: boolean, isBest: boolean): Promise<void> {
    const k = this.config.checkpoint;
    const due = (k.every > 0 && this.s.step % k.every === 0) || (k.everyEpoch && epochDone);
    const keepBest = isBest && this.es?.restoreBest !== false && this.es !== null && k.keepBest;
    if (!due && !keepBest) return;
    const state = this.trainableState();
    for (const [n, t] of state) {
      const v = t.toFloat64Array();
      for (let i = 0; i < v.length; i++)
        if (!Number.isFinite(v[i])) {
          process.emitWarning(`checkpoint at step ${this.s.step} skipped: ${n} is not finite`);
          return;
        }
    }
    const dir = join(root, checkpointName(this.s.step));
    if (keepBest) this.s.bestDir = dir;
    const trainer = {
      version: 1,
      configHash: configHash(this.config),
      ...this.s,
      scheduler: this.scheduler.stateDict(),
      rng: { default: defaultGenerator.getState(), lora: this.config.strategy.lora?.generator?.getState() ?? null },
      data: this.src.state(),
      es: this.es?.state() ?? null,
      phaseEs: this.phaseEs?.state() ?? null,
      metricsLines: this.rows.length,
      auditVerified: this.auditVerified,
    };
    await saveCheckpoint(dir, { model: state, optimizer: this.optimizer.stateDict(), trainer });
    await pruneCheckpoints(root, k.keepLast, new Set(this.s.bestDir ? [this.s.bestDir] : []));
  }

  /** Puts the loop back where a checkpoint left it. */
  private async restore(dir: string): Promise<void> {
    const ck = await loadCheckpoint(dir);
    const st = ck.trainer as unknown as SavedState;
    if (st.configHash !== configHash(this.config))
      throw new ValueError(
        `resume: ${dir} was written with another config (hash ${st.configHash}, now ${configHash(this.config)})`,
      );
    await this.src.restore(st.data);
    // Rebuild the phase as it was entered, then advance the trainable set to the saved epoch.
    this.enterPhase(st.phase, st.phaseStartStep, st.phaseStartEpoch);
    this.plan.apply(st.phase, this.src.cursor().epoch - st.phaseStartEpoch);
    this.model.loadStateDict(ck.model, { strict: false });
    this.optimizer.loadStateDict(ck.optimizer);
    this.scheduler.loadStateDict(st.scheduler);
    defaultGenerator.setState(st.rng.default);
    if (st.rng.lora) this.config.strategy.lora?.generator?.setState(st.rng.lora);
    if (st.es && this.es) this.es.load(st.es);
    if (st.phaseEs && this.phaseEs) this.phaseEs.load(st.phaseEs);
    for (const k of Object.keys(this.s) as (keyof LoopState)[])
      (this.s as unknown as Record<string, unknown>)[k] = st[k];
    this.auditVerified = st.auditVerified;
    this.audit = snapshotFrozen(this.model);
    this.rows = this.options.runDir ? readRows(join(this.options.runDir, "metrics.jsonl"), st.metricsLines) : [];
  }

  private timingRecord() {
    const secs = (performance.now() - this.timing.start) / 1000;
    return {
      totalSeconds: secs,
      stepsPerSecond: this.s.step / Math.max(1e-9, secs),
      samplesPerSecond: this.timing.samples / Math.max(1e-9, secs),
      ...(this.config.task === "causal-lm" ? { tokensPerSecond: this.timing.tokens / Math.max(1e-9, secs) } : {}),
      dataWaitSeconds: this.src.waitMs / 1000,
    };
  }

  /** Rows logged so far. */
  get metrics(): readonly MetricRow[] {
    return this.rows;
  }

  /** The loop's step counter. */
  get step(): number {
    return this.s.step;
  }
}

/** A contiguous copy with the same dtype and bits. */
function copy(t: Tensor): Tensor {
  if (t.isContiguous()) return new Tensor(t.data.slice(t.offset, t.offset + t.size), t.dtype, [...t.shape]);
  return new Tensor(Float32Array.from(t.toFloat64Array()), "float32", [...t.shape]);
}
