/**
 * The report in a real browser: headless Chromium (Debian's package, installed here if missing)
 * renders each fixture report; we check the rendered DOM has the charts and tables and that the
 * screenshot is a real picture with the chart colours in it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { writeReport } from "../../src/report/html.ts";
import { ensureChromium, runChromium } from "./chromium.ts";
import { imageRun, lmRun, textRun } from "./fixture.ts";
import { decodePng, type RawImage } from "./png.ts";

const dir = mkdtempSync(join(tmpdir(), "tunekit-browser-"));
let chromium: string | undefined;
let skip: string | false = false;

before(() => {
  const c = ensureChromium();
  if ("path" in c) chromium = c.path;
  else {
    skip = `skipped: ${c.reason}`;
    console.log(`# browser test ${skip}`);
  }
});
after(() => rmSync(dir, { recursive: true, force: true }));

function count(html: string, re: RegExp): number {
  return (html.match(re) ?? []).length;
}

/** Number of pixels within `tol` of an RGB colour, and the number of distinct colours. */
function pixelStats(img: RawImage, rgb: [number, number, number], tol = 12): { near: number; distinct: number } {
  let near = 0;
  const seen = new Set<number>();
  for (let i = 0; i < img.data.length; i += 4) {
    const [r, g, b] = [img.data[i], img.data[i + 1], img.data[i + 2]];
    if (seen.size < 100_000) seen.add((r << 16) | (g << 8) | b);
    if (Math.abs(r - rgb[0]) <= tol && Math.abs(g - rgb[1]) <= tol && Math.abs(b - rgb[2]) <= tol) near++;
  }
  return { near, distinct: seen.size };
}

function pixel(img: RawImage, x: number, y: number): number[] {
  const i = (y * img.width + x) * 4;
  return [img.data[i], img.data[i + 1], img.data[i + 2]];
}

describe("report in headless Chromium", { timeout: 15 * 60_000 }, () => {
  test("the rendered DOM has the charts, tables, images and escaped text", async (t) => {
    if (skip || !chromium) return t.skip(String(skip));
    const img = await writeReport(join(dir, "images"), imageRun());
    const dom = runChromium(chromium, img, ["--dump-dom"]);
    assert.equal(count(dom, /<svg /g), 6, "loss, lr, accuracy, F1, baselines bars, class counts");
    assert.equal(count(dom, /<path [^>]*data-series=/g), 6);
    assert.ok(count(dom, /<rect /g) >= 7, "bars");
    assert.equal(count(dom, /<table /g), 4, "baselines, confusion matrix, per-class, freeze audit");
    assert.equal(count(dom, /<img [^>]*src="data:image\/png;base64,/g), 12);
    for (const id of ["baselines", "curves", "confusion", "mistakes", "freeze", "dataset", "timing", "config"]) {
      assert.match(dom, new RegExp(`<section id="${id}">`));
    }

    const text = await writeReport(join(dir, "text"), textRun());
    const tdom = runChromium(chromium, text, ["--dump-dom"]);
    assert.doesNotMatch(tdom, /<script/i, "no script element came out of the data");
    assert.match(tdom, /<h1>spam filter &lt;script&gt;alert\('title'\)&lt;\/script&gt;<\/h1>/);
    assert.match(tdom, /<blockquote[^>]*>&lt;script&gt;alert\("xss"\)&lt;\/script&gt;/);
    assert.equal(count(tdom, /<img /g), 0);

    const lm = await writeReport(join(dir, "lm"), lmRun());
    const ldom = runChromium(chromium, lm, ["--dump-dom"]);
    assert.equal(count(ldom, /<pre class="gen">/g), 4);
    assert.match(ldom, /<pre class="gen">&lt;\/pre&gt;&lt;script&gt;alert\(2\)&lt;\/script&gt;<\/pre>/);
  });

  test("the screenshot is a real picture with the chart and heat-map colours", async (t) => {
    if (skip || !chromium) return t.skip(String(skip));
    const report = await writeReport(join(dir, "shot"), imageRun());
    const png = join(dir, "shot.png");
    runChromium(chromium, report, ["--window-size=1200,3000", `--screenshot=${png}`]);
    assert.ok(statSync(png).size > 50_000, `screenshot only ${statSync(png).size} bytes`);
    const img = decodePng(readFileSync(png));
    assert.deepEqual([img.width, img.height], [1200, 3000]);
    const blue = pixelStats(img, [37, 99, 235]);
    assert.ok(blue.distinct > 200, `only ${blue.distinct} colours: blank page?`);
    assert.ok(blue.near > 2000, `only ${blue.near} pixels of the train/ours blue (charts, bars, diagonal)`);
    assert.ok(pixelStats(img, [234, 88, 12]).near > 300, "eval series orange");
    assert.deepEqual(pixel(img, 3, 3), [246, 247, 249], "light background");
  });

  test("dark mode and print render too", async (t) => {
    if (skip || !chromium) return t.skip(String(skip));
    const report = await writeReport(join(dir, "dark"), lmRun());
    const png = join(dir, "dark.png");
    runChromium(chromium, report, [
      "--force-dark-mode",
      "--blink-settings=preferredColorScheme=0",
      "--window-size=1000,1200",
      `--screenshot=${png}`,
    ]);
    const img = decodePng(readFileSync(png));
    assert.deepEqual(pixel(img, 3, 3), [11, 17, 32], "dark background (#0b1120)");
    assert.ok(pixelStats(img, [96, 165, 250]).near > 500, "dark-mode chart blue");
    const pdf = join(dir, "report.pdf");
    runChromium(chromium, report, ["--no-pdf-header-footer", `--print-to-pdf=${pdf}`]);
    const bytes = readFileSync(pdf);
    assert.equal(bytes.subarray(0, 5).toString(), "%PDF-");
    assert.ok(bytes.length > 20_000, `pdf only ${bytes.length} bytes`);
  });
});
