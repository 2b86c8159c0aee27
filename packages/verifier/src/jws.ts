import { createPublicKey, sign, verify, type JsonWebKey, type KeyObject } from 'node:crypto'
import type { JWK } from 'jose'

/**
 * `@certbound/verifier/jws`: compact JWS/JWT (RFC 7515, RFC 7519) signed and verified
 * synchronously with node:crypto and KeyObjects imported once. jose's WebCrypto path costs 3-4x
 * more per token (async key handling, CryptoKey round trips); this covers only the four
 * algorithms certbound signs with, and jose stays the independent checker in the tests (its
 * tokens verify here, ours verify there). The CA signs and introspects with it, the verifier
 * checks resource-server tokens with it.
 *
 * Internal but stable, like `./mtls`: the CA imports this subpath.
 *
 * @packageDocumentation
 */

export type JwsAlg = 'ES256' | 'ES384' | 'EdDSA' | 'RS256'

interface AlgSpec {
  /** node:crypto digest, null for pure EdDSA (RFC 8032). */
  readonly hash: 'sha256' | 'sha384' | null
  readonly keyType: 'ec' | 'ed25519' | 'rsa'
  /** EC curve as node names it (asymmetricKeyDetails.namedCurve). */
  readonly curve?: 'prime256v1' | 'secp384r1'
  /** JWK kty/crv that may carry the key (RFC 7518 §6, RFC 8037 §2). */
  readonly kty: 'EC' | 'OKP' | 'RSA'
  readonly crv?: 'P-256' | 'P-384' | 'Ed25519'
  /** Fixed signature length (ECDSA r||s in IEEE P1363 form, RFC 7518 §3.4; Ed25519), else 0. */
  readonly sigBytes: number
}

const ALGS: Readonly<Record<JwsAlg, AlgSpec>> = {
  ES256: {
    hash: 'sha256',
    keyType: 'ec',
    curve: 'prime256v1',
    kty: 'EC',
    crv: 'P-256',
    sigBytes: 64,
  },
  ES384: {
    hash: 'sha384',
    keyType: 'ec',
    curve: 'secp384r1',
    kty: 'EC',
    crv: 'P-384',
    sigBytes: 96,
  },
  EdDSA: { hash: null, keyType: 'ed25519', kty: 'OKP', crv: 'Ed25519', sigBytes: 64 },
  RS256: { hash: 'sha256', keyType: 'rsa', kty: 'RSA', sigBytes: 0 },
}

/** RFC 7518 §3.3: RSA keys below 2048 bits must not be used (jose refuses them too). */
const MIN_RSA_BITS = 2048
const B64URL = /^[A-Za-z0-9_-]*$/
// Invalid UTF-8 is refused, not replaced (as jose's strict decoder does).
const UTF8 = new TextDecoder('utf-8', { fatal: true })

function specFor(alg: unknown): AlgSpec | undefined {
  return typeof alg === 'string' && Object.hasOwn(ALGS, alg) ? ALGS[alg as JwsAlg] : undefined
}

/** Whether `key` is the kind of key `alg` uses (curve and RSA size included). */
function keyFits(spec: AlgSpec, key: KeyObject): boolean {
  if (key.asymmetricKeyType !== spec.keyType) return false
  const details = key.asymmetricKeyDetails ?? {}
  if (spec.curve !== undefined) return details.namedCurve === spec.curve
  if (spec.keyType === 'rsa') return (details.modulusLength ?? 0) >= MIN_RSA_BITS
  return true
}

function cryptoKey(spec: AlgSpec, key: KeyObject) {
  return spec.keyType === 'ec' ? { key, dsaEncoding: 'ieee-p1363' as const } : key
}

export interface JwsHeader {
  readonly alg: JwsAlg
  readonly typ?: string
  readonly kid?: string
}

/**
 * Signs a compact JWT. The header is serialised in the order given (alg, typ, kid as jose
 * writes them). Throws a TypeError when the key does not fit the algorithm.
 */
export function signJwt(header: JwsHeader, payload: object, privateKey: KeyObject): string {
  const spec = specFor(header.alg)
  if (!spec || privateKey.type !== 'private' || !keyFits(spec, privateKey))
    throw new TypeError(`the key does not fit ${String(header.alg)}`)
  const input = `${b64json(header)}.${b64json(payload)}`
  const signature = sign(spec.hash, Buffer.from(input), cryptoKey(spec, privateKey))
  return `${input}.${signature.toString('base64url')}`
}

function b64json(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}

/** A public key that may verify tokens: selected by `kid` and `alg`, as a JWKS lookup does. */
export interface VerificationKey {
  readonly kid: string | undefined
  readonly alg: JwsAlg
  readonly key: KeyObject
}

/**
 * Imports the usable signing keys of a JWK Set once (RFC 7517). Keys for other algorithms,
 * other uses or of another shape are left out, as jose's key-set selection would skip them;
 * so are keys without `alg` (certbound's JWKS always names it).
 */
export function importJwks(jwks: { keys: readonly JWK[] }): VerificationKey[] {
  const out: VerificationKey[] = []
  for (const jwk of jwks.keys) {
    const spec = specFor(jwk.alg)
    if (!spec || jwk.kty !== spec.kty || (spec.crv !== undefined && jwk.crv !== spec.crv)) continue
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    if (jwk.key_ops !== undefined && !jwk.key_ops.includes('verify')) continue
    let key: KeyObject
    try {
      key = createPublicKey({ key: publicMembers(jwk), format: 'jwk' })
    } catch {
      continue
    }
    if (keyFits(spec, key)) out.push({ kid: jwk.kid, alg: jwk.alg as JwsAlg, key })
  }
  return out
}

/** Only the public members: a JWKS that wrongly carried `d` must not yield a private key. */
function publicMembers(jwk: JWK): JsonWebKey {
  const { kty, crv, x, y, n, e } = jwk
  return { kty, crv, x, y, n, e }
}

export interface VerifyJwtOptions {
  /** Accepted `alg` values; anything else (`none`, HS256, ...) is refused before any key is used. */
  readonly algorithms: readonly string[]
  /** Required `iss` value. */
  readonly issuer?: string
  /** Accepted `aud` values: the token's `aud` (a string or an array) must name one of them. */
  readonly audience?: readonly string[]
  /** Required `typ` header, compared as media types (RFC 7515 §4.1.9: `application/` optional). */
  readonly typ?: string
  /** The clock's time for `exp` and `nbf`. */
  readonly currentDate: Date
  /** Leeway for `exp` and `nbf`, in seconds (default 0). */
  readonly clockToleranceSec?: number
  /** Claims that must be present (as jose's `requiredClaims`; `iss`/`aud` are when checked). */
  readonly requiredClaims?: readonly string[]
}

export type JwtVerification =
  | {
      readonly ok: true
      readonly payload: Record<string, unknown>
      readonly kid: string | undefined
    }
  | { readonly ok: false; readonly reason: string }

const fail = (reason: string): JwtVerification => ({ ok: false, reason })

/**
 * Verifies a compact JWT: the signature with one of `keys`, then the claims the way
 * `jose.jwtVerify` checks them for the same options. Returns a reason instead of throwing:
 * callers that only need a yes or no (introspection) avoid building an Error per token.
 */
export function verifyJwt(
  token: string,
  keys: readonly VerificationKey[],
  options: VerifyJwtOptions,
): JwtVerification {
  const d = decode(token, options)
  if (!d.ok) return d
  const { h, p, s, header, spec } = d
  const signature = Buffer.from(s, 'base64url')
  if (spec.sigBytes !== 0 && signature.length !== spec.sigBytes) return fail('bad signature')
  const kid = header.kid
  const candidates = keys.filter((k) => k.alg === header.alg && (kid === undefined || k.kid === kid))
  if (candidates.length === 0) return fail('no matching key')
  const input = Buffer.from(`${h}.${p}`)
  if (!candidates.some((k) => verify(spec.hash, input, cryptoKey(spec, k.key), signature)))
    return fail('bad signature')
  return claimsOf(header, p, options)
}

/**
 * Every check of {@link verifyJwt} but the signature's, for an issuer that has already
 * authenticated the token's bytes another way: certbound's introspection, which finds the
 * SHA-256 it recorded when it signed the token equal to the presented token's. Never for a token
 * that nothing but its own signature vouches for.
 */
export function checkJwtClaimsOfAuthenticatedToken(
  token: string,
  options: VerifyJwtOptions,
): JwtVerification {
  const d = decode(token, options)
  return d.ok ? claimsOf(d.header, d.p, options) : d
}

type Decoded =
  | {
      readonly ok: true
      readonly h: string
      readonly p: string
      readonly s: string
      readonly header: Record<string, unknown>
      readonly spec: AlgSpec
    }
  | { readonly ok: false; readonly reason: string }

/** The compact serialization and the protected header, before any key is used. */
function decode(token: string, options: VerifyJwtOptions): Decoded {
  const parts = token.split('.')
  if (parts.length !== 3) return { ok: false, reason: 'not a compact JWS' }
  const [h, p, s] = parts as [string, string, string]
  if (!isB64url(h) || !isB64url(p) || !isB64url(s)) return { ok: false, reason: 'not base64url' }
  const header = parseObject(h)
  if (!header) return { ok: false, reason: 'the protected header is not a JSON object' }
  // We never set `crit`: a token that asks for extensions we do not implement is refused.
  if (header.crit !== undefined) return { ok: false, reason: 'unsupported "crit" header' }
  const spec = specFor(header.alg)
  if (!spec || !options.algorithms.includes(header.alg as string))
    return { ok: false, reason: '"alg" not allowed' }
  return { ok: true, h, p, s, header, spec }
}

function claimsOf(
  header: Record<string, unknown>,
  p: string,
  options: VerifyJwtOptions,
): JwtVerification {
  const payload = parseObject(p)
  if (!payload) return fail('the claims set is not a JSON object')
  return checkClaims(header, payload, options)
}

/** Node's decoder skips stray characters and a dangling sixth bit group; refuse both first. */
function isB64url(segment: string): boolean {
  return segment.length % 4 !== 1 && B64URL.test(segment)
}

function parseObject(segment: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(UTF8.decode(Buffer.from(segment, 'base64url')))
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined
  } catch {
    return undefined
  }
}

/** `application/at+jwt` and `at+jwt` name the same type; the comparison ignores case. */
function normalizeTyp(value: string): string {
  const lower = value.toLowerCase()
  return value.includes('/') ? lower : `application/${lower}`
}

function checkClaims(
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
  options: VerifyJwtOptions,
): JwtVerification {
  if (options.typ !== undefined) {
    if (typeof header.typ !== 'string' || normalizeTyp(header.typ) !== normalizeTyp(options.typ))
      return fail('unexpected "typ"')
  }
  for (const claim of options.requiredClaims ?? []) {
    if (!(claim in payload)) return fail(`missing "${claim}"`)
  }
  if (options.issuer !== undefined && payload.iss !== options.issuer)
    return fail('unexpected "iss"')
  if (options.audience !== undefined && !audienceMatches(payload.aud, options.audience))
    return fail('unexpected "aud"')
  const now = Math.floor(options.currentDate.getTime() / 1000)
  const leeway = options.clockToleranceSec ?? 0
  for (const claim of ['iat', 'nbf', 'exp'] as const) {
    const v = payload[claim]
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v)))
      return fail(`"${claim}" must be a number`)
  }
  if (typeof payload.nbf === 'number' && payload.nbf > now + leeway)
    return fail('not yet valid ("nbf")')
  if (typeof payload.exp === 'number' && payload.exp <= now - leeway) return fail('expired ("exp")')
  return { ok: true, payload, kid: typeof header.kid === 'string' ? header.kid : undefined }
}

/** RFC 7519 §4.1.3: `aud` is a string or an array of strings; one must be ours. */
function audienceMatches(aud: unknown, accepted: readonly string[]): boolean {
  if (typeof aud === 'string') return accepted.includes(aud)
  return Array.isArray(aud) && aud.some((a) => typeof a === 'string' && accepted.includes(a))
}
