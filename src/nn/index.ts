/** `tunekit/nn`: the Module base, layers and initialisers. */
export * from "./module.ts";
export * from "./init.ts";
export * from "./layers.ts";
export * from "./norm.ts";
export * from "./attention.ts";
