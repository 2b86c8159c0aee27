import type { X509Certificate } from 'node:crypto'
import type { Context, MiddlewareHandler } from 'hono'
import { VerifyError } from './errors.js'
import type { VerifierOptions } from './options.js'
import { createCertificateResolver, normalizeAddress } from './mtls/peer.js'
import type { CertificateSource, ForwardingOptions } from './mtls/peer.js'
import { createVerifier } from './verify-access-token.js'
import type { BoundTokenClaims, Verifier } from './verify-access-token.js'

export type { ForwardedFormat } from './mtls/forwarded.js'
export type { CertificateSource, ForwardingOptions } from './mtls/peer.js'

/** What {@link certboundAuth} leaves for handlers in `c.get('certbound')`. */
export interface CertboundContext {
  claims: BoundTokenClaims
  /** The certificate the token is bound to, as presented on this request. */
  certificate: X509Certificate
  /** base64url SHA-256 of `certificate` (= `claims.cnf["x5t#S256"]`). */
  thumbprint: string
  /** `tls` from the socket, `forwarded` from a trusted proxy's header. */
  certificateSource: CertificateSource
}

declare module 'hono' {
  interface ContextVariableMap {
    certbound: CertboundContext
  }
}

/** Logger for refused forwarded certificates (pino-compatible; `console` works too). */
export interface VerifierLogger {
  warn(obj: Record<string, unknown>, msg?: string): void
}

// One JSON line per event on stderr, in pino's shape (level 40 = warn), so log pipelines that
// read the CA's logs read these too — without making every resource server install pino.
const stderrLogger: VerifierLogger = {
  warn(obj, msg) {
    const line = { level: 40, time: Date.now(), name: 'certbound-verifier', ...obj, msg }
    process.stderr.write(`${JSON.stringify(line)}\n`)
  },
}

/** Options of {@link certboundAuth}. */
export interface CertboundAuthOptions extends ForwardingOptions {
  /** A verifier from `createVerifier`, or its options (a verifier is then created once). */
  verifier: Verifier | VerifierOptions
  /** Every one of these must appear in the token's `scope`, else 403 `insufficient_scope`. */
  requiredScopes?: readonly string[]
  /** `realm` of the `WWW-Authenticate` challenge. */
  realm?: string
  /** Where spoofing attempts are logged. Default: JSON lines on stderr named `certbound-verifier`. */
  logger?: VerifierLogger
}

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i

function quoted(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]|["\\]/g, '')}"`
}

interface Challenge {
  realm?: string | undefined
  scope?: readonly string[]
}

// RFC 6750 §3
function challenge(c: Context, status: 401 | 403, opts: Challenge, error?: VerifyError) {
  const params = opts.realm === undefined ? [] : [`realm=${quoted(opts.realm)}`]
  const code = error?.code === 'ERR_INSUFFICIENT_SCOPE' ? 'insufficient_scope' : 'invalid_token'
  if (error !== undefined) {
    params.push(`error="${code}"`, `error_description=${quoted(error.message)}`)
    if (code === 'insufficient_scope') params.push(`scope=${quoted(opts.scope?.join(' ') ?? '')}`)
  }
  c.header('WWW-Authenticate', params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`)
  c.header('Cache-Control', 'no-store')
  if (error === undefined) return c.body(null, status)
  return c.json({ error: code, error_description: error.message }, status)
}

function refuse(c: Context, err: VerifyError, opts: Challenge) {
  if (err.code === 'ERR_VERIFIER_UNAVAILABLE') {
    c.header('Retry-After', '1')
    return c.json({ error: 'temporarily_unavailable', error_description: err.message }, 503)
  }
  return challenge(c, err.code === 'ERR_INSUFFICIENT_SCOPE' ? 403 : 401, opts, err)
}

/**
 * Hono middleware for resource servers (on `@hono/node-server` with an HTTPS server that asks
 * for client certificates): takes the bearer token from `Authorization`, the certificate from
 * the TLS socket — or from a trusted proxy's forwarding header — and verifies the token and its
 * binding to that certificate. On failure it answers `401` with
 * `WWW-Authenticate: Bearer error="invalid_token"` (RFC 6750 §3, RFC 8705 §3); there is no path
 * on which a token is accepted without its certificate. On success `c.get('certbound')` holds
 * the claims and the certificate.
 *
 * A forwarded certificate header from a peer outside `trustedProxies` (empty by default) is
 * never trusted: the request is refused and the attempt logged. A forwarded certificate is
 * validated exactly like one from the socket.
 *
 * @example
 * ```ts
 * import https from 'node:https'
 * import { Hono } from 'hono'
 * import { serve } from '@hono/node-server'
 * import { certboundAuth } from '@certbound/verifier/hono'
 *
 * const app = new Hono()
 * app.use('/api/*', certboundAuth({
 *   verifier: { issuer, audience: issuer, trustAnchors: bundlePem, intermediates },
 *   trustedProxies: ['10.0.0.0/8'], // only if a proxy terminates TLS and forwards the cert
 * }))
 * app.get('/api/whoami', (c) => c.json({ sub: c.get('certbound').claims.sub }))
 * serve({
 *   fetch: app.fetch,
 *   port: 8444,
 *   createServer: https.createServer,
 *   serverOptions: { cert, key, ca: bundlePem, requestCert: true, rejectUnauthorized: false },
 * })
 * ```
 */
export function certboundAuth(options: CertboundAuthOptions): MiddlewareHandler {
  const given = options.verifier
  const verifier =
    typeof (given as Verifier).verify === 'function'
      ? (given as Verifier)
      : createVerifier(given as VerifierOptions)
  const resolve = createCertificateResolver(options)
  const logger = options.logger ?? stderrLogger
  const { requiredScopes = [] } = options
  const opts: Challenge = { realm: options.realm, scope: requiredScopes }

  return async (c, next) => {
    const socket = (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)
      ?.incoming?.socket
    const peer = normalizeAddress(socket?.remoteAddress)
    const presented = resolve((name) => c.req.header(name), socket, peer)
    if (!presented.ok) {
      const event = presented.spoof ? 'forwarded_cert_spoofing' : 'forwarded_cert_refused'
      logger.warn(
        {
          event: `certbound.${event}`,
          peer,
          headers: presented.headers,
          method: c.req.method,
          path: c.req.path,
        },
        presented.error.message,
      )
    }
    const token = BEARER.exec(c.req.header('authorization') ?? '')?.[1]
    if (token === undefined) {
      return /^bearer\b/i.test(c.req.header('authorization') ?? '')
        ? challenge(c, 401, opts, new VerifyError('ERR_TOKEN_INVALID', 'malformed bearer token'))
        : challenge(c, 401, opts)
    }
    try {
      if (!presented.ok) throw presented.error
      const result = await verifier.verify(token, presented.certificate, presented.chain)
      const scopes = new Set((result.claims.scope ?? '').split(' '))
      const missing = requiredScopes.filter((s) => !scopes.has(s))
      if (missing.length > 0) {
        throw new VerifyError('ERR_INSUFFICIENT_SCOPE', `token lacks scope ${missing.join(' ')}`)
      }
      const { claims, certificate, thumbprint } = result
      c.set('certbound', { claims, certificate, thumbprint, certificateSource: presented.source })
    } catch (err) {
      if (err instanceof VerifyError) return refuse(c, err, opts)
      throw err
    }
    await next()
  }
}
