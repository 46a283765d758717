/** `tunekit/optim`: optimisers, parameter groups, LR schedules, gradient clipping. */
export * from "./optimizer.ts";
export * from "./sgd.ts";
export * from "./adam.ts";
export * from "./schedule.ts";
export * from "./clip.ts";
