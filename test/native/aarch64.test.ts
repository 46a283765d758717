// The portable (non-x86) build: scripts/check-aarch64.sh cross-compiles every native source for
// aarch64, links the addon, and runs the kernels under qemu-aarch64 against scalar references.
// Runs only where the cross compiler is already installed (this suite never installs packages),
// and once per suite run: the check does not depend on TUNEKIT_ISA.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";

const cxx = process.env.AARCH64_CXX ?? "aarch64-linux-gnu-g++";
const hasCxx = spawnSync("sh", ["-c", 'command -v "$1"', "sh", cxx]).status === 0;
const skip = !hasCxx
  ? `${cxx} is not installed (apt-get install g++-aarch64-linux-gnu qemu-user, or run scripts/check-aarch64.sh as root)`
  : process.env.TUNEKIT_ISA
    ? `the aarch64 build does not depend on TUNEKIT_ISA=${process.env.TUNEKIT_ISA}; it runs in the pass without it`
    : false;

test("native sources build for aarch64 and the portable kernels match scalar references under qemu", {
  skip,
  timeout: 600_000,
}, (t) => {
  const r = spawnSync("bash", ["scripts/check-aarch64.sh", "--no-install"], { encoding: "utf8" });
  const log = `${r.stdout}${r.stderr}`;
  if (r.status === 77) {
    t.skip(log.match(/SKIP: (.*)/)?.[1] ?? "aarch64 tools unavailable");
    return;
  }
  assert.equal(r.status, 0, log);
  assert.match(log, /isa generic/, "the ISA dispatch reports generic on aarch64");
  assert.match(log, /all kernel checks passed/);
});
