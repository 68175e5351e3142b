// tus-js-client (and Node's own http client) against a running fallbackd; driven by
// bins/fallbackd/tests/it/js_clients.rs. Prints one JSON line with what happened.
//
//   node tus.mjs parallel  ENDPOINT TOKEN FILE NAME N     parallelUploads: N
//   node tus.mjs override  ENDPOINT TOKEN FILE NAME       overridePatchMethod, 1 MiB chunks
//   node tus.mjs lost-final ENDPOINT TOKEN FILE NAME      through a proxy that drops the
//                                                         answer to the completing PATCH
//   node tus.mjs wrong-offset UPLOAD_URL TOKEN BYTES      one PATCH at offset 5, Node http
import fs from 'node:fs'
import http from 'node:http'
import * as tus from 'tus-js-client'

const [mode, target, token, ...rest] = process.argv.slice(2)

function upload(endpoint, file, name, options) {
  const data = fs.readFileSync(file)
  return new Promise((resolve, reject) => {
    const u = new tus.Upload(data, {
      endpoint,
      headers: { Authorization: `Bearer ${token}` },
      metadata: { filename: name },
      retryDelays: [0, 100, 200, 400],
      ...options,
      onError: reject,
      onSuccess: () => resolve(u.url),
    })
    u.start()
  })
}

// A one-hop HTTP proxy in front of `upstream` that drops (destroys the client socket
// instead of answering) the first response to a PATCH that completes its upload.
function lossyProxy(upstream) {
  const seen = { patchBytes: 0, heads: 0, dropped: 0 }
  const server = http.createServer((req, res) => {
    const up = new URL(req.url, upstream)
    if (req.method === 'HEAD') seen.heads++
    const out = http.request(up, { method: req.method, headers: req.headers }, (r) => {
      const done =
        req.method === 'PATCH' &&
        r.statusCode === 204 &&
        r.headers['upload-offset'] !== undefined &&
        r.headers['upload-offset'] === req.headers['x-test-length']
      if (done && seen.dropped === 0) {
        seen.dropped++
        r.resume()
        req.socket.destroy()
        return
      }
      res.writeHead(r.statusCode, r.headers)
      r.pipe(res)
    })
    req.on('data', (b) => {
      if (req.method === 'PATCH') seen.patchBytes += b.length
    })
    req.pipe(out)
  })
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, seen, port: server.address().port })),
  )
}

async function main() {
  if (mode === 'parallel') {
    const [file, name, n] = rest
    const url = await upload(target, file, name, { parallelUploads: Number(n) })
    return { url }
  }
  if (mode === 'override') {
    const [file, name] = rest
    const url = await upload(target, file, name, {
      overridePatchMethod: true,
      chunkSize: 1 << 20,
    })
    return { url }
  }
  if (mode === 'lost-final') {
    const [file, name] = rest
    const size = fs.statSync(file).size
    const base = new URL(target)
    const proxy = await lossyProxy(`${base.protocol}//${base.host}`)
    const endpoint = `http://127.0.0.1:${proxy.port}${base.pathname}`
    const url = await upload(endpoint, file, name, {
      headers: { Authorization: `Bearer ${token}`, 'X-Test-Length': String(size) },
    })
    proxy.server.close()
    return { url, ...proxy.seen }
  }
  if (mode === 'wrong-offset') {
    const bytes = Number(rest[0])
    const u = new URL(target)
    return await new Promise((resolve) => {
      const req = http.request(
        u,
        {
          method: 'PATCH',
          headers: {
            Authorization: `Bearer ${token}`,
            'Tus-Resumable': '1.0.0',
            'Content-Type': 'application/offset+octet-stream',
            'Upload-Offset': '5',
            'Content-Length': String(bytes),
          },
        },
        (res) => {
          res.resume()
          res.on('end', () =>
            resolve({ status: res.statusCode, offset: res.headers['upload-offset'] }),
          )
        },
      )
      req.on('error', (e) => resolve({ error: String(e) }))
      req.end(Buffer.alloc(bytes, 7))
    })
  }
  throw new Error(`unknown mode ${mode}`)
}

main().then(
  (r) => {
    console.log(JSON.stringify(r))
  },
  (e) => {
    console.log(JSON.stringify({ error: String(e) }))
    process.exitCode = 1
  },
)
