import type { X509Certificate } from 'node:crypto'
import type { TrustStore } from './mtls/chain.js'
import type { IntrospectionOptions } from './introspection.js'
import type { JwksCacheOptions } from './jwks.js'
import { parsePemBundle } from './mtls/pem.js'

/** Signature algorithms the CA may use (contract); the default allow-list. */
export const DEFAULT_ALGORITHMS = ['ES256', 'ES384', 'EdDSA', 'RS256'] as const

// Asymmetric JWS algorithms only: never `none`, never HS* (RFC 8725 §3.1, §3.2).
const ALLOWED_ALGORITHMS = new Set([
  ...DEFAULT_ALGORITHMS,
  ...['ES512', 'Ed25519', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'],
])

const MAX_CLOCK_TOLERANCE_SEC = 300

/** Options of {@link createVerifier} and {@link verifyBoundToken}. */
export interface VerifierOptions {
  /** The CA's `tokens.issuer`; the token's `iss` must equal it exactly. */
  issuer: string
  /** Accepted `aud` value(s) (the CA's `tokens.audience`, which defaults to the issuer). */
  audience: string | readonly string[]
  /**
   * PEM of the trust anchor(s) (the CA's `ca/bundle.pem`). Pinned for the JWKS and introspection
   * HTTPS requests, and the root of every client-certificate chain.
   */
  trustAnchors: string
  /**
   * PEM of intermediate CA certificates (the CA's `ca/intermediate.pem`). Needed to validate a
   * leaf whose presenter did not send its chain, e.g. one forwarded by a proxy.
   */
  intermediates?: string
  /** Default `<issuer>/.well-known/jwks.json`. Must be `https:`. */
  jwksUri?: string
  /** JWKS caching and refetch rate limit. */
  jwks?: JwksCacheOptions
  /** Accepted `alg` values; default `ES256`, `ES384`, `EdDSA`, `RS256`. Asymmetric only. */
  algorithms?: readonly string[]
  /** Leeway for `exp`/`nbf`, in seconds. Default 30, at most 300. */
  clockToleranceSec?: number
  /** Turns on online mode: every otherwise valid token is checked at the issuer (cached). */
  introspection?: IntrospectionOptions
  /** Time source for token and certificate windows. Default: the system clock. */
  clock?: { now(): Date }
}

/** Options after validation, with defaults applied. */
export interface ResolvedOptions {
  readonly issuer: string
  readonly audience: string[]
  readonly trustAnchorsPem: string
  readonly store: TrustStore
  readonly jwksUri: URL
  readonly algorithms: string[]
  readonly clockToleranceSec: number
  readonly introspectionEndpoint: string | undefined
  readonly clock: { now(): Date }
}

function httpsUrl(value: string, what: string): URL {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new TypeError(`${what} is not a URL`)
  }
  if (url.protocol !== 'https:') throw new TypeError(`${what} must be an https: URL`)
  return url
}

function anchorsOf(pem: unknown): X509Certificate[] {
  if (typeof pem !== 'string') throw new TypeError('"trustAnchors" must be PEM text')
  const anchors = parsePemBundle(pem, '"trustAnchors"')
  if (anchors.length === 0) throw new TypeError('"trustAnchors" holds no certificate')
  if (anchors.some((a) => !a.ca)) throw new TypeError('"trustAnchors" holds a non-CA certificate')
  return anchors
}

function algorithmsOf(list: readonly string[] | undefined): string[] {
  const algorithms = [...(list ?? DEFAULT_ALGORITHMS)]
  if (algorithms.length === 0) throw new TypeError('"algorithms" must not be empty')
  for (const alg of algorithms) {
    if (!ALLOWED_ALGORITHMS.has(alg)) throw new TypeError(`"algorithms" may not contain ${alg}`)
  }
  return algorithms
}

/** Validates options once, failing fast with `TypeError`. */
export function resolveOptions(options: VerifierOptions): ResolvedOptions {
  const { issuer, audience } = options
  if (typeof issuer !== 'string' || issuer === '') throw new TypeError('"issuer" is required')
  const audiences = typeof audience === 'string' ? [audience] : [...(audience ?? [])]
  if (audiences.length === 0 || audiences.some((a) => typeof a !== 'string' || a === '')) {
    throw new TypeError('"audience" is required')
  }
  const tolerance = options.clockToleranceSec ?? 30
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_SEC) {
    throw new TypeError(`"clockToleranceSec" must be between 0 and ${MAX_CLOCK_TOLERANCE_SEC}`)
  }
  const base = issuer.replace(/\/+$/, '')
  const intermediates = options.intermediates ?? ''
  const introspection = options.introspection
  return {
    issuer,
    audience: audiences,
    trustAnchorsPem: options.trustAnchors,
    store: {
      anchors: anchorsOf(options.trustAnchors),
      intermediates: parsePemBundle(intermediates, '"intermediates"').filter((c) => c.ca),
    },
    jwksUri: httpsUrl(options.jwksUri ?? `${base}/.well-known/jwks.json`, '"jwksUri"'),
    algorithms: algorithmsOf(options.algorithms),
    clockToleranceSec: tolerance,
    introspectionEndpoint:
      introspection === undefined
        ? undefined
        : httpsUrl(introspection.endpoint ?? `${base}/oauth/introspect`, 'introspection "endpoint"')
            .href,
    clock: options.clock ?? { now: () => new Date() },
  }
}
