/** Imports every architecture so it registers itself; re-exports the registry. */
export * from "./registry.ts";
import "./bert.ts";
import "./gpt2.ts";
import "./llama.ts";
import "./qwen2.ts";
import "./mistral.ts";
import "./distilbert.ts";
import "./roberta.ts";
import "./mobilenet_v2.ts";
import "./resnet.ts";
import "./vit.ts";
export { loadPretrained, saveModel, taskFromConfig } from "./pretrained.ts";
export type { LoadOptions, LoadReport, LoadedModel, SaveOptions } from "./pretrained.ts";
export { generate } from "./generate.ts";
