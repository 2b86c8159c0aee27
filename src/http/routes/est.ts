import type { Context } from 'hono'
import { Hono } from 'hono'
import type { Authority, CertificateRequest } from '../../ca/authority.js'
import { authenticateClientCertificate } from '../../ca/client-identity.js'
import type { CaMaterial } from '../../ca/material.js'
import type { Clock } from '../../clock.js'
import type { Config } from '../../config/load.js'
import type { Store } from '../../db/port.js'
import { CAError } from '../../errors.js'
import { csrAttributes } from '../../x509/csrattrs.js'
import { certsOnlyPkcs7 } from '../../x509/pkcs7.js'
import { limitFailedAuth, type AuthLimiter } from '../auth-limit.js'
import { requestText } from '../body.js'
import {
  authenticateEnrolment,
  challenges,
  joinTokenBasic,
  joinTokenBearer,
  oidcBearer,
  parseAuthorization,
} from '../enrol-auth.js'
import { peerAddress, requireClientCert, type AppEnv, type PeerSource } from '../mtls.js'

/*
 * EST (RFC 7030) as a second front door to the same domain calls as /v1/enroll and /v1/renew:
 * the same authentication of the join token, policy, transaction, audit event and refusals
 * (a refused request consumes nothing). Only the encodings differ: base64 DER PKCS#10 in,
 * base64 certs-only PKCS#7 out (RFC 8951 §3.2.2: base64 whatever the Content-Transfer-Encoding).
 */

export interface EstRouteDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly authority: Authority
  readonly peer: PeerSource
  readonly limiter: AuthLimiter
}

const EST = '/.well-known/est'
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/

/** Base64 in 64-character lines (what `openssl base64 -d` and EST clients read). */
function base64Lines(der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64')
  return `${(b64.match(/.{1,64}/g) ?? []).join('\n')}\n`
}

function estBody(c: Context, der: Uint8Array, type: string, cache: string): Response {
  return c.body(base64Lines(der), 200, {
    'content-type': type,
    'content-transfer-encoding': 'base64',
    'cache-control': cache,
  })
}

/** RFC 7030 §4.2.1: an application/pkcs10 body, base64 DER; line breaks and spaces allowed. */
async function estRequest(c: Context): Promise<CertificateRequest> {
  const type = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/pkcs10') {
    const got = type === '' ? 'no content type' : JSON.stringify(type.slice(0, 80))
    throw new CAError(
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      `send the CSR as application/pkcs10 (base64 DER, RFC 7030 §4.2.1), not ${got}`,
    )
  }
  const b64 = (await requestText(c)).replace(/[\r\n\t ]/g, '')
  if (b64 === '') throw new CAError('ERR_BAD_REQUEST', 'the body is empty: send a base64 DER CSR')
  if (b64.length % 4 !== 0 || !BASE64.test(b64)) {
    const hint = b64.startsWith('-----BEGIN') ? ' (base64 DER without PEM armour)' : ''
    throw new CAError('ERR_BAD_REQUEST', `the body is not base64${hint}: send a base64 DER CSR`)
  }
  return { csr: new Uint8Array(Buffer.from(b64, 'base64')) }
}

/** Reads the request once, whoever asks first (an authenticator, or the route). */
function once<T>(read: () => Promise<T>): () => Promise<T> {
  let value: Promise<T> | undefined
  return () => (value ??= read())
}

/** The EST routes under /.well-known/est. */
export function estRoutes(deps: EstRouteDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  // simplereenroll is a renewal: a retired generation asking for one is a clone signal, as on
  // /v1/renew (src/ca/generations.ts).
  const renewer = requireClientCert(deps, { use: 'renew' })
  const authenticators = [
    joinTokenBasic(deps.authority),
    joinTokenBearer(deps.authority),
    oidcBearer(deps.authority),
  ]
  const pkcs7 = 'application/pkcs7-mime; smime-type=certs-only'

  // RFC 9110 §11.6.1: every 401 names its schemes; EST clients (libest) send Basic credentials
  // only after a challenge, and some read only the first challenge of a header: one header
  // line per challenge, Basic first. (A web Response joins repeated headers into one line,
  // so the lines are set on node's response, which merges them into what hono writes.)
  app.use(`${EST}/*`, async (c, next) => {
    await next()
    if (c.res.status !== 401) return
    // RFC 6750 §3: the Bearer challenge names an error only when a bearer token was sent.
    const bearerSent = parseAuthorization(c.req.header('authorization'))?.scheme === 'bearer'
    const values = challenges(authenticators).map((v) =>
      bearerSent && v.startsWith('Bearer ') ? `${v}, error="invalid_token"` : v,
    )
    c.res.headers.delete('www-authenticate')
    const outgoing = c.env?.outgoing
    if (outgoing && !outgoing.headersSent) outgoing.setHeader('www-authenticate', values)
    else for (const v of values) c.res.headers.append('www-authenticate', v)
  })

  // RFC 7030 §4.1: the issuing CA and the root, as a certs-only PKCS#7.
  app.get(`${EST}/cacerts`, (c) =>
    estBody(
      c,
      certsOnlyPkcs7([deps.ca.intermediate.der, deps.ca.root.der]),
      'application/pkcs7-mime',
      'no-cache',
    ),
  )

  // RFC 7030 §4.2.1; the response holds only the issued certificate (§4.2.3).
  app.post(`${EST}/simpleenroll`, async (c) => {
    const request = once(() => estRequest(c))
    // Bearer and Basic credentials could be guessed: counted, and refused over the limit.
    const grant = await limitFailedAuth(
      deps.limiter,
      peerAddress(c) ?? undefined,
      () => authenticateEnrolment(c.req.header('authorization'), authenticators, { request }),
      { precheck: true },
    )
    const issued = await deps.authority.enroll(grant, await request(), { peer: peerAddress(c) })
    return estBody(c, certsOnlyPkcs7([issued.certificate.der]), pkcs7, 'no-store')
  })

  // RFC 7030 §4.2.2: over mTLS with the certificate being renewed, as /v1/renew.
  app.post(`${EST}/simplereenroll`, renewer, async (c) => {
    const issued = await deps.authority.renew(c.var.client, await estRequest(c), {
      peer: peerAddress(c),
    })
    return estBody(c, certsOnlyPkcs7([issued.certificate.der]), pkcs7, 'no-store')
  })

  // RFC 7030 §4.5, RFC 9908: what a CSR should carry. Unauthenticated, so generic; a caller
  // with a valid certificate of ours learns the exact URI SAN it renews with.
  app.get(`${EST}/csrattrs`, async (c) => {
    const spiffeId = await deps
      .peer(c)
      .then((peer) => authenticateClientCertificate(peer, deps))
      .then(
        (client) => (client.kind === 'workload' ? (client.spiffeId ?? undefined) : undefined),
        () => undefined,
      )
    const keyTypes = deps.config.certificates.allowedKeyTypes
    const der = csrAttributes({ keyTypes, ...(spiffeId !== undefined && { spiffeId }) })
    return estBody(c, der, 'application/csrattrs', 'no-store')
  })
  return app
}
