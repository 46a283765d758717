/** `tunekit/nn`: the Module base, layers and initialisers. */

export * from "./attention.ts";
export * from "./init.ts";
export * from "./layers.ts";
export * from "./module.ts";
export * from "./norm.ts";
