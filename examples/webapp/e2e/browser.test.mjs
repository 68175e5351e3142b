// fallback-web in a real browser: Debian's Chromium, headless, driven by playwright-core.
// Run by `cargo xtask browser` (and so by `cargo xtask ci`), which builds fallback-web,
// installs chromium and these node modules, and sets FALLBACK_WEB_BIN.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const BIN = process.env.FALLBACK_WEB_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = resolve(process.env.FALLBACK_E2E_ARTIFACTS || "../../../target/e2e");
assert.ok(BIN, "FALLBACK_WEB_BIN must name the fallback-web binary");
mkdirSync(ARTIFACTS, { recursive: true });

const MiB = 1024 * 1024;
const sha256 = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");
const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on("error", rej);
  });
}

async function startWeb(extra = []) {
  const dir = mkdtempSync(join(tmpdir(), "fallback-web-"));
  const port = await freePort();
  const child = spawn(BIN, ["--data", join(dir, "data"), "--port", String(port),
    "--user", "alice:wonderland", ...extra], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stderr.on("data", (d) => { log += d; });
  const url = await new Promise((res, rej) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/open (http:\/\/\S+)/);
      if (m) res(m[1]);
    });
    child.on("exit", (c) => rej(new Error(`fallback-web exited (${c}): ${log}`)));
    setTimeout(() => rej(new Error(`fallback-web did not start: ${log}`)), 20000);
  });
  cleanup.push(async () => { child.kill(); rmSync(dir, { recursive: true, force: true }); });
  return { url, dir, log: () => log, docroot: join(dir, "data", "alice") };
}

async function browser() {
  const b = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  cleanup.push(() => b.close());
  const context = await b.newContext({ acceptDownloads: true, viewport: { width: 1100, height: 800 } });
  return context.newPage();
}

// The page's script has wired its buttons (a click before that would do nothing).
const ready = (page) => page.locator("#app[data-ready]").waitFor();

async function signIn(page, url) {
  await page.goto(url);
  await page.getByLabel("User").fill("alice");
  await page.getByLabel("Password").fill("wonderland");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/browse\/$/);
  await ready(page);
}

// Upload speed through the browser's network stack, so a transfer is caught mid-way.
async function throttle(page, bytesPerSecond) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: bytesPerSecond,
  });
}

const statusOf = (page, name) =>
  page.locator("li.transfer", { hasText: name }).first().locator(".status");

test("sign in, upload two files (one of 50 MiB), see them listed, download one intact", async () => {
  const web = await startWeb();
  const work = mkdtempSync(join(tmpdir(), "fallback-web-files-"));
  const small = join(work, "notes.txt");
  const big = join(work, "big.bin");
  writeFileSync(small, "hello from the browser test\n");
  writeFileSync(big, randomBytes(50 * MiB));
  const page = await browser();
  await signIn(page, web.url);
  await assert.doesNotReject(page.getByText("This folder is empty.").waitFor());

  await throttle(page, 25 * MiB);
  await page.setInputFiles("#pick-files", [small, big]);
  // A screenshot while the big one is on its way.
  await page.waitForFunction(() => {
    const li = [...document.querySelectorAll("li.transfer")].find((l) => l.textContent.includes("big.bin"));
    return li && Number(li.dataset.done || 0) > 8 * 1024 * 1024;
  }, null, { timeout: 60000 });
  await page.screenshot({ path: join(ARTIFACTS, "webapp-upload.png"), fullPage: true });
  await statusOf(page, "big.bin").filter({ hasText: "uploaded" }).waitFor({ timeout: 120000 });
  await statusOf(page, "notes.txt").filter({ hasText: "uploaded" }).waitFor();

  await page.getByRole("link", { name: "Refresh the listing" }).click();
  await page.waitForLoadState("load");
  await ready(page);
  const row = page.locator('tr[data-path="/big.bin"]');
  await row.waitFor();
  await assert.doesNotReject(page.locator('tr[data-path="/notes.txt"]').waitFor());
  assert.match(await row.textContent(), /50\.0 MiB/);
  assert.match(await row.locator("a.fasp").getAttribute("href"), /^fasp:\/\/alice@.*fallback=yes/);
  assert.equal(sha256(join(web.docroot, "big.bin")), sha256(big));

  const [download] = await Promise.all([
    page.waitForEvent("download", { timeout: 120000 }),
    row.getByRole("button", { name: "Download" }).click(),
  ]);
  assert.equal(download.suggestedFilename(), "big.bin");
  assert.equal(sha256(await download.path()), sha256(big));
  rmSync(work, { recursive: true, force: true });
});

test("an upload cut by a page reload resumes from the server's offset", async () => {
  const web = await startWeb();
  const work = mkdtempSync(join(tmpdir(), "fallback-web-files-"));
  const file = join(work, "resume.bin");
  writeFileSync(file, randomBytes(40 * MiB));
  const size = 40 * MiB;
  const page = await browser();
  await signIn(page, web.url);
  await throttle(page, 10 * MiB);
  await page.setInputFiles("#pick-files", [file]);
  await page.waitForFunction(() => {
    const li = document.querySelector("li.transfer");
    return li && Number(li.dataset.done || 0) > 12 * 1024 * 1024;
  }, null, { timeout: 60000 });
  await page.reload();
  await ready(page);
  await throttle(page, 100 * MiB);
  await page.setInputFiles("#pick-files", [file]);
  const li = page.locator("li.transfer", { hasText: "resume.bin" }).first();
  await li.locator(".status").filter({ hasText: "uploaded" }).waitFor({ timeout: 120000 });
  const resumedFrom = Number(await li.getAttribute("data-resumed-from"));
  // The server said, before the second upload, that it held this much: the second time
  // it received fewer bytes than the file.
  assert.ok(resumedFrom > 0 && resumedFrom < size, `resumed from ${resumedFrom}`);
  assert.equal(sha256(join(web.docroot, "resume.bin")), sha256(file));
  // One upload, created once and resumed, not started over.
  assert.equal(web.log().split("upload created").length - 1, 1, web.log());
  rmSync(work, { recursive: true, force: true });
});

test("an expired token shows what to do", async () => {
  const web = await startWeb(["--token-ttl", "1", "--token-skew", "0"]);
  writeFileSync(join(web.docroot, "report.txt"), "quarterly numbers\n");
  const page = await browser();
  await signIn(page, web.url);
  await page.waitForTimeout(2500);
  await page.locator('tr[data-path="/report.txt"]').getByRole("button", { name: "Download" }).click();
  const status = page.locator("li.transfer.failed .status");
  await status.waitFor();
  assert.match(await status.textContent(), /expired.*reload the page/);
});

test("drag and drop uploads; a folder downloads file by file", async () => {
  const web = await startWeb();
  mkdirSync(join(web.docroot, "album", "2026"), { recursive: true });
  writeFileSync(join(web.docroot, "album", "a.txt"), "first\n");
  writeFileSync(join(web.docroot, "album", "2026", "b.txt"), "second\n");
  const page = await browser();
  await signIn(page, web.url);
  // A file dropped on the upload area.
  const dt = await page.evaluateHandle(() => {
    const d = new DataTransfer();
    d.items.add(new File(["dropped bytes\n"], "dropped.txt", { type: "text/plain" }));
    return d;
  });
  await page.dispatchEvent("#drop", "drop", { dataTransfer: dt });
  await statusOf(page, "dropped.txt").filter({ hasText: "uploaded" }).waitFor({ timeout: 30000 });
  assert.equal(readFileSync(join(web.docroot, "dropped.txt"), "utf8"), "dropped bytes\n");
  // The folder: one download per file, the folder path kept in the name.
  const names = [];
  page.on("download", (d) => names.push(d.suggestedFilename()));
  await page.locator('tr[data-path="/album"]').getByRole("button", { name: "Download" }).click();
  await page.waitForFunction(() =>
    [...document.querySelectorAll("li.transfer.ok")].filter((l) => l.textContent.includes("album_")).length === 2,
    null, { timeout: 30000 });
  await page.waitForTimeout(500);
  assert.deepEqual(names.sort(), ["album_2026_b.txt", "album_a.txt"]);
});
