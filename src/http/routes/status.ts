import { Hono } from 'hono'
import type { CrlPublisher } from '../../ca/crl.js'
import type { OcspAnswer, OcspResponder } from '../../ca/ocsp.js'
import type { CaMaterial } from '../../ca/material.js'
import { CAError } from '../../errors.js'
import { requestBody } from '../body-limit.js'
import type { AppEnv } from '../mtls.js'

export interface StatusRouteDeps {
  readonly ca: CaMaterial
  readonly crl: CrlPublisher
  readonly ocsp: OcspResponder
}

/** An OCSP answer (RFC 6960 Appendix A: always 200, the status is inside). */
function ocspResponse(answer: OcspAnswer): Response {
  const headers: Record<string, string> = { 'content-type': 'application/ocsp-response' }
  // RFC 5019 §6.2: a pre-signed answer may be cached until its nextUpdate; one with a nonce never.
  headers['cache-control'] =
    answer.maxAgeSeconds === undefined ? 'no-store' : `max-age=${answer.maxAgeSeconds}, public`
  return new Response(Buffer.from(answer.der), { status: 200, headers })
}

/** GET /v1/ocsp/{url-encoded base64 DER} (RFC 6960 Appendix A.1); undefined when not base64. */
function requestFromPath(path: string): Uint8Array | undefined {
  let text: string
  try {
    text = decodeURIComponent(path)
  } catch {
    return undefined
  }
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(text)) return undefined
  return new Uint8Array(Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64'))
}

const CRL_HEADERS = { 'content-type': 'application/pkix-crl', 'cache-control': 'max-age=60' }
const CERT_HEADERS = { 'content-type': 'application/pkix-cert', 'cache-control': 'max-age=300' }
const KEY_ID = /^[0-9a-fA-F]{2,128}$/

function keyIdParam(value: string): string {
  if (!KEY_ID.test(value))
    throw new CAError('ERR_NOT_FOUND', 'a CA is named by the hex of its subject key identifier')
  return value.toLowerCase()
}

/**
 * Revocation status and CA certificates, public (CONTRACT "Certificate profile additions"): the
 * CRL of every CA and every CA certificate at the URLs certificates name (RFC 5280 §4.2.1.13
 * cRLDistributionPoints, §4.2.2.1 caIssuers: DER, `application/pkix-crl` and
 * `application/pkix-cert`, RFC 2585 §3-4).
 */
export function statusRoutes(deps: StatusRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  app.get('/v1/crl', async (c) => c.body(Buffer.from(await deps.crl.get()), 200, CRL_HEADERS))
  app.get('/v1/ca/:file', (c) => {
    const file = c.req.param('file')
    const m = /^(.+)\.crt$/.exec(file)
    if (!m) throw new CAError('ERR_NOT_FOUND', `no CA file ${file}`)
    const ca = m[1] === 'intermediate' ? deps.ca.current : deps.ca.byKeyId(keyIdParam(m[1]!))
    if (!ca) throw new CAError('ERR_NOT_FOUND', `no CA certificate with key id ${m[1]}`)
    return c.body(Buffer.from(ca.view.der), 200, CERT_HEADERS)
  })
  app.get('/v1/ca/:keyId/crl', async (c) => {
    const der = await deps.crl.forCa(keyIdParam(c.req.param('keyId')))
    if (!der) throw new CAError('ERR_NOT_FOUND', `no CA with key id ${c.req.param('keyId')}`)
    return c.body(Buffer.from(der), 200, CRL_HEADERS)
  })
  app.post('/v1/ocsp', async (c) => {
    const der = new Uint8Array(await requestBody(c))
    return ocspResponse(await deps.ocsp.respond(der))
  })
  app.get('/v1/ocsp/*', async (c) => {
    // The raw path: '/' inside base64 may arrive unescaped (RFC 6960 A.1 asks to URL-encode it).
    const raw = new URL(c.req.url).pathname.slice('/v1/ocsp/'.length)
    const der = requestFromPath(raw)
    return ocspResponse(
      der === undefined
        ? { der: Uint8Array.of(0x30, 0x03, 0x0a, 0x01, 0x01) }
        : await deps.ocsp.respond(der),
    )
  })
  return app
}
