import { Hono } from 'hono'
import type { CrlPublisher } from '../../ca/crl.js'
import type { CaMaterial } from '../../ca/material.js'
import { CAError } from '../../errors.js'
import type { AppEnv } from '../mtls.js'

export interface StatusRouteDeps {
  readonly ca: CaMaterial
  readonly crl: CrlPublisher
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
  return app
}
