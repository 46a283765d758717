/** `tunekit/optim`: optimisers, parameter groups, LR schedules, gradient clipping. */

export * from "./adam.ts";
export * from "./clip.ts";
export * from "./groups.ts";
export * from "./optimizer.ts";
export * from "./schedule.ts";
export * from "./sgd.ts";
