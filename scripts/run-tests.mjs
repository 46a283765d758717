#!/usr/bin/env node
// Runs every test/**/*.test.ts through node's test runner. Node 20 does not expand globs, so the
// file list is built here. `--all-isa` repeats the suite once per native ISA path (TUNEKIT_ISA).
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const args = process.argv.slice(2);
const allIsa = args.includes("--all-isa");
const filters = args.filter((a) => !a.startsWith("--"));
let files = find("test");
if (filters.length) files = files.filter((f) => filters.some((s) => f.includes(s)));
const runs = allIsa ? ["avx512", "avx2", "generic"] : [process.env.TUNEKIT_ISA ?? ""];
let status = 0;
for (const isa of runs) {
  const env = { ...process.env };
  if (isa) env.TUNEKIT_ISA = isa;
  if (allIsa) console.log(`# TUNEKIT_ISA=${isa}`);
  const r = spawnSync(process.execPath, ["--import", "tsx", "--test", "--test-concurrency=2", ...files], { stdio: "inherit", env });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);
