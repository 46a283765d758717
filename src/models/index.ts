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
