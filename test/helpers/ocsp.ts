import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { readFileSync } from 'node:fs'
import { expect } from 'vitest'
import { tempFiles } from './ca.js'
import { openssl } from './openssl.js'

/** An OCSP request made by `openssl ocsp -reqout` for `certPem` (issued by `issuerPem`). */
export function ocspRequest(
  certPem: string,
  issuerPem: string,
  opts: { nonce?: boolean; serialHex?: string } = {},
): Buffer {
  const f = tempFiles({ 'cert.pem': certPem, 'issuer.pem': issuerPem, 'req.der': '' })
  const target = opts.serialHex ? ['-serial', `0x${opts.serialHex}`] : ['-cert', f['cert.pem']!]
  const r = openssl([
    'ocsp',
    '-issuer',
    f['issuer.pem']!,
    ...target,
    ...(opts.nonce === false ? ['-no_nonce'] : []),
    '-reqout',
    f['req.der']!,
  ])
  expect(r.code, r.out).toBe(0)
  return readFileSync(f['req.der']!)
}

/**
 * POSTs (or GETs) a DER request with curl (an independent HTTP client); returns the DER answer
 * and headers. Asynchronous: the server under test may run in this process.
 */
export async function curlOcsp(
  url: string,
  bundlePem: string,
  body: Uint8Array,
  method: 'POST' | 'GET' = 'POST',
): Promise<{ der: Buffer; headers: string }> {
  const f = tempFiles({ 'req.der': body, 'ca.pem': bundlePem, 'resp.der': '', 'headers.txt': '' })
  const target =
    method === 'POST'
      ? [
          '--data-binary',
          `@${f['req.der']}`,
          '-H',
          'Content-Type: application/ocsp-request',
          `${url}/v1/ocsp`,
        ]
      : [`${url}/v1/ocsp/${encodeURIComponent(Buffer.from(body).toString('base64'))}`]
  await promisify(execFile)('curl', [
    '-sS',
    '--max-time',
    '30',
    '--cacert',
    f['ca.pem']!,
    '-D',
    f['headers.txt']!,
    '-o',
    f['resp.der']!,
    ...target,
  ])
  return { der: readFileSync(f['resp.der']!), headers: readFileSync(f['headers.txt']!, 'utf8') }
}

/**
 * `openssl ocsp -respin` of an answer, verified against the bundle with the issuing CA as
 * `-verify_other`; with `reqDer` the answer is matched to the request (nonce and CertIDs).
 */
export function readOcspResponse(
  respDer: Uint8Array,
  trust: { bundlePem: string; issuerPem: string },
  opts: { reqDer?: Uint8Array; certPem?: string } = {},
): { code: number; out: string } {
  const f = tempFiles({
    'resp.der': respDer,
    'bundle.pem': trust.bundlePem,
    'issuer.pem': trust.issuerPem,
    'req.der': opts.reqDer ?? '',
    'cert.pem': opts.certPem ?? '',
  })
  return openssl([
    'ocsp',
    '-respin',
    f['resp.der']!,
    '-CAfile',
    f['bundle.pem']!,
    '-verify_other',
    f['issuer.pem']!,
    '-resp_text',
    ...(opts.reqDer ? ['-reqin', f['req.der']!] : []),
    ...(opts.certPem ? ['-issuer', f['issuer.pem']!, '-cert', f['cert.pem']!] : []),
  ])
}
