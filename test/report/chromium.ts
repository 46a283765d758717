/**
 * Headless Chromium for the report's browser test: find it, install Debian's `chromium` package
 * when it is missing (once, as root), and run it with the flags a container needs.
 */
import { spawnSync } from "node:child_process";
import { pathToFileURL } from "node:url";

const FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--disable-gpu",
  "--hide-scrollbars",
  "--no-first-run",
  "--disable-dev-shm-usage",
];

function which(name: string): string | null {
  const r = spawnSync("sh", ["-c", 'command -v "$1"', "sh", name], { encoding: "utf8" });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** Path of a Chromium binary (`$CHROMIUM`, `chromium`, `chromium-browser`, `google-chrome`), or null. */
export function findChromium(): string | null {
  for (const n of [process.env.CHROMIUM, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
    if (n && which(n)) return which(n);
  }
  return null;
}

/**
 * Finds Chromium, installing Debian's package when it is missing (takes a minute or two).
 * Returns the binary, or the reason it is unavailable.
 */
export function ensureChromium(): { path: string } | { reason: string } {
  const found = findChromium();
  if (found) return { path: found };
  if (process.getuid?.() !== 0)
    return { reason: "chromium is not installed and we are not root to apt-get install it" };
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const r = spawnSync("sh", ["-c", "apt-get update && apt-get install -y chromium"], {
    encoding: "utf8",
    env,
    timeout: 600_000,
  });
  const path = findChromium();
  if (path) return { path };
  return {
    reason: `apt-get install -y chromium failed (exit ${r.status ?? r.signal}): ${(r.stderr || r.stdout).trim().split("\n").slice(-3).join(" | ")}`,
  };
}

/** Runs Chromium headless on a local file with extra flags; throws with its stderr on failure. */
export function runChromium(bin: string, file: string, flags: string[], timeoutMs = 90_000): string {
  const r = spawnSync(bin, [...FLAGS, ...flags, pathToFileURL(file).href], {
    encoding: "utf8",
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) throw new Error(`chromium exited ${r.status ?? r.signal}: ${r.stderr}`);
  return r.stdout;
}
