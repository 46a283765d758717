/**
 * Qwen2 (`model_type: "qwen2"`), after HF `modeling_qwen2.py`: a Llama with biases on q/k/v (not on
 * o_proj, not in the MLP), defaults from `Qwen2Config`. Sliding-window attention (off unless
 * `use_sliding_window`) is refused when enabled, since HF applies it per layer above
 * `max_window_layers` and we have not implemented that rule.
 *
 * @example
 * ```ts
 * const model = await loadPretrained("hf:Qwen/Qwen2.5-0.5B");   // Qwen2ForCausalLM
 * ```
 */
import { ConfigError, type ConfigSource, getBool } from "../formats/hf-config.ts";
import { type LlamaFamily, llamaFamilyArchitecture } from "./llama.ts";
import { registerArchitecture } from "./registry.ts";

export const QWEN2: LlamaFamily = {
  modelType: "qwen2",
  classPrefix: "Qwen2",
  defaults: {
    vocab_size: 151936,
    hidden_size: 4096,
    intermediate_size: 22016,
    num_hidden_layers: 32,
    num_attention_heads: 32,
    max_position_embeddings: 32768,
    rms_norm_eps: 1e-6,
  },
  qkvBias: true,
  slidingWindow(src: ConfigSource) {
    if (getBool(src, "use_sliding_window", false)) {
      throw new ConfigError(
        src.file,
        "use_sliding_window",
        "bad_value",
        "Qwen2 sliding-window attention is not supported; set it to false (the released Qwen2/2.5 models do)",
      );
    }
    return null;
  },
};

registerArchitecture(llamaFamilyArchitecture(QWEN2));
