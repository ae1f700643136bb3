// Time to a verified page in headless Chromium, for the benchmark (xinlian-bench's
// provenance figure): each run a fresh browser context (no cache), from navigation to
// the verdict shown, and the page's own figure for fetching and verifying.
//   node page-time.mjs URL RUNS   → {"total_ms": [...], "in_page_ms": [...], "verdicts": [...]}

import { chromium } from "playwright-core";

const [url, runsText] = process.argv.slice(2);
const runs = Number(runsText ?? "10");
if (!url || !Number.isInteger(runs) || runs < 1) throw new Error("usage: page-time.mjs URL RUNS");
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const out = { total_ms: [] as number[], in_page_ms: [] as number[], verdicts: [] as string[] };
try {
  for (let i = 0; i < runs; i++) {
    const context = await browser.newContext({ viewport: { width: 390, height: 900 } });
    const page = await context.newPage();
    const t0 = performance.now();
    await page.goto(url);
    await page.waitForSelector("[data-verdict]", { timeout: 120_000 });
    out.total_ms.push(performance.now() - t0);
    out.verdicts.push((await page.locator("[data-verdict]").first().getAttribute("data-verdict")) ?? "");
    out.in_page_ms.push(Number((await page.locator("main").getAttribute("data-verified-ms")) ?? "NaN"));
    await context.close();
  }
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out) + "\n");
