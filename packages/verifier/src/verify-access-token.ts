import { timingSafeEqual } from 'node:crypto'
import type { X509Certificate } from 'node:crypto'
import type { JWTHeaderParameters, JWTPayload } from 'jose'
import { Agent } from 'undici'
import { CertificateChecks } from './certificate-cache.js'
import { CaServerTrust } from './mtls/ca-server-trust.js'
import { VerifyError } from './errors.js'
import { createIntrospector } from './introspection.js'
import type { Introspector } from './introspection.js'
import { createJwksResolver, type JwksResolver } from './jwks.js'
import { verifyJwt } from './jws.js'
import { resolveOptions } from './options.js'
import type { ResolvedOptions, VerifierOptions } from './options.js'
import { toCertificate } from './mtls/pem.js'
import type { CertificateInput } from './mtls/pem.js'

const MAX_TOKEN_LENGTH = 16 * 1024
const MAX_LEARNED_INTERMEDIATES = 16
const REQUIRED_CLAIMS = ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id', 'cnf']

/** Claims of a certbound access token (RFC 9068 + RFC 8705 `cnf`). */
export interface BoundTokenClaims extends JWTPayload {
  iss: string
  /** The workload's SPIFFE ID. */
  sub: string
  aud: string | string[]
  client_id: string
  iat: number
  exp: number
  jti: string
  scope?: string
  cnf: { 'x5t#S256': string }
}

/** A token that passed every check, with the certificate it is bound to. */
export interface VerifiedToken {
  claims: BoundTokenClaims
  header: JWTHeaderParameters
  /** The presented certificate, validated against the trust anchors. */
  certificate: X509Certificate
  /** base64url SHA-256 of the certificate's DER; equals `claims.cnf["x5t#S256"]`. */
  thumbprint: string
}

/** A configured verifier: keeps the JWKS cache, HTTPS pools and introspection cache. */
export interface Verifier {
  /**
   * Verifies `token` and its binding to `certificate`, the certificate actually presented
   * (from the TLS socket, or from a trusted proxy). `chain` may carry intermediates the peer
   * sent; they only help build the path to the trust anchors.
   *
   * @throws {VerifyError}
   */
  verify(
    token: string,
    certificate: CertificateInput | null | undefined,
    chain?: readonly CertificateInput[],
  ): Promise<VerifiedToken>
  /** Closes the HTTPS connection pools. */
  close(): Promise<void>
}

function invalid(message: string, cause?: unknown): VerifyError {
  return new VerifyError('ERR_TOKEN_INVALID', message, { cause })
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

function checkClaims(payload: JWTPayload): BoundTokenClaims {
  const { sub, client_id: clientId, jti, scope, cnf } = payload
  if (typeof sub !== 'string' || !sub.startsWith('spiffe://'))
    throw invalid('"sub" is not a SPIFFE ID')
  if (typeof clientId !== 'string' || clientId === '') throw invalid('"client_id" is missing')
  if (typeof jti !== 'string' || jti === '') throw invalid('"jti" is missing')
  if (scope !== undefined && typeof scope !== 'string') throw invalid('"scope" is not a string')
  const x5t =
    typeof cnf === 'object' && cnf !== null
      ? (cnf as Record<string, unknown>)['x5t#S256']
      : undefined
  // RFC 8705 §3.1: a certificate-bound token carries cnf["x5t#S256"]; without it, refuse.
  if (typeof x5t !== 'string' || x5t === '') throw invalid('"cnf" has no "x5t#S256"')
  return payload as BoundTokenClaims
}

const B64URL_SEGMENT = /^[A-Za-z0-9_-]+$/

/** The protected header, read to pick the key (the signature over it is checked after). */
function protectedHeader(token: string): JWTHeaderParameters {
  const dot = token.indexOf('.')
  const segment = dot > 0 ? token.slice(0, dot) : ''
  let header: unknown
  try {
    if (!B64URL_SEGMENT.test(segment)) throw new Error('not base64url')
    header = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'))
  } catch (cause) {
    throw invalid('the token is not a compact JWS', cause)
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw invalid('the token header is not a JSON object')
  return header as JWTHeaderParameters
}

/**
 * The JWS signature with the issuer's keys (node:crypto, KeyObjects imported once per key set)
 * and the claims, as jose.jwtVerify checks them for these options: `alg` allow-list first,
 * `typ: at+jwt` (RFC 9068 §4), required claims, `iss`, `aud`, `exp`/`nbf` with the leeway.
 */
async function verifyJws(token: string, jwks: JwksResolver, opts: ResolvedOptions, now: Date) {
  const header = protectedHeader(token)
  if (typeof header.alg !== 'string' || !opts.algorithms.includes(header.alg))
    throw invalid('"alg" (Algorithm) Header Parameter value not allowed')
  const keys = await jwks.keys(header)
  const result = verifyJwt(token, keys, {
    algorithms: opts.algorithms,
    issuer: opts.issuer,
    audience: opts.audience,
    typ: 'at+jwt',
    currentDate: now,
    clockToleranceSec: opts.clockToleranceSec,
    requiredClaims: REQUIRED_CLAIMS,
  })
  if (!result.ok)
    throw invalid(result.reason === 'expired ("exp")' ? 'token has expired' : result.reason)
  return { payload: result.payload as JWTPayload, protectedHeader: header }
}

function presentedCertificate(
  input: CertificateInput | null | undefined,
  chain: readonly CertificateInput[],
): { leaf: X509Certificate; extra: X509Certificate[] } {
  if (input === null || input === undefined) {
    throw new VerifyError('ERR_CLIENT_CERT_REQUIRED', 'no client certificate was presented')
  }
  const leaf = toCertificate(input)
  if (leaf === undefined) {
    throw new VerifyError('ERR_CLIENT_CERT_REQUIRED', 'client certificate does not parse')
  }
  const extra = chain.map(toCertificate).filter((c): c is X509Certificate => c !== undefined)
  return { leaf, extra }
}

/**
 * Creates a verifier for certificate-bound access tokens (RFC 8705, RFC 9068). Create it once
 * and reuse it: it caches the issuer's JWKS (refetched on an unknown `kid`, at most once per
 * cooldown) and, in online mode, introspection answers for a few seconds. There is no option
 * that skips the certificate binding.
 *
 * @throws {TypeError} on invalid options (checked here, not at the first request).
 * @example
 * ```ts
 * import { readFileSync } from 'node:fs'
 * import { createVerifier } from '@certbound/verifier'
 *
 * const verifier = createVerifier({
 *   issuer: 'https://ca.example.org:8443',
 *   audience: 'https://ca.example.org:8443',
 *   trustAnchors: readFileSync('bundle.pem', 'utf8'),
 *   intermediates: readFileSync('intermediate.pem', 'utf8'),
 * })
 * const { claims } = await verifier.verify(token, tlsSocket.getPeerX509Certificate())
 * console.log(claims.sub) // spiffe://example.org/billing
 * ```
 */
export function createVerifier(options: VerifierOptions): Verifier {
  const opts = resolveOptions(options)
  // The JWKS and introspection come only from the CA server: its EKU, not revoked per its CRL.
  const trust = new CaServerTrust({ ca: opts.trustAnchorsPem })
  const agent = new Agent({ connect: trust.connector() })
  const jwks = createJwksResolver(opts.jwksUri, agent, options.jwks)
  const introspector: Introspector | undefined =
    opts.introspectionEndpoint === undefined
      ? undefined
      : createIntrospector(opts.introspectionEndpoint, trust, options.introspection!)

  // Intermediates seen on a validated path. A resumed TLS session only keeps the peer's leaf,
  // so the intermediate a client sent on its first handshake is remembered for later ones.
  const learned = new Map<string, X509Certificate>()
  const remember = (path: readonly X509Certificate[]) => {
    for (const ca of path) {
      if (learned.size >= MAX_LEARNED_INTERMEDIATES) return
      if (!opts.store.intermediates.includes(ca)) learned.set(ca.fingerprint256, ca)
    }
  }
  const certificates = new CertificateChecks(opts.store, remember)

  return {
    async verify(token, certificate, chain = []) {
      if (typeof token !== 'string' || token === '') throw invalid('no access token')
      if (token.length > MAX_TOKEN_LENGTH) throw invalid('access token is too long')
      const { leaf, extra } = presentedCertificate(certificate, chain)
      const now = opts.clock.now()
      const checked = certificates.check(
        leaf,
        learned.size === 0 ? extra : [...extra, ...learned.values()],
        now,
      )
      const { payload, protectedHeader } = await verifyJws(token, jwks, opts, now)
      const claims = checkClaims(payload)
      const thumbprint = checked.thumbprint
      // RFC 8705 §3: the token is accepted only with the certificate it is bound to.
      if (!sameString(claims.cnf['x5t#S256'], thumbprint)) {
        throw new VerifyError(
          'ERR_TOKEN_BINDING_MISMATCH',
          'token is bound to another certificate than the one presented',
        )
      }
      // The certificate must also name the token's subject: a forged token (stolen signing
      // key) then still needs a certificate of this CA for that identity.
      if (!checked.names.has(`URI:${claims.sub}`)) {
        throw new VerifyError(
          'ERR_TOKEN_BINDING_MISMATCH',
          'the certificate does not name the token subject',
        )
      }
      await introspector?.check(token, claims, thumbprint)
      return { claims, header: protectedHeader, certificate: leaf, thumbprint }
    },
    async close() {
      jwks.close()
      await Promise.all([agent.close(), introspector?.close()])
      await trust.close()
    },
  }
}

const implicit = new WeakMap<VerifierOptions, Verifier>()

function isVerifier(value: VerifierOptions | Verifier): value is Verifier {
  return typeof (value as Verifier).verify === 'function'
}

/**
 * Verifies a certificate-bound access token against the certificate the client presented:
 * JWS signature with the issuer's JWKS (HTTPS, pinned to `trustAnchors`), `typ: at+jwt`, the
 * `alg` allow-list, `iss`, `aud`, `exp`/`nbf` with a small leeway, the certificate's chain and
 * validity window, and `cnf["x5t#S256"]` against the SHA-256 of that certificate. Without a
 * certificate the token is refused. In online mode the issuer is also asked (RFC 7662).
 *
 * `options` is either a {@link Verifier} or its options; options objects get one verifier each
 * (kept in a WeakMap), so pass the same object every time to keep the JWKS cache.
 *
 * @throws {VerifyError} with `code` `ERR_TOKEN_INVALID`, `ERR_TOKEN_BINDING_MISMATCH`,
 *   `ERR_CLIENT_CERT_REQUIRED` or `ERR_VERIFIER_UNAVAILABLE`.
 * @example
 * ```ts
 * import { verifyBoundToken, VerifyError } from '@certbound/verifier'
 *
 * const options = { issuer, audience: issuer, trustAnchors: bundlePem }
 * https.createServer({ cert, key, ca: bundlePem, requestCert: true }, async (req, res) => {
 *   const token = req.headers.authorization?.replace(/^Bearer /i, '') ?? ''
 *   const peer = (req.socket as TLSSocket).getPeerX509Certificate()
 *   try {
 *     const { claims } = await verifyBoundToken(token, peer, options)
 *     res.end(`hello ${claims.sub}`)
 *   } catch (err) {
 *     if (!(err instanceof VerifyError)) throw err
 *     res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end()
 *   }
 * })
 * ```
 */
export async function verifyBoundToken(
  token: string,
  peerCertificate: CertificateInput | null | undefined,
  options: VerifierOptions | Verifier,
): Promise<VerifiedToken> {
  let verifier: Verifier
  if (isVerifier(options)) verifier = options
  else {
    verifier = implicit.get(options) ?? createVerifier(options)
    implicit.set(options, verifier)
  }
  return verifier.verify(token, peerCertificate)
}
