// IBM's HTTP Gateway SDK (@ibm-aspera/http-gateway-sdk-js 7.7.4, unmodified) against a
// running fallbackd, headless: the SDK's "software mode" with the small shims it needs
// outside a browser (location, document, a form container). Driven by
// bins/fallbackd/tests/it/gateway.rs. Prints one JSON line with what happened.
//
//   node gateway.mjs upload   GATEWAY_URL v1|v2 TOKEN DEST_ROOT FILE=NAME...
//   node gateway.mjs download GATEWAY_URL TOKEN OUT zip|plain PATH...
//   node gateway.mjs bench-upload GATEWAY_URL v1|v2 TOKEN DEST_ROOT FILE NAME
//                     one file, timed from the SDK's upload() to its "completed"
//
// API v3 (aspera-sdk-js's HTTP flow, not on npm here): a client written from its public
// description, with Node's own fetch, FormData and Blob as a browser would send them.
//
//   node gateway.mjs v3-upload   GATEWAY_URL TOKEN DEST_ROOT FILE=NAME...
//   node gateway.mjs v3-download GATEWAY_URL TOKEN OUT PATH...       X-Aspera-Spec
//   node gateway.mjs v3-presign  GATEWAY_URL TOKEN OUT PATH...       signed URL, then GET
//
// v1 or v2 is what the SDK picks from the server's version; `v1` here tells the SDK the
// server is 2.2 (as an older gateway would say), so it sends base64 slices.
import fs from 'node:fs'
import crypto from 'node:crypto'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

// What the SDK touches of a browser in software mode.
globalThis.location = { protocol: 'http:' }
function element(tag) {
  return {
    tagName: tag.toUpperCase(),
    nodeType: 1,
    childNodes: [],
    children: [],
    appendChild(c) { this.childNodes.push(c); this.children.push(c); return c },
    removeChild(c) { this.childNodes = this.childNodes.filter((x) => x !== c); return c },
  }
}
globalThis.document = {
  createElement: element,
  querySelector: () => element('div'),
  querySelectorAll: () => [],
}

const sdk = require('@ibm-aspera/http-gateway-sdk-js')
const gw = sdk.asperaHttpGateway

const [mode, url, ...rest] = process.argv.slice(2)

function done(v, code = 0) {
  process.stdout.write(JSON.stringify(v) + '\n')
  process.exit(code)
}

// Settles when every transfer the SDK tracks has completed, or one has failed.
function settled() {
  return new Promise((resolve) => {
    sdk.registerActivityCallback((all) => {
      const ts = all.transfers || []
      const failed = ts.find((t) => t.status === 'failed')
      if (failed) resolve({ status: 'failed', code: failed.error_code, reason: failed.error_desc })
      else if (ts.length && ts.every((t) => t.status === 'completed')) {
        resolve({ status: 'completed', transfers: ts.length, bytes: ts.reduce((n, t) => n + (t.bytes_written || 0), 0) })
      }
    })
  })
}

async function upload() {
  const [version, token, destinationRoot, ...pairs] = rest
  await sdk.initHttpGateway(url, true)
  gw.globals.formContainer = element('div')
  if (version === 'v1') gw.globals.serverInfo.version = '2.2.0'
  const files = pairs.map((p) => {
    const i = p.indexOf('=')
    const [file, name] = [p.slice(0, i), p.slice(i + 1)]
    const data = fs.readFileSync(file)
    return { data, size: data.length, type: 'application/octet-stream', name, lastModified: Date.now() }
  })
  const spec = {
    direction: 'send',
    remote_host: new URL(url).hostname,
    remote_user: 'alice',
    authentication: 'token',
    token,
    destination_root: destinationRoot,
    paths: files.map((f) => ({ source: f.name })),
  }
  const outcome = settled()
  try {
    await sdk.upload(spec, 'form-1', files)
  } catch (e) {
    done({ status: 'refused', error: String(e && (e.message || e.error || JSON.stringify(e))) }, 0)
  }
  done(await outcome)
}

async function download() {
  const [token, out, zip, ...paths] = rest
  await sdk.initHttpGateway(url, true)
  const spec = {
    direction: 'receive',
    remote_host: new URL(url).hostname,
    remote_user: 'alice',
    authentication: 'token',
    token: `Bearer ${token}`,
    paths: paths.map((source) => ({ source })),
  }
  let answer
  try {
    answer = await sdk.download(spec, { zipRequire: zip === 'zip' })
  } catch (e) {
    done({ status: 'refused', error: String(e && (e.message || JSON.stringify(e))) })
  }
  const res = await fetch(answer.url)
  const body = Buffer.from(await res.arrayBuffer())
  fs.writeFileSync(out, body)
  done({
    status: res.status,
    id: answer.transfer_spec_id,
    bytes: body.length,
    sha256: crypto.createHash('sha256').update(body).digest('hex'),
    type: res.headers.get('content-type'),
    disposition: res.headers.get('content-disposition'),
  })
}

// For `cargo xtask bench`: the SDK's own state, read every 2 ms (its activity callback
// runs every 2 s, which would blur the time).
async function benchUpload() {
  const [version, token, destinationRoot, file, name] = rest
  await sdk.initHttpGateway(url, true)
  gw.globals.formContainer = element('div')
  if (version === 'v1') gw.globals.serverInfo.version = '2.2.0'
  const data = fs.readFileSync(file)
  const spec = {
    direction: 'send',
    remote_host: new URL(url).hostname,
    remote_user: 'alice',
    authentication: 'token',
    token,
    destination_root: destinationRoot,
    paths: [{ source: name }],
  }
  const t0 = process.hrtime.bigint()
  await sdk.upload(spec, 'bench', [{ data, size: data.length, type: 'application/octet-stream', name }])
  for (;;) {
    const ts = gw.activityTracking.getAllTransfers()
    const failed = ts.find((t) => t.status === 'failed')
    if (failed) done({ status: 'failed', code: failed.error_code, reason: failed.error_desc }, 1)
    if (ts.length && ts.every((t) => t.status === 'completed')) break
    await new Promise((r) => setTimeout(r, 2))
  }
  done({ status: 'completed', secs: Number(process.hrtime.bigint() - t0) / 1e9, bytes: data.length })
}

function receiveSpec(paths) {
  return {
    direction: 'receive',
    remote_host: new URL(url).hostname,
    paths: paths.map((source) => ({ source })),
  }
}

async function saved(res, out) {
  const body = Buffer.from(await res.arrayBuffer())
  fs.writeFileSync(out, body)
  return {
    status: res.status,
    bytes: body.length,
    sha256: crypto.createHash('sha256').update(body).digest('hex'),
    type: res.headers.get('content-type'),
    disposition: res.headers.get('content-disposition'),
    requestId: res.headers.get('x-request-id'),
    length: res.headers.get('content-length'),
    body: res.status >= 400 ? body.toString() : undefined,
  }
}

async function v3Upload() {
  const [token, destinationRoot, ...pairs] = rest
  const files = pairs.map((p) => {
    const i = p.indexOf('=')
    return { file: p.slice(0, i), name: p.slice(i + 1) }
  })
  const spec = {
    direction: 'send',
    remote_host: new URL(url).hostname,
    destination_root: destinationRoot,
    paths: files.map((f) => ({ source: f.name })),
  }
  const body = new FormData()
  body.append('x-aspera-spec', JSON.stringify(spec))
  for (const f of files) {
    const data = fs.readFileSync(f.file)
    body.append('Content-Length', String(data.length))
    // A browser's File is named by its own name, not its folder path.
    body.append('file', new Blob([data]), f.name.split('/').pop())
  }
  const res = await fetch(`${url}/v3/upload`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'X-Aspera-AccessKey': 'unused' },
    body,
  })
  const text = await res.text()
  let json
  try { json = JSON.parse(text) } catch { json = text }
  done({ status: res.status, body: json, requestId: res.headers.get('x-request-id') })
}

async function v3Download() {
  const [token, out, ...paths] = rest
  const spec = JSON.stringify(receiveSpec(paths))
  const res = await fetch(`${url}/v3/download`, {
    headers: {
      'X-Aspera-Spec': Buffer.from(spec, 'utf8').toString('base64'),
      Authorization: `Bearer ${token}`,
    },
  })
  done(await saved(res, out))
}

async function v3Presign() {
  const [token, out, ...paths] = rest
  const u = new URL(url)
  const res = await fetch(`${url}/v3/presign`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', accept: 'application/json', Authorization: `Bearer ${token}` },
    body: JSON.stringify({
      transfer_spec: receiveSpec(paths),
      method: 'GET',
      protocol: u.protocol === 'https:' ? 'https' : 'http',
      headers: { host: u.host },
    }),
  })
  const answer = await res.json()
  if (res.status >= 400) done({ status: res.status, body: answer })
  // What a browser's download manager does with it: a plain GET, no headers.
  done({ ...(await saved(await fetch(answer.signed_url), out)), signed: answer.signed_url })
}

// What /v1/info answers, or why it cannot be reached (the SDK only says "Unable to
// communicate").
async function probe() {
  try {
    const res = await fetch(`${url}/v1/info`, { headers: { 'Content-Type': 'application/json' } })
    done({ status: res.status, body: await res.text() })
  } catch (e) {
    done({ status: 'error', error: String(e), cause: String(e.cause) })
  }
}

const run = { probe, upload, download, 'bench-upload': benchUpload, 'v3-upload': v3Upload, 'v3-download': v3Download, 'v3-presign': v3Presign }[mode]
if (!run) done({ status: 'usage', error: `unknown mode ${mode}` }, 2)
function describe(e) {
  if (e && e.stack) return String(e.stack)
  try { return JSON.stringify(e) } catch { return String(e) }
}
run().catch((e) => done({ status: 'error', error: describe(e) }, 1))
