// fallbackd called from a page on another origin, in Debian's Chromium (CORS): a tus
// upload and a download from the allowed origin, and the browser refusing a page on an
// origin fallbackd does not allow. Run by `cargo xtask browser`, which sets
// FALLBACKD_BIN and FALLBACK_BIN.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, mkdirSync, rmSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const FALLBACKD = process.env.FALLBACKD_BIN;
const FALLBACK = process.env.FALLBACK_BIN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
assert.ok(FALLBACKD && FALLBACK, "FALLBACKD_BIN and FALLBACK_BIN must name the binaries");

const cleanup = [];
after(async () => { for (const f of cleanup.reverse()) await f(); });

function freePort() {
  return new Promise((res, rej) => {
    const s = createNetServer();
    s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => res(port)); });
    s.on("error", rej);
  });
}

// A page server: every path answers the same empty page (the test's script runs in it).
async function pageServer() {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end("<!DOCTYPE html><title>app</title><p>app</p>");
  });
  await new Promise((res) => server.listen(0, "127.0.0.1", res));
  cleanup.push(() => new Promise((res) => server.close(res)));
  return `http://127.0.0.1:${server.address().port}`;
}

async function startFallbackd(allowed) {
  const dir = mkdtempSync(join(tmpdir(), "fallbackd-cors-"));
  const docroot = join(dir, "data");
  mkdirSync(join(docroot, "pub"), { recursive: true });
  writeFileSync(join(docroot, "pub", "hello.txt"), "hello from another origin\n");
  const port = await freePort();
  const conf = join(dir, "aspera.conf");
  writeFileSync(conf, `<CONF version="2">
  <http_server>
    <enable_http>true</enable_http>
    <http_port>${port}</http_port>
    <bind_address>127.0.0.1</bind_address>
  </http_server>
  <default>
    <authorization>
      <transfer><in><value>token</value></in><out><value>token</value></out></transfer>
      <token><encryption_key>cors-browser-test-secret-0123456789</encryption_key></token>
    </authorization>
    <file_system><access><paths><path><absolute>${docroot}</absolute></path></paths></access></file_system>
  </default>
</CONF>
`);
  const child = spawn(FALLBACKD, ["--config", conf, "--cors-origin", allowed, "--log-format", "json"],
    { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  await new Promise((res, rej) => {
    child.stderr.on("data", (d) => { log += d; if (log.includes('"listening"')) res(); });
    child.on("exit", (c) => rej(new Error(`fallbackd exited (${c}): ${log}`)));
  });
  cleanup.push(async () => { child.kill(); rmSync(dir, { recursive: true, force: true }); });
  const token = (...args) =>
    execFileSync(FALLBACK, ["token", "generate", "--config", conf, "--user", "alice", "--ttl", "1h", ...args],
      { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  return {
    base: `http://127.0.0.1:${port}`,
    docroot,
    up: token("--up", "--dest", "/in"),
    down: token("--down", "-p", "/pub"),
    log: () => log,
  };
}

async function page() {
  const b = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  cleanup.push(() => b.close());
  return (await b.newContext()).newPage();
}

test("a page on an allowed origin uploads with tus and downloads", async () => {
  const app = await pageServer();
  const fd = await startFallbackd(app);
  const p = await page();
  await p.goto(app);
  const got = await p.evaluate(async ({ base, up, down }) => {
    const text = "uploaded from " + location.origin + "\n";
    const body = new TextEncoder().encode(text);
    const created = await fetch(base + "/uploads", {
      method: "POST",
      headers: {
        Authorization: "Bearer " + up,
        "Tus-Resumable": "1.0.0",
        "Upload-Length": String(body.length),
        "Upload-Metadata": "filename " + btoa("cross.txt"),
      },
    });
    const loc = created.headers.get("Location");
    const patched = await fetch(new URL(loc, base), {
      method: "PATCH",
      headers: {
        Authorization: "Bearer " + up,
        "Tus-Resumable": "1.0.0",
        "Upload-Offset": "0",
        "Content-Type": "application/offset+octet-stream",
      },
      body,
    });
    const file = await fetch(base + "/files/pub/hello.txt", {
      headers: { Authorization: "Bearer " + down },
    });
    return {
      created: created.status,
      loc,
      patched: patched.status,
      offset: patched.headers.get("Upload-Offset"),
      digest: patched.headers.get("Repr-Digest"),
      status: file.status,
      text: await file.text(),
      etag: file.headers.get("ETag"),
    };
  }, { base: fd.base, up: fd.up, down: fd.down });
  assert.equal(got.created, 201);
  assert.match(got.loc, /\/uploads\/[0-9a-f]{32}$/, "Location is exposed");
  assert.equal(got.patched, 204);
  assert.equal(got.offset, String("uploaded from ".length + app.length + 1));
  assert.match(got.digest, /^sha-256=:/, "Repr-Digest is exposed");
  assert.equal(readFileSync(join(fd.docroot, "in", "cross.txt"), "utf8"), `uploaded from ${app}\n`);
  assert.equal(got.status, 200);
  assert.equal(got.text, "hello from another origin\n");
  assert.ok(got.etag, "ETag is exposed");
});

test("a page on another origin is refused by the browser", async () => {
  const allowed = await pageServer();
  const other = await pageServer();
  const fd = await startFallbackd(allowed);
  const p = await page();
  await p.goto(other);
  const got = await p.evaluate(async ({ base, down, up }) => {
    const out = {};
    try {
      await fetch(base + "/files/pub/hello.txt", { headers: { Authorization: "Bearer " + down } });
      out.download = "allowed";
    } catch (e) {
      out.download = "refused: " + e.name;
    }
    try {
      await fetch(base + "/uploads", {
        method: "POST",
        headers: { Authorization: "Bearer " + up, "Tus-Resumable": "1.0.0", "Upload-Length": "1" },
      });
      out.upload = "allowed";
    } catch (e) {
      out.upload = "refused: " + e.name;
    }
    return out;
  }, { base: fd.base, down: fd.down, up: fd.up });
  assert.equal(got.download, "refused: TypeError");
  assert.equal(got.upload, "refused: TypeError");
  // The preflight was refused, so the POST never reached fallbackd: no upload made.
  assert.ok(!fd.log().includes('"upload created"'), fd.log());
});
