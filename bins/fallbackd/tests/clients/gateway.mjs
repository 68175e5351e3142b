// IBM's HTTP Gateway SDK (@ibm-aspera/http-gateway-sdk-js 7.7.4, unmodified) against a
// running fallbackd, headless: the SDK's "software mode" with the small shims it needs
// outside a browser (location, document, a form container). Driven by
// bins/fallbackd/tests/it/gateway.rs. Prints one JSON line with what happened.
//
//   node gateway.mjs upload   GATEWAY_URL v1|v2 TOKEN DEST_ROOT FILE=NAME...
//   node gateway.mjs download GATEWAY_URL TOKEN OUT zip|plain PATH...
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
    const started = new Set()
    sdk.registerActivityCallback((all) => {
      const ts = all.transfers || []
      ts.forEach((t) => started.add(t.id))
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

const run = { upload, download }[mode]
if (!run) done({ status: 'usage', error: `unknown mode ${mode}` }, 2)
function describe(e) {
  if (e && e.stack) return String(e.stack)
  try { return JSON.stringify(e) } catch { return String(e) }
}
run().catch((e) => done({ status: 'error', error: describe(e) }, 1))
