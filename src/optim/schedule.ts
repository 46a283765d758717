/**
 * Learning-rate schedules: an `LRScheduler` sets each group's lr to its base lr times a multiplier
 * of the step (PyTorch `LambdaLR`), and the Hugging Face `get_*_schedule_with_warmup` multipliers.
 */
import { ValueError } from "../tensor/errors.ts";
import type { BaseHyper, Optimizer } from "./optimizer.ts";

/** step -> lr multiplier. */
export type LrLambda = (step: number) => number;

export interface SchedulerStateDict {
  lastEpoch: number;
  baseLrs: number[];
}

/**
 * Sets `group.lr = baseLr * lambda(step)`. Like PyTorch, construction applies step 0 (so the first
 * optimiser step uses lambda(0)); call `step()` after each `optimizer.step()`.
 * @example const sched = getCosineScheduleWithWarmup(opt, 100, 1000); ... opt.step(); sched.step();
 */
export class LRScheduler {
  /** Number of `step()` calls so far (PyTorch `last_epoch`): the step the current lr is for. */
  lastEpoch: number;
  readonly baseLrs: number[];
  private readonly lambdas: LrLambda[];

  constructor(
    readonly optimizer: Optimizer<BaseHyper>,
    lambda: LrLambda | LrLambda[],
    lastEpoch = -1,
  ) {
    const groups = optimizer.paramGroups;
    this.lambdas = Array.isArray(lambda) ? lambda : groups.map(() => lambda);
    if (this.lambdas.length !== groups.length)
      throw new ValueError(`LRScheduler: ${this.lambdas.length} lambdas for ${groups.length} parameter groups`);
    for (const g of groups) {
      // PyTorch: setdefault, so a second scheduler on the same optimizer keeps the original base lr.
      if (lastEpoch === -1) g.initialLr ??= g.lr;
      else if (g.initialLr === undefined)
        throw new ValueError("LRScheduler: resuming (lastEpoch != -1) needs initialLr on every group");
    }
    this.baseLrs = groups.map((g) => g.initialLr as number);
    this.lastEpoch = lastEpoch;
    this.step();
  }

  /** Advances one step and sets every group's lr. */
  step(): void {
    this.lastEpoch++;
    this.apply();
  }

  private apply(): void {
    this.optimizer.paramGroups.forEach((g, i) => {
      g.lr = this.baseLrs[i] * this.lambdas[i](this.lastEpoch);
    });
  }

  /** The lr of each group as last set. */
  getLastLr(): number[] {
    return this.optimizer.paramGroups.map((g) => g.lr);
  }

  stateDict(): SchedulerStateDict {
    return { lastEpoch: this.lastEpoch, baseLrs: [...this.baseLrs] };
  }

  /** Restores the position and base lrs, and sets the groups' lr for that step. */
  loadStateDict(sd: SchedulerStateDict): void {
    if (sd.baseLrs.length !== this.baseLrs.length)
      throw new ValueError(
        `LRScheduler.loadStateDict: ${sd.baseLrs.length} base lrs for ${this.baseLrs.length} groups`,
      );
    this.lastEpoch = sd.lastEpoch;
    this.baseLrs.splice(0, this.baseLrs.length, ...sd.baseLrs);
    this.optimizer.paramGroups.forEach((g, i) => {
      g.initialLr = sd.baseLrs[i];
    });
    this.apply();
  }
}

// ---- HF multipliers (transformers.optimization), same float expressions ------------------------

/** 1 throughout. */
export function constantLambda(): LrLambda {
  return () => 1;
}

/** Linear warmup from 0 over `warmup` steps, then 1. */
export function constantWithWarmupLambda(warmup: number): LrLambda {
  return (s) => (s < warmup ? s / Math.max(1, warmup) : 1);
}

/** Linear warmup, then linear decay to 0 at `total`. */
export function linearWithWarmupLambda(warmup: number, total: number): LrLambda {
  return (s) => (s < warmup ? s / Math.max(1, warmup) : Math.max(0, (total - s) / Math.max(1, total - warmup)));
}

/** Linear warmup, then cosine decay over `numCycles` cycles (0.5: one half-cosine to 0 at `total`). */
export function cosineWithWarmupLambda(warmup: number, total: number, numCycles = 0.5): LrLambda {
  return (s) => {
    if (s < warmup) return s / Math.max(1, warmup);
    const progress = (s - warmup) / Math.max(1, total - warmup);
    return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
  };
}

/** HF `get_constant_schedule`. */
export function getConstantSchedule(opt: Optimizer<BaseHyper>): LRScheduler {
  return new LRScheduler(opt, constantLambda());
}
/** HF `get_constant_schedule_with_warmup`. */
export function getConstantScheduleWithWarmup(opt: Optimizer<BaseHyper>, numWarmupSteps: number): LRScheduler {
  return new LRScheduler(opt, constantWithWarmupLambda(numWarmupSteps));
}
/** HF `get_linear_schedule_with_warmup`. */
export function getLinearScheduleWithWarmup(
  opt: Optimizer<BaseHyper>,
  numWarmupSteps: number,
  numTrainingSteps: number,
): LRScheduler {
  return new LRScheduler(opt, linearWithWarmupLambda(numWarmupSteps, numTrainingSteps));
}
/** HF `get_cosine_schedule_with_warmup`. */
export function getCosineScheduleWithWarmup(
  opt: Optimizer<BaseHyper>,
  numWarmupSteps: number,
  numTrainingSteps: number,
  numCycles = 0.5,
): LRScheduler {
  return new LRScheduler(opt, cosineWithWarmupLambda(numWarmupSteps, numTrainingSteps, numCycles));
}

export type SchedulerName = "constant" | "constant_with_warmup" | "linear" | "cosine";

/**
 * HF `get_scheduler` by name.
 * @example getScheduler("cosine", opt, { numWarmupSteps: 100, numTrainingSteps: 1000 })
 */
export function getScheduler(
  name: SchedulerName,
  opt: Optimizer<BaseHyper>,
  o: { numWarmupSteps?: number; numTrainingSteps?: number; numCycles?: number } = {},
): LRScheduler {
  const warm = o.numWarmupSteps ?? 0;
  const need = () => {
    if (o.numTrainingSteps === undefined) throw new ValueError(`getScheduler: "${name}" needs numTrainingSteps`);
    return o.numTrainingSteps;
  };
  switch (name) {
    case "constant":
      return getConstantSchedule(opt);
    case "constant_with_warmup":
      return getConstantScheduleWithWarmup(opt, warm);
    case "linear":
      return getLinearScheduleWithWarmup(opt, warm, need());
    case "cosine":
      return getCosineScheduleWithWarmup(opt, warm, need(), o.numCycles);
    default:
      throw new ValueError(
        `getScheduler: unknown schedule "${name as string}" (constant, constant_with_warmup, linear, cosine)`,
      );
  }
}
