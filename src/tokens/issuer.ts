import { createHash } from 'node:crypto'
import { epochSeconds } from '../clock.js'
import { uuidV7 } from '../crypto/ordered-id.js'
import type { Config } from '../config/load.js'
import { CAError } from '../errors.js'
import type { CertificateState } from '../db/types.js'
import { signJwt } from './jws.js'
import type { SigningKeys } from './keys.js'

export interface SignedAccessToken {
  readonly token: string
  readonly jti: string
  readonly kid: string
  readonly iat: number
  readonly exp: number
  /** {@link accessTokenDigest} of `token`, stored with its row. */
  readonly sha256: Uint8Array
}

/** What an access token's row records of its bytes: introspection compares it to the presented token's. */
export function accessTokenDigest(token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

/**
 * Signs an RFC 9068 access token bound to `cert` (RFC 8705 §3: cnf.x5t#S256 is the
 * thumbprint of the certificate presented on this request). exp never passes the
 * certificate's notAfter.
 */
export async function signAccessToken(
  deps: { config: Config; keys: SigningKeys },
  p: { cert: CertificateState; scope: string | null; now: Date },
): Promise<SignedAccessToken> {
  const { config, keys } = deps
  const key = await keys.active()
  const iat = epochSeconds(p.now)
  const exp = Math.min(
    iat + Math.floor(config.tokens.accessTokenTtlMs / 1000),
    Math.floor(p.cert.notAfter / 1000),
  )
  if (exp <= iat)
    throw new CAError('ERR_INVALID_CLIENT', 'the client certificate expires now; renew it first')
  // Time-ordered: the jti index grows at one end (a UUIDv4 sends each insert to a random page).
  const jti = uuidV7(p.now.getTime())
  const aud = config.tokens.audience
  // Claim order as jose's SignJWT wrote it, so tokens look the same as before.
  const claims: Record<string, unknown> = {
    client_id: p.cert.spiffeId,
    cnf: { 'x5t#S256': p.cert.thumbprint },
  }
  if (p.scope) claims.scope = p.scope
  claims.iss = config.tokens.issuer
  claims.sub = p.cert.spiffeId!
  claims.aud = aud.length === 1 ? aud[0]! : [...aud]
  claims.iat = iat
  claims.exp = exp
  claims.jti = jti
  const token = signJwt({ alg: key.alg, typ: 'at+jwt', kid: key.kid }, claims, key.privateKey)
  return { token, jti, kid: key.kid, iat, exp, sha256: accessTokenDigest(token) }
}
