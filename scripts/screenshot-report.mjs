#!/usr/bin/env node
// Screenshots a report.html with headless Chromium so a person can look at it without a browser:
//   node scripts/screenshot-report.mjs <report.html> <out.png> [--width 1200] [--height 3000] [--dark]
// Needs Debian's `chromium` (apt-get install -y chromium) or CHROMIUM=/path/to/chrome.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

export function findChromium() {
  const names = [process.env.CHROMIUM, "chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];
  for (const n of names.filter(Boolean)) {
    const r = spawnSync("sh", ["-c", `command -v "${n}"`], { encoding: "utf8" });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

function main(argv) {
  const pos = argv.filter((a, i) => !a.startsWith("--") && !argv[i - 1]?.match(/^--(width|height)$/));
  const opt = (name, dflt) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : dflt;
  };
  if (pos.length !== 2) {
    console.error(
      "usage: node scripts/screenshot-report.mjs <report.html> <out.png> [--width 1200] [--height 3000] [--dark]",
    );
    return 2;
  }
  const [html, png] = pos.map((p) => resolve(p));
  if (!existsSync(html)) {
    console.error(`no such file: ${html}`);
    return 2;
  }
  const chromium = findChromium();
  if (!chromium) {
    console.error("chromium not found: apt-get install -y chromium (or set CHROMIUM=/path/to/chrome)");
    return 1;
  }
  const args = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-dev-shm-usage",
  ];
  if (argv.includes("--dark")) args.push("--force-dark-mode", "--blink-settings=preferredColorScheme=0");
  args.push(
    `--window-size=${opt("width", 1200)},${opt("height", 3000)}`,
    `--screenshot=${png}`,
    pathToFileURL(html).href,
  );
  const r = spawnSync(chromium, args, { encoding: "utf8", timeout: 120_000 });
  if (r.status !== 0 || !existsSync(png)) {
    console.error(`chromium failed (${r.status ?? r.signal}):\n${r.stderr}`);
    return 1;
  }
  console.log(png);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) process.exit(main(process.argv.slice(2)));
