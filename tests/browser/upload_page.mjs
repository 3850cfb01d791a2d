// Drives the upload page in the system's Chromium (headless) and prints what it saw as JSON.
// Usage: node upload_page.mjs '<json options>'; pytest runs it and checks the server's side.
// Options: scenario (resume | offline | error | conflict), url, file, chunkSize, throttle (bytes/s),
// screenshot and uploadingShot (PNG paths).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const options = JSON.parse(process.argv[2]);
const TIMEOUT = 30000;

function fail(message) {
  throw new Error(message);
}

async function launch() {
  const profile = mkdtempSync(join(tmpdir(), "uploadsvc-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 900, height: 640 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(TIMEOUT);
  const log = [];
  page.on("console", (m) => log.push(`${m.type()}: ${m.text()}`));
  page.on("pageerror", (e) => log.push(`pageerror: ${e.message}`));
  const counts = { chunks: 0 };
  page.on("request", (r) => { if (r.url().endsWith("/api/upload-chunk")) counts.chunks += 1; });
  return { context, page, log, counts, close: async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  } };
}

// Real network throttling in Chromium, so that an upload of a few MiB over loopback lasts
// long enough to be interrupted at a chosen point.
async function throttle(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond,
  });
  return cdp;
}

async function open(page, extra = "") {
  await page.goto(`${options.url}/?chunkSize=${options.chunkSize}${extra}`);
  await page.waitForSelector("#app[data-ready=true]");
}

const row = (page) => page.locator("li.file").last();
const attr = (page, name) => row(page).getAttribute(`data-${name}`);

// Polls from here rather than with waitForFunction, whose in-page polling the page's
// Content-Security-Policy (no eval) forbids.
async function waitFor(page, predicate, arg, timeout = TIMEOUT) {
  const deadline = Date.now() + timeout;
  while (!(await page.evaluate(predicate, arg))) {
    if (Date.now() > deadline) fail(`timed out waiting for ${predicate} (${arg})`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function sentAtLeast(page, n) {
  return waitFor(page, (min) => {
    const li = [...document.querySelectorAll("li.file")].pop();
    return Boolean(li) && Number(li.dataset.chunksSent) >= min;
  }, n);
}

function inState(page, state, timeout) {
  return waitFor(page, (s) => {
    const li = [...document.querySelectorAll("li.file")].pop();
    return Boolean(li) && li.dataset.state === s;
  }, state, timeout);
}

async function rowSummary(page) {
  const li = row(page);
  return {
    state: await attr(page, "state"), md5: await attr(page, "md5"),
    md5Source: await attr(page, "md5-source"), path: await attr(page, "path"),
    chunksSent: Number(await attr(page, "chunks-sent")),
    totalChunks: Number(await attr(page, "total-chunks")),
    status: await li.locator(".file-status").textContent(),
    error: await li.locator(".file-error").textContent(),
    progress: Number(await li.locator("progress").evaluate((p) => p.value)),
  };
}

// Pause, resume, reload mid-upload, re-select the file, finish; then the same file again.
async function resume(browser) {
  const { page, counts } = browser;
  const result = {};
  await throttle(page, options.throttle);
  await open(page);
  await page.setInputFiles("#file-input", options.file);
  await sentAtLeast(page, 2);
  await row(page).getByRole("button", { name: /^Pause/ }).click();
  await inState(page, "paused");
  result.paused = await rowSummary(page);
  const atPause = counts.chunks;
  await page.waitForTimeout(700);
  result.requestsWhilePaused = counts.chunks - atPause;
  // Keyboard: the Resume button took focus; Enter presses it.
  result.focused = await page.evaluate(() => document.activeElement.textContent);
  await page.keyboard.press("Enter");
  await sentAtLeast(page, result.paused.chunksSent + 2);
  result.beforeReload = await rowSummary(page);
  result.rateText = await row(page).locator(".file-rate").textContent();
  if (options.uploadingShot) await page.screenshot({ path: options.uploadingShot });
  await page.reload();
  await page.waitForSelector("#app[data-ready=true]");
  result.unfinishedShown = await page.locator("#unfinished li.unfinished").allTextContents();
  counts.chunks = 0;
  await page.setInputFiles("#file-input", options.file);
  await inState(page, "done");
  result.afterReload = await rowSummary(page);
  result.afterReloadRequests = counts.chunks;
  if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
  counts.chunks = 0;
  await page.setInputFiles("#file-input", options.file);
  await inState(page, "done");
  result.again = await rowSummary(page);
  result.againRequests = counts.chunks;
  result.downloadHref = await row(page).locator("a.download").getAttribute("href");
  return result;
}

// Lose the connection mid-upload; the page says so and carries on when it is back.
async function offline(browser) {
  const { page, context } = browser;
  const result = {};
  const cdp = await throttle(page, options.throttle);
  await open(page);
  await page.setInputFiles("#file-input", options.file);
  await sentAtLeast(page, 2);
  result.rateText = await row(page).locator(".file-rate").textContent();
  await cdp.send("Network.emulateNetworkConditions", {
    offline: true, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  await context.setOffline(true);
  await inState(page, "offline");
  result.offline = await rowSummary(page);
  await page.waitForTimeout(300);
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: options.throttle * 4,
  });
  await context.setOffline(false);
  await inState(page, "done");
  result.done = await rowSummary(page);
  // Drag and drop: a file dropped on the zone uploads like a picked one.
  const transfer = await page.evaluateHandle(([name, text]) => {
    const data = new DataTransfer();
    data.items.add(new File([text], name, { type: "text/plain" }));
    return data;
  }, [options.dropName, options.dropText]);
  await page.dispatchEvent("#drop-zone", "drop", { dataTransfer: transfer });
  await inState(page, "done");
  result.dropped = await rowSummary(page);
  return result;
}

// A file the server refuses: the page shows the API's message in plain words.
async function error(browser) {
  const { page } = browser;
  await open(page);
  await page.setInputFiles("#file-input", options.file);
  await inState(page, "error");
  const result = { failed: await rowSummary(page) };
  result.alert = await row(page).getByRole("alert").textContent();
  if (options.screenshot) await page.screenshot({ path: options.screenshot, fullPage: true });
  return result;
}

// An upload the server cannot continue (started with another chunk count): the page shows
// why, and "Try again" starts the file over.
async function conflict(browser) {
  const { page } = browser;
  await open(page);
  await page.setInputFiles("#file-input", options.file);
  await inState(page, "error");
  const result = { failed: await rowSummary(page) };
  result.alert = await row(page).getByRole("alert").textContent();
  await row(page).getByRole("button", { name: /^Try again/ }).click();
  await inState(page, "done");
  result.done = await rowSummary(page);
  return result;
}

const scenarios = { resume, offline, error, conflict };
const browser = await launch();
let exitCode = 0;
try {
  const result = await (scenarios[options.scenario] || (() => fail("unknown scenario")))(browser);
  process.stdout.write(JSON.stringify({ ok: true, ...result, log: browser.log }) + "\n");
} catch (err) {
  if (options.screenshot) {
    await browser.page.screenshot({ path: options.screenshot.replace(/\.png$/, "-failed.png") })
      .catch(() => {});
  }
  process.stdout.write(JSON.stringify({
    ok: false, error: String(err.stack || err), log: browser.log,
    row: await rowSummary(browser.page).catch(() => null),
  }) + "\n");
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
