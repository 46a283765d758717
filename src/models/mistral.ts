/**
 * Mistral (`model_type: "mistral"`), after HF `modeling_mistral.py`: a Llama (no biases, 8 KV
 * heads by default) with sliding-window attention: query i sees keys j with i - window < j <= i
 * (`sliding_window` null disables it). The window is applied as an extra additive mask.
 *
 * @example
 * ```ts
 * const model = await loadPretrained("./mistral-tiny");          // MistralForCausalLM
 * ```
 */
import { type ConfigSource, getNumber } from "../formats/hf-config.ts";
import { type LlamaFamily, llamaFamilyArchitecture } from "./llama.ts";
import { registerArchitecture } from "./registry.ts";

export const MISTRAL: LlamaFamily = {
  modelType: "mistral",
  classPrefix: "Mistral",
  defaults: {
    vocab_size: 32000,
    hidden_size: 4096,
    intermediate_size: 14336,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    max_position_embeddings: 4096 * 32,
    rms_norm_eps: 1e-6,
  },
  slidingWindow(src: ConfigSource) {
    if (src.raw.sliding_window === null) return null;
    return getNumber(src, "sliding_window", 4096, { min: 1, integer: true });
  },
};

registerArchitecture(llamaFamilyArchitecture(MISTRAL));
