import { createPrivateKey, randomUUID, X509Certificate } from 'node:crypto'
import { createServer } from 'node:https'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { SignJWT, decodeJwt, exportJWK, generateKeyPair } from 'jose'
import type { CryptoKey, JWK, JWTPayload } from 'jose'
import { buildCrl } from '../../../src/x509/crl.js'
import type { Issued, TestPki } from './pki.js'

export interface SigningKey {
  kid: string
  alg: string
  privateKey: CryptoKey
  publicJwk: JWK
}

/**
 * A fixture issuer over real HTTPS: serves a JWKS and an RFC 7662 introspection stub (mTLS
 * required) that answers from an in-test revoked set. Counts requests to each.
 */
export interface FixtureIssuer {
  url: string
  key: SigningKey
  jwksFetches: number
  introspections: number
  /** Requests per path, including ones answered 404. */
  hits: Map<string, number>
  /** Thumbprints of revoked certificates: tokens bound to them are inactive. */
  revoked: Set<string>
  /** Creates a key; `publish` adds it to the served JWKS. */
  createKey(publish: boolean, alg?: string): Promise<SigningKey>
  /** Mints an access token bound to `holder`, with claim and header overrides. */
  mint(holder: Issued, opts?: MintOptions): Promise<string>
  close(): Promise<void>
}

export interface MintOptions {
  claims?: JWTPayload
  header?: Record<string, unknown>
  key?: SigningKey
  /** `exp` relative to now, in seconds (default 300). */
  expiresIn?: number
}

function body(req: import('node:http').IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => (data += chunk))
    req.on('end', () => resolve(data))
    req.on('error', reject)
  })
}

export async function startIssuer(pki: TestPki): Promise<FixtureIssuer> {
  const published: SigningKey[] = []
  const createKey = async (publish: boolean, alg = 'ES256'): Promise<SigningKey> => {
    const { privateKey, publicKey } = await generateKeyPair(alg)
    const kid = randomUUID()
    const key = {
      kid,
      alg,
      privateKey,
      publicJwk: { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' },
    }
    if (publish) published.push(key)
    return key
  }
  const key = await createKey(true)
  // The CA's CRL (empty), which verifiers check the server certificate against.
  const ca = {
    certDer: new X509Certificate(pki.intermediatePem).raw,
    privateKey: createPrivateKey(pki.intermediate.keyPem),
  }
  let crlNumber = 0n
  const crl = () => {
    const now = Date.now()
    return buildCrl({
      issuer: ca,
      crlNumber: ++crlNumber,
      thisUpdate: new Date(now - 1000),
      nextUpdate: new Date(now + 3_600_000),
      revoked: [],
    })
  }

  const server: Server = createServer(
    {
      cert: pki.server.chainPem,
      key: pki.server.keyPem,
      ca: pki.rootPem,
      requestCert: true,
      rejectUnauthorized: false,
    },
    (req, res) => {
      const json = (status: number, value: unknown) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value))
      issuer.hits.set(req.url ?? '', (issuer.hits.get(req.url ?? '') ?? 0) + 1)
      if (req.method === 'GET' && req.url === '/.well-known/jwks.json') {
        issuer.jwksFetches++
        return json(200, { keys: published.map((k) => k.publicJwk) })
      }
      // The CRL by the issuing CA's key id, where clients look for it (and the current one's).
      if (req.method === 'GET' && /^\/v1\/(ca\/[0-9a-f]+\/)?crl$/.test(req.url ?? '')) {
        return res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(crl())
      }
      if (req.method === 'POST' && req.url === '/oauth/introspect') {
        if (!(req.socket as TLSSocket).authorized) return json(401, { error: 'invalid_client' })
        issuer.introspections++
        void body(req).then((text) => {
          const token = new URLSearchParams(text).get('token') ?? ''
          const claims = decodeJwt(token)
          const x5t = (claims.cnf as Record<string, string>)['x5t#S256']!
          const active = !issuer.revoked.has(x5t) && (claims.exp ?? 0) > Date.now() / 1000
          const { sub, client_id, exp, iat, cnf } = claims
          json(200, active ? { active, sub, client_id, exp, iat, cnf } : { active })
        })
        return
      }
      json(404, {})
    },
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  const issuer: FixtureIssuer = {
    url,
    key,
    jwksFetches: 0,
    introspections: 0,
    hits: new Map(),
    revoked: new Set(),
    createKey,
    async mint(holder, opts = {}) {
      const k = opts.key ?? key
      const now = Math.floor(Date.now() / 1000)
      // Overrides come last; a claim set to `undefined` is left out of the token.
      return new SignJWT({
        iss: url,
        sub: holder.spiffeId,
        aud: url,
        client_id: holder.spiffeId,
        iat: now,
        exp: now + (opts.expiresIn ?? 300),
        jti: randomUUID(),
        scope: 'read',
        cnf: { 'x5t#S256': holder.thumbprint },
        ...opts.claims,
      })
        .setProtectedHeader({ alg: k.alg, typ: 'at+jwt', kid: k.kid, ...opts.header })
        .sign(k.privateKey)
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
  return issuer
}
