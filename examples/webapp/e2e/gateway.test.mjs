// fallback-web's /gateway/ page in headless Chromium: IBM's HTTP Gateway SDK
// (@ibm-aspera/http-gateway-sdk-js 7.7.4, its browser bundle as published, unmodified)
// against the app's own fallbackd. Run by `cargo xtask browser`, like browser.test.mjs.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const BIN = process.env.FALLBACK_WEB_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const ARTIFACTS = resolve(process.env.FALLBACK_E2E_ARTIFACTS || "../../../target/e2e");
const SDK = join(dirname(fileURLToPath(import.meta.url)),
  "node_modules/@ibm-aspera/http-gateway-sdk-js/js/http-gateway.js");
assert.ok(BIN, "FALLBACK_WEB_BIN must name the fallback-web binary");
assert.ok(existsSync(SDK), `IBM's SDK is not installed (npm ci in ${dirname(SDK)})`);
mkdirSync(ARTIFACTS, { recursive: true });

const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on("error", rej);
  });
}

async function startWeb() {
  const dir = mkdtempSync(join(tmpdir(), "fallback-web-gw-"));
  const port = await freePort();
  const child = spawn(BIN, ["--data", join(dir, "data"), "--port", String(port),
    "--user", "alice:wonderland", "--gateway-sdk", SDK], { stdio: ["ignore", "pipe", "pipe"] });
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

async function gatewayPage(web) {
  const b = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  cleanup.push(() => b.close());
  const page = await (await b.newContext({ acceptDownloads: true })).newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  if (process.env.GW_DEBUG) page.on("console", (m) => console.error("page:", m.text()));
  await page.goto(web.url);
  await page.getByLabel("User").fill("alice");
  await page.getByLabel("Password").fill("wonderland");
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/browse\/$/);
  await page.getByRole("link", { name: "This folder with IBM's HTTP Gateway SDK" }).click();
  await page.waitForURL(/\/gateway\/$/);
  await page.locator("#app[data-ready]").waitFor();
  return page;
}

// Picks with the SDK's own file (or folder) picker.
async function pick(page, button, files) {
  const [chooser] = await Promise.all([page.waitForEvent("filechooser"), page.click(button)]);
  await chooser.setFiles(files);
}

// Uploads `files` and the folder `folder` through the SDK; waits for the SDK to say how
// it went ("completed" or "failed").
async function upload(page, files, folder) {
  const before = await page.locator("li.transfer").count();
  await pick(page, "#gw-files", files);
  if (folder) await pick(page, "#gw-folder", folder);
  await page.click("#gw-upload");
  await page.waitForFunction((n) => {
    const all = [...document.querySelectorAll("li.transfer")];
    return all.length > n && all.every((l) => ["completed", "failed"].includes(l.dataset.status));
  }, before, { timeout: 120000 });
  return page.locator("li.transfer").first().getAttribute("data-status");
}

function tree(root) {
  mkdirSync(join(root, "album", "2026"), { recursive: true });
  const files = {
    "a.bin": randomBytes(3 * 1024 * 1024 + 17),
    "b.txt": Buffer.from("notes\n"),
    "album/one.bin": randomBytes(64000),
    "album/2026/two.bin": randomBytes(200001),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(root, name), bytes);
  return files;
}

for (const version of ["v2", "v1"]) {
  test(`IBM's SDK uploads files and a folder (${version}), then downloads one file and a zip`, { timeout: 180000 }, async () => {
    const web = await startWeb();
    const work = mkdtempSync(join(tmpdir(), "fallback-web-gw-files-"));
    const files = tree(work);
    const page = await gatewayPage(web);
    // v1: the SDK sends base64 slices to a gateway older than 2.3, as an app configured
    // for one would see it.
    if (version === "v1") {
      await page.evaluate(() => { window.asperaHttpGateway.globals.serverInfo.version = "2.2.0"; });
    }
    const status = await upload(page, [join(work, "a.bin"), join(work, "b.txt")], join(work, "album"));
    assert.equal(status, "completed", await page.locator("#gw-transfers").textContent());
    for (const [name, bytes] of Object.entries(files)) {
      assert.equal(sha256(readFileSync(join(web.docroot, name))), sha256(bytes), name);
    }
    // The server saw the protocol the SDK chose.
    assert.match(web.log(), new RegExp(`gateway upload session start.*version=${version.toUpperCase()}`));
    await page.screenshot({ path: join(ARTIFACTS, `webapp-gateway-upload-${version}.png`), fullPage: true });

    // One file: the SDK's hidden iframe, the browser's download.
    await page.reload();
    await page.locator("#app[data-ready]").waitFor();
    await page.locator('input.gw-pick[value="/a.bin"]').check();
    const [one] = await Promise.all([page.waitForEvent("download"), page.click("#gw-download")]);
    assert.equal(one.suggestedFilename(), "a.bin");
    assert.equal(sha256(readFileSync(await one.path())), sha256(files["a.bin"]));

    // Several, and a folder: one zip.
    await page.locator('input.gw-pick[value="/b.txt"]').check();
    await page.locator('input.gw-pick[value="/album"]').check();
    const [zip] = await Promise.all([page.waitForEvent("download"), page.click("#gw-download")]);
    assert.match(zip.suggestedFilename(), /\.zip$/);
    const listed = JSON.parse(execFileSync("python3", ["-c", `
import hashlib, json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
print(json.dumps({i.filename: hashlib.sha256(z.read(i)).hexdigest() for i in z.infolist() if not i.is_dir()}))
`, await zip.path()]).toString());
    assert.deepEqual(listed, Object.fromEntries(Object.entries(files).map(([n, b]) => [n, sha256(b)])));
    rmSync(work, { recursive: true, force: true });
  });
}

test("IBM's SDK with a bad token, or a download token, for an upload: refused, nothing written", { timeout: 120000 }, async () => {
  const web = await startWeb();
  const work = mkdtempSync(join(tmpdir(), "fallback-web-gw-files-"));
  writeFileSync(join(work, "x.bin"), randomBytes(100000));
  const page = await gatewayPage(web);
  for (const [which, code] of [["garbage", 4401], ["download", 4403]]) {
    await pick(page, "#gw-files", [join(work, "x.bin")]);
    // A transfer spec as the app would make it, with the wrong token.
    const outcome = await page.evaluate((which) => new Promise((resolve) => {
      const gw = window.asperaHttpGateway;
      const app = document.getElementById("app");
      const token = which === "garbage" ? "not-a-token" : app.dataset.downloadToken;
      const seen = new Set(gw.activityTracking.getAllTransfers().map((t) => t.uuid));
      gw.registerActivityCallback((all) => {
        const t = (all.transfers || []).find((t) => !seen.has(t.uuid) && ["completed", "failed"].includes(t.status));
        if (t) resolve({ status: t.status, code: t.error_code, reason: t.error_desc });
      });
      gw.upload({ direction: "send", remote_host: location.hostname, remote_user: "alice",
        authentication: "token", token, destination_root: "/",
        paths: [{ source: "x.bin" }] }, "fallback-web-gateway");
    }), which);
    assert.equal(outcome.status, "failed", `${which}: ${JSON.stringify(outcome)}`);
    assert.equal(outcome.code, code, `${which}: ${JSON.stringify(outcome)}`);
    assert.ok(!existsSync(join(web.docroot, "x.bin")));
  }
  rmSync(work, { recursive: true, force: true });
});
