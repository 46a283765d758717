#!/usr/bin/env node
// `npm install` builds the C++ addon with npm's bundled node-gyp. A failed build must not fail the
// install: tunekit then runs on the reference backend and says why once (src/backend/native.ts).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

if (!existsSync("binding.gyp")) process.exit(0);
let gyp;
try {
  const npmDir = dirname(createRequire(import.meta.url).resolve("npm/package.json", { paths: [dirname(process.execPath) + "/../lib/node_modules"] }));
  gyp = join(npmDir, "node_modules/node-gyp/bin/node-gyp.js");
} catch {
  gyp = process.env.npm_config_node_gyp;
}
const cmd = gyp && existsSync(gyp) ? [process.execPath, [gyp, "rebuild"]] : ["node-gyp", ["rebuild"]];
const r = spawnSync(cmd[0], cmd[1], { stdio: ["ignore", "inherit", "pipe"], encoding: "utf8" });
if (r.status !== 0) {
  const why = (r.stderr || String(r.error ?? "unknown error")).trim().split("\n").slice(-8).join("\n");
  process.stderr.write(r.stderr ?? "");
  mkdirSync("build", { recursive: true });
  writeFileSync("build/native-build-error.txt", why + "\n");
  console.warn("tunekit: the native backend failed to build; tunekit will run on the slower reference backend.\n" + why);
}
process.exit(0);
