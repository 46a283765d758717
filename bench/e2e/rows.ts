/**
 * The end-to-end benchmark suite as data: one `RowSpec` per table row, in a full and a quick size.
 * Both workers (`tunekit-worker.ts`, `torch_worker.py`) receive the same spec as JSON and build the
 * same architecture, shapes, dtype (float32) and optimiser (AdamW) from it.
 */

export type RowKind = "lm-lora" | "seqcls-full" | "image-full" | "image-head-cache" | "generate";

export interface RowSpec {
  /** Short id for `--rows`. */
  id: string;
  /** What the table prints. */
  title: string;
  kind: RowKind;
  /** HF `model_type` (or torchvision architecture name). */
  model: "gpt2" | "llama" | "distilbert" | "resnet18" | "mobilenet_v2";
  /** HF-style config.json object (torchvision-style for the CNNs). */
  config: Record<string, unknown>;
  /** Batch size (training rows, head epoch); 1 for generation. */
  batch: number;
  /** Tokens per sequence (text rows) or prompt length (generation). */
  seq?: number;
  /** Image side (CNN rows). */
  image?: number;
  lora?: { targets: string[] | "all-linear"; rank: number; alpha: number };
  /** Head-only row: images per epoch and the backbone batch for the feature pass. */
  images?: number;
  featureBatch?: number;
  /** Generation row: new tokens per repetition. */
  newTokens?: number;
  /** Unit of the throughput column and how many units one step (or one repetition) produces. */
  unit: "tokens/s" | "samples/s" | "images/s";
  /** Training steps per timed repetition (1 for the epoch and generation rows: one repetition is the unit of work). */
  stepsPerRep: number;
  /** Untimed steps (or repetitions) first. */
  warmup: number;
  /** Timed repetitions per side (alternating tunekit / torch). */
  reps: number;
  /** What the quick size changed, printed in the table. */
  note?: string;
}

const GPT2 = {
  model_type: "gpt2",
  vocab_size: 50257,
  n_positions: 1024,
  n_embd: 768,
  n_layer: 12,
  n_head: 12,
  activation_function: "gelu_new",
  layer_norm_epsilon: 1e-5,
  tie_word_embeddings: true,
  // torch_worker.py's GPT-2 has no dropout; tunekit's applies attn/resid/embd dropout in train mode
  // since 0032bc0 (which also sent attention down the unfused path), so switch it off here.
  attn_pdrop: 0,
  resid_pdrop: 0,
  embd_pdrop: 0,
};

/** SmolLM2-135M's config.json (the fields that shape the compute). */
const SMOLLM2_135M = {
  model_type: "llama",
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  max_position_embeddings: 8192,
  rope_theta: 100000,
  rms_norm_eps: 1e-5,
  hidden_act: "silu",
  tie_word_embeddings: true,
};

const DISTILBERT = {
  model_type: "distilbert",
  vocab_size: 30522,
  max_position_embeddings: 512,
  n_layers: 6,
  n_heads: 12,
  dim: 768,
  hidden_dim: 3072,
  dropout: 0.1,
  attention_dropout: 0.1,
  seq_classif_dropout: 0.2,
  activation: "gelu",
  num_labels: 2,
  pad_token_id: 0,
};

/** The suite at full size (issue 8's shapes). Steps/reps are sized so the suite fits 15 minutes on 2 cores. */
export function fullRows(): RowSpec[] {
  return [
    {
      id: "gpt2-lora",
      title: "GPT-2 124M LoRA r=8 c_attn, 4x256, AdamW",
      kind: "lm-lora",
      model: "gpt2",
      config: GPT2,
      batch: 4,
      seq: 256,
      lora: { targets: ["c_attn"], rank: 8, alpha: 16 },
      unit: "tokens/s",
      stepsPerRep: 1,
      warmup: 1,
      reps: 4,
    },
    {
      id: "distilbert-full",
      title: "DistilBERT 66M full FT seq-cls, 16x128, AdamW",
      kind: "seqcls-full",
      model: "distilbert",
      config: DISTILBERT,
      batch: 16,
      seq: 128,
      unit: "samples/s",
      stepsPerRep: 1,
      warmup: 1,
      reps: 4,
    },
    {
      id: "resnet18-full",
      title: "ResNet-18 full FT 224x224, batch 16, AdamW",
      kind: "image-full",
      model: "resnet18",
      config: { architecture: "resnet18", num_classes: 10 },
      batch: 16,
      image: 224,
      unit: "images/s",
      stepsPerRep: 2,
      warmup: 1,
      reps: 4,
    },
    {
      id: "mobilenetv2-full",
      title: "MobileNetV2 full FT 224x224, batch 16, AdamW",
      kind: "image-full",
      model: "mobilenet_v2",
      config: { architecture: "mobilenet_v2", num_classes: 10 },
      batch: 16,
      image: 224,
      unit: "images/s",
      stepsPerRep: 2,
      warmup: 1,
      reps: 4,
    },
    {
      id: "resnet18-head",
      title: "ResNet-18 head-only, feature cache, 1,000-image epoch",
      kind: "image-head-cache",
      model: "resnet18",
      config: { architecture: "resnet18", num_classes: 10 },
      batch: 16,
      image: 224,
      images: 1000,
      featureBatch: 50,
      unit: "images/s",
      stepsPerRep: 1,
      warmup: 0,
      // One rep is a whole 1,000-image epoch (~80 s a side on 2 cores): 3 reps were 8 of the suite's 20 minutes.
      reps: 2,
    },
    {
      id: "smollm-lora",
      title: "Llama 135M (SmolLM2) LoRA r=16 all-linear, 4x512, AdamW",
      kind: "lm-lora",
      model: "llama",
      config: SMOLLM2_135M,
      batch: 4,
      seq: 512,
      lora: { targets: "all-linear", rank: 16, alpha: 32 },
      unit: "tokens/s",
      stepsPerRep: 1,
      warmup: 1,
      reps: 3,
    },
    {
      id: "gpt2-generate",
      title: "GPT-2 124M generation, KV cache, batch 1 (16-token prompt)",
      kind: "generate",
      model: "gpt2",
      config: GPT2,
      batch: 1,
      seq: 16,
      newTokens: 64,
      unit: "tokens/s",
      stepsPerRep: 1,
      warmup: 1,
      reps: 4,
    },
  ];
}

/**
 * The quick size (< 2 minutes): same architectures and widths, fewer layers / smaller batches,
 * 2 repetitions. Every changed row says what changed in its `note`.
 */
export function quickRows(): RowSpec[] {
  const q = (r: RowSpec, patch: Partial<RowSpec>): RowSpec => ({ ...r, warmup: 1, reps: 2, stepsPerRep: 1, ...patch });
  const [gpt2, bert, resnet, mbv2, head, llama, gen] = fullRows();
  return [
    q(gpt2, { config: { ...GPT2, n_layer: 2 }, batch: 2, seq: 128, note: "2 of 12 layers, 2x128" }),
    q(bert, { config: { ...DISTILBERT, n_layers: 2 }, batch: 8, seq: 128, note: "2 of 6 layers, 8x128" }),
    q(resnet, { batch: 4, note: "batch 4" }),
    q(mbv2, { batch: 4, note: "batch 4" }),
    q(head, { images: 100, featureBatch: 25, reps: 2, warmup: 0, note: "100 images" }),
    q(llama, { config: { ...SMOLLM2_135M, num_hidden_layers: 4 }, batch: 1, seq: 256, note: "4 of 30 layers, 1x256" }),
    q(gen, { config: { ...GPT2, n_layer: 4 }, newTokens: 16, note: "4 of 12 layers, 16 tokens" }),
  ];
}

/** Units of work one repetition produces (what the throughput divides by time). */
export function unitsPerRep(r: RowSpec): number {
  if (r.kind === "generate") return r.newTokens ?? 0;
  if (r.kind === "image-head-cache") return r.images ?? 0;
  const perStep = r.unit === "tokens/s" ? r.batch * (r.seq ?? 0) : r.batch;
  return perStep * r.stepsPerRep;
}
