/**
 * Peak resident memory of `loadPretrained` relative to the safetensors file it loads (issue 4:
 * under 1.3x for a 500M-parameter float32 file; a bf16 file loads without a float64 copy).
 *
 *   node --import tsx bench/load-memory.ts [--layers 40] [--dtype F32|BF16]
 *
 * Writes a random Llama checkpoint into a temp folder, then loads it in a fresh child process and
 * reports (peak RSS - RSS before loading) / file size.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const args = process.argv.slice(2);
const arg = (k: string, d: string) => (args.includes(k) ? args[args.indexOf(k) + 1] : d);

if (args[0] === "--child") {
  const { loadPretrained } = await import("../src/models/index.ts");
  const dir = args[1];
  const before = process.memoryUsage().rss;
  const m = await loadPretrained(dir, { onWarning: () => {}, dtype: "auto" });
  const peak = process.resourceUsage().maxRSS * 1024;
  const size = statSync(join(dir, "model.safetensors")).size;
  console.log(JSON.stringify({ params: m.numParameters(), fileMiB: size / 2 ** 20, peakOverBaseMiB: (peak - before) / 2 ** 20, ratio: (peak - before) / size }));
} else {
  const layers = Number(arg("--layers", "40"));
  const dtype = arg("--dtype", "F32");
  const dir = mkdtempSync(join(tmpdir(), "tk-loadmem-"));
  try {
    const { getArchitecture, saveModel } = await import("../src/models/index.ts");
    const { noInit } = await import("../src/nn/init.ts");
    const cfg = { model_type: "llama", hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: layers, num_attention_heads: 16, num_key_value_heads: 16, vocab_size: 32000, tie_word_embeddings: false, max_position_embeddings: 512 };
    const model = noInit(() => getArchitecture("llama").create(cfg, "causal-lm"));
    await saveModel(model, dir, dtype === "BF16" ? { dtype: "bfloat16" } : {});
    const r = spawnSync(process.execPath, ["--import", "tsx", "bench/load-memory.ts", "--child", dir], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(r.stderr);
    const res = JSON.parse(r.stdout.trim().split("\n").pop() ?? "{}");
    console.log(`| ${(res.params / 1e6).toFixed(0)}M params | ${dtype} | file ${res.fileMiB.toFixed(0)} MiB | peak RSS growth ${res.peakOverBaseMiB.toFixed(0)} MiB | ${res.ratio.toFixed(2)}x the file |`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
