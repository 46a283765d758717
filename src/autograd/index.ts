export { backward, grad, runBackward } from "./backward.ts";
export { checkpoint } from "./checkpoint.ts";
export { type ChainStep, forwardChain } from "./release.ts";
export { enableGrad, isGradEnabled, noGrad } from "./tape.ts";
export { valueAndGrad } from "./value-and-grad.ts";
