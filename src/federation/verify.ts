import { createHash } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose'
import type { OidcIssuerConfig } from '../config/load.js'
import { isCAError } from '../errors.js'
import { oidcRefusal } from './errors.js'
import { ASYMMETRIC_ALGS, type IssuerKeys } from './issuer-keys.js'

/** Seconds of clock skew allowed on `exp`, `nbf` and `iat` (an issuer's clock is not ours). */
export const CLOCK_TOLERANCE_S = 60
const MAX_TOKEN_CHARS = 16_384
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/

/**
 * Whether a bearer credential is shaped like a JWT (three base64url parts, RFC 7515 §7.1)
 * rather than a join token (one base64url string): how /v1/enroll and EST tell them apart. An
 * empty third part (`alg: none`) still counts, so that it is refused as an OIDC token.
 */
export function isJwtShaped(credential: string): boolean {
  return credential.length <= MAX_TOKEN_CHARS && COMPACT_JWS.test(credential)
}

/** A token that passed every check of its issuer. */
export interface VerifiedIdentityToken {
  readonly payload: JWTPayload & { readonly sub: string; readonly exp: number }
  readonly kid: string | undefined
  readonly alg: string
  /** SHA-256 (hex) of the signed `header.payload`: fixed by the signature, unlike the JWS. */
  readonly replayKey: string
}

/**
 * Verifies an OIDC identity token for one configured issuer: an asymmetric `alg`, `iss` (the
 * exact issuer, checked before any key is fetched), the signature by the issuer's JWKS, `aud`,
 * `exp`, `nbf`, `iat` present and at most `maxTokenAgeMs` old, `sub` present. Throws the
 * refusal of the first check that fails; never echoes the token.
 */
export async function verifyIdentityToken(
  token: string,
  issuer: OidcIssuerConfig,
  keys: IssuerKeys,
  opts: { readonly now: Date; readonly maxTokenAgeMs: number },
): Promise<VerifiedIdentityToken> {
  if (!isJwtShaped(token)) throw oidcRefusal('format', 'not a compact JWS (three base64url parts)')
  const alg = headerAlg(token)
  let claimed: JWTPayload
  try {
    claimed = decodeJwt(token)
  } catch {
    throw oidcRefusal('format', 'the payload is not a JSON object')
  }
  if (claimed.iss !== issuer.issuer) {
    throw oidcRefusal(
      'iss',
      `the token's issuer is not "${issuer.issuer}" (issuer "${issuer.name}")`,
    )
  }
  let verified: Awaited<ReturnType<typeof jwtVerify>>
  try {
    verified = await jwtVerify(token, (header) => keys.keyFor(header), {
      algorithms: [...ASYMMETRIC_ALGS],
      issuer: issuer.issuer,
      audience: issuer.audience,
      currentDate: opts.now,
      clockTolerance: CLOCK_TOLERANCE_S,
      maxTokenAge: Math.floor(opts.maxTokenAgeMs / 1000),
      requiredClaims: ['exp', 'iat', 'sub'],
    })
  } catch (e) {
    throw refusalOf(e, issuer)
  }
  const { payload, protectedHeader } = verified
  if (typeof payload.sub !== 'string' || payload.sub === '') {
    throw oidcRefusal('sub', 'the token has no "sub"')
  }
  const [head, body] = token.split('.')
  return {
    payload: payload as VerifiedIdentityToken['payload'],
    kid: protectedHeader.kid,
    alg,
    replayKey: createHash('sha256').update(`${head}.${body}`).digest('hex'),
  }
}

function headerAlg(token: string): string {
  let alg: unknown
  try {
    alg = decodeProtectedHeader(token).alg
  } catch {
    throw oidcRefusal('format', 'the protected header is not a JSON object')
  }
  if (typeof alg !== 'string' || !(ASYMMETRIC_ALGS as readonly string[]).includes(alg)) {
    const shown = typeof alg === 'string' ? JSON.stringify(alg.slice(0, 20)) : 'missing'
    throw oidcRefusal(
      'alg',
      `alg ${shown} is not allowed: only asymmetric algorithms (${ASYMMETRIC_ALGS.join(', ')})`,
    )
  }
  return alg
}

/** jose's error → the check it stands for. */
function refusalOf(e: unknown, issuer: OidcIssuerConfig): Error {
  if (isCAError(e)) return e
  if (e instanceof errors.JWTExpired && e.claim === 'exp') {
    return oidcRefusal('exp', 'the token has expired')
  }
  // jose reports an `iat` older than maxTokenAge as JWTExpired, one in the future as a claim failure.
  if (e instanceof errors.JWTExpired || e instanceof errors.JWTClaimValidationFailed) {
    switch (e.claim) {
      case 'iss':
        return oidcRefusal('iss', `the token's issuer is not "${issuer.issuer}"`)
      case 'aud':
        return oidcRefusal('aud', `the token's audience does not include "${issuer.audience}"`)
      case 'iat':
        return oidcRefusal(
          'iat',
          e.reason === 'missing'
            ? 'the token has no "iat"'
            : e.message.includes('should be in the past')
              ? 'the token\'s "iat" is in the future'
              : e.reason === 'check_failed'
                ? 'the token was issued longer ago than federation.max_token_age allows'
                : '"iat" is not a number',
        )
      case 'nbf':
        return oidcRefusal('nbf', 'the token is not valid yet ("nbf")')
      case 'exp':
        return oidcRefusal('exp', 'the token has no valid "exp"')
      case 'sub':
        return oidcRefusal('sub', 'the token has no "sub"')
    }
    return oidcRefusal('format', `claim "${e.claim}" is invalid`)
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return oidcRefusal(
      'signature',
      `the signature does not verify with issuer "${issuer.name}"'s key`,
    )
  }
  if (e instanceof errors.JOSEAlgNotAllowed)
    return oidcRefusal('alg', 'the algorithm is not allowed')
  if (e instanceof errors.JOSEError) return oidcRefusal('format', `${e.code}: ${e.message}`)
  return e as Error
}
