// The pages end to end in headless Chromium (Debian's, driven by playwright-core), for
// tests/tests/web_pages.rs, which starts the devnet and a proxy that alters answers.
//   node e2e.mjs CONFIG.json   → one JSON report on stdout
// Every page in both languages at a phone's and a desktop's width (screenshots in
// `out`), the recalled lot's page, the verify page with a bundle dropped on it (and a
// tampered one), the label's page opened as its QR code names it, and the batch and
// operator pages through the proxy with one byte of one answer changed, case by case.

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";

interface Config {
  base: string;
  proxy: string;
  out: string;
  recalled: string;
  food: string;
  enterprise: string;
  genesis: string;
  bundle: string;
  tampered_bundle: string;
  label_url: string;
  cases: { path: string; n: number; page: string }[];
}

const cfg = JSON.parse(readFileSync(process.argv[2]!, "utf8")) as Config;
const WIDTHS = { phone: 390, desktop: 1280 } as const;

async function open(browser: Browser, url: string, lang: "zh" | "en", width: number): Promise<Page> {
  const context = await browser.newContext({ viewport: { width, height: 900 }, locale: lang === "zh" ? "zh-CN" : "en-US" });
  const page = await context.newPage();
  page.on("pageerror", (e) => process.stderr.write(`page error at ${url}: ${e.message}\n`));
  await page.goto(url);
  return page;
}

async function settled(page: Page): Promise<void> {
  await page.waitForSelector("[data-verdict], form.lookup, #drop", { timeout: 60_000 });
}

async function verdict(page: Page): Promise<{ verdict: string | null; reason: string; text: string; ms: string | null }> {
  const box = page.locator("[data-verdict]").first();
  const verdict = (await box.count()) > 0 ? await box.getAttribute("data-verdict") : null;
  const reason = (await page.locator("[data-verdict] .reason").count()) > 0 ? await page.locator("[data-verdict] .reason").first().innerText() : "";
  return { verdict, reason, text: await page.locator("main").innerText(), ms: await page.locator("main").getAttribute("data-verified-ms") };
}

/** Drops files on the verify page's drop zone, as a person dragging them there. */
async function drop(page: Page, files: string[]): Promise<void> {
  const payload = files.map((f) => ({ name: f.split("/").pop()!, text: readFileSync(f, "utf8") }));
  const transfer = await page.evaluateHandle((items) => {
    const dt = new DataTransfer();
    for (const i of items) dt.items.add(new File([i.text], i.name, { type: i.name.endsWith(".toml") ? "application/toml" : "application/json" }));
    return dt;
  }, payload);
  await page.dispatchEvent("#drop", "drop", { dataTransfer: transfer });
  await page.waitForSelector("[data-verdict]", { timeout: 30_000 });
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const report: Record<string, unknown> = {};
try {
  const pages = {
    home: "#/",
    "batch-recalled": `#/batch/${encodeURIComponent(cfg.recalled)}`,
    "batch-food": `#/batch/${encodeURIComponent(cfg.food)}`,
    enterprise: `#/enterprise/${cfg.enterprise}`,
    verify: "#/verify",
    operator: "#/operator",
  };
  const shots: Record<string, unknown> = {};
  for (const [name, hash] of Object.entries(pages))
    for (const lang of ["zh", "en"] as const)
      for (const [form, width] of Object.entries(WIDTHS)) {
        const page = await open(browser, `${cfg.base}/${hash}`, lang, width);
        await settled(page);
        if (name === "verify") await drop(page, [cfg.genesis, cfg.bundle]);
        const file = join(cfg.out, `${name}-${lang}-${form}.png`);
        await page.screenshot({ path: file, fullPage: true });
        shots[`${name}-${lang}-${form}`] = { ...(await verdict(page)), lang: await page.evaluate(() => document.documentElement.lang), file };
        await page.context().close();
      }
  report["pages"] = shots;

  // A tampered bundle dropped on the verify page; then the provenance bundle the batch
  // page offers, downloaded and dropped there.
  {
    const page = await open(browser, `${cfg.base}/#/verify`, "en", 1280);
    await settled(page);
    await drop(page, [cfg.genesis, cfg.tampered_bundle]);
    report["verify_tampered"] = await verdict(page);
    await page.context().close();
  }
  {
    const page = await open(browser, `${cfg.base}/#/batch/${encodeURIComponent(cfg.recalled)}`, "en", 1280);
    await settled(page);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#bundle")]);
    const saved = join(cfg.out, "downloaded.provenance.json");
    await download.saveAs(saved);
    await page.goto(`${cfg.base}/#/verify`);
    await settled(page);
    await drop(page, [cfg.genesis, saved]);
    report["verify_downloaded"] = await verdict(page);
    await page.context().close();
  }

  // The label, rendered as it prints, and the page its code opens.
  {
    const page = await open(browser, `${cfg.base}/web/label/${encodeURIComponent(cfg.recalled)}`, "en", 800);
    const file = join(cfg.out, "label.png");
    await page.locator("svg").first().screenshot({ path: file });
    report["label_png"] = file;
    await page.context().close();
    const opened = await open(browser, cfg.label_url, "zh", 390);
    await settled(opened);
    report["label_page"] = await verdict(opened);
    await opened.context().close();
  }

  // One byte of one answer changed by the proxy, case by case.
  const tampered: unknown[] = [];
  for (const c of cfg.cases) {
    await fetch(`${cfg.proxy}/__tamper`, { method: "POST", body: `${c.path} ${c.n}` });
    const page = await open(browser, `${cfg.proxy}/${c.page}`, "en", 1280);
    await settled(page);
    const applied = await (await fetch(`${cfg.proxy}/__tamper`)).text();
    tampered.push({ ...c, ...(await verdict(page)), applied });
    await page.context().close();
  }
  report["tampered"] = tampered;
} finally {
  await browser.close();
}
writeFileSync(1, JSON.stringify(report) + "\n");
