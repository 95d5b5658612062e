// Loopback S3 server for Ember's queue tests.
//
// @20minutes/s3rver verifies SigV4 signatures but accepts unsigned requests,
// never checks x-amz-content-sha256 against the body and ignores the region.
// This wrapper listens on the public port, enforces those three rules the way
// AWS does, and forwards what passes to s3rver on a private loopback port.
//
// usage: S3_ACCESS_KEY=K S3_SECRET_KEY=S node server.js --port N --dir DIR
//          [--region garage] [--bucket NAME]... [--ready-file F]
// (keys from the environment so that ps does not show them)
'use strict'

const crypto = require('node:crypto')
const http = require('node:http')
const fs = require('node:fs')

const S3rver = require('@20minutes/s3rver')
const AWSAccount = require('@20minutes/s3rver/lib/models/account')

function parseArgs(argv) {
  const opts = {
    region: 'garage',
    buckets: [],
    port: 0,
    accessKey: process.env.S3_ACCESS_KEY,
    secretKey: process.env.S3_SECRET_KEY,
  }
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]]
    if (value === undefined) throw new Error(`missing value for ${flag}`)
    switch (flag) {
      case '--port': opts.port = Number(value); break
      case '--dir': opts.dir = value; break
      case '--region': opts.region = value; break
      case '--bucket': opts.buckets.push(value); break
      case '--ready-file': opts.readyFile = value; break
      default: throw new Error(`unknown option ${flag}`)
    }
  }
  if (!opts.dir) throw new Error('--dir is required')
  if (!opts.accessKey || !opts.secretKey) throw new Error('S3_ACCESS_KEY and S3_SECRET_KEY must be set')
  return opts
}

function xmlError(res, status, code, message) {
  const body =
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${code}</Code><Message>${message}</Message></Error>`
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  })
  res.end(body)
}

// Returns [status, code, message] for a request AWS would refuse before
// looking at the signature, or null.
function precheck(req, url, opts) {
  const auth = req.headers.authorization
  const q = url.searchParams
  if (q.has('Signature') || (auth && auth.startsWith('AWS '))) {
    return [400, 'InvalidRequest', 'Only AWS Signature Version 4 is accepted here']
  }
  let credential
  if (auth) {
    if (!auth.startsWith('AWS4-HMAC-SHA256 ')) {
      return [400, 'AuthorizationHeaderMalformed', 'Unsupported authorization type']
    }
    const m = /Credential=([^,\s]+)/.exec(auth)
    if (!m) return [400, 'AuthorizationHeaderMalformed', 'missing Credential']
    credential = m[1]
  } else if (q.has('X-Amz-Algorithm')) {
    credential = q.get('X-Amz-Credential') || ''
  } else {
    return [403, 'AccessDenied', 'Anonymous access is refused: sign the request with SigV4']
  }
  const scope = credential.split('/')
  if (scope.length !== 5 || scope[2] !== opts.region || scope[3] !== 's3' || scope[4] !== 'aws4_request') {
    return [400, 'AuthorizationHeaderMalformed',
      `The authorization header is malformed; the credential scope must be <date>/${opts.region}/s3/aws4_request, got ${scope.slice(1).join('/')}`]
  }
  return null
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  AWSAccount.DUMMY_ACCOUNT.revokeAccessKey('S3RVER')
  AWSAccount.DUMMY_ACCOUNT.createKeyPair(opts.accessKey, opts.secretKey)

  const backend = new S3rver({
    address: '127.0.0.1',
    port: 0,
    silent: true,
    directory: opts.dir,
    vhostBuckets: false,
    configureBuckets: opts.buckets.map((name) => ({ name })),
  })
  const backendAddr = await backend.run()

  const forward = (req, res, body) => {
    const headers = { ...req.headers }
    if (body !== null) {
      headers['content-length'] = String(body.length)
      delete headers['transfer-encoding']
    }
    const up = http.request(
      { host: '127.0.0.1', port: backendAddr.port, method: req.method, path: req.url, headers },
      (upRes) => {
        res.writeHead(upRes.statusCode, upRes.headers)
        upRes.pipe(res)
      }
    )
    up.on('error', (err) => xmlError(res, 502, 'InternalError', String(err.message)))
    if (body !== null) up.end(body)
    else req.pipe(up)
  }

  const front = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1')
    const refused = precheck(req, url, opts)
    if (refused) {
      req.resume()
      return xmlError(res, ...refused)
    }
    const declared = req.headers['x-amz-content-sha256']
    const mustHash =
      req.headers.authorization && declared && /^[0-9A-Fa-f]{64}$/.test(declared)
    if (!mustHash) return forward(req, res, null)
    // Test server: buffering the body is fine, and it must be checked before
    // s3rver stores anything.
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const actual = crypto.createHash('sha256').update(body).digest('hex')
      if (actual !== declared.toLowerCase()) {
        return xmlError(res, 400, 'XAmzContentSHA256Mismatch',
          `The provided 'x-amz-content-sha256' header does not match what was computed (${actual})`)
      }
      forward(req, res, body)
    })
  })
  front.listen(opts.port, '127.0.0.1', () => {
    const { port } = front.address()
    if (opts.readyFile) fs.writeFileSync(opts.readyFile, `${port}\n`)
    process.stdout.write(`s3 wrapper on 127.0.0.1:${port}, s3rver on 127.0.0.1:${backendAddr.port}\n`)
  })
  const stop = () => {
    setTimeout(() => process.exit(0), 1000).unref()
    front.close(() => backend.close().finally(() => process.exit(0)))
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  process.stderr.write(`s3 server: ${err.stack || err}\n`)
  process.exit(1)
})
