import { randomUUID } from 'node:crypto'
import { SignJWT } from 'jose'
import { epochSeconds } from '../clock.js'
import type { Config } from '../config/load.js'
import { CAError } from '../errors.js'
import type { CertificateRecord } from '../db/types.js'
import type { SigningKeys } from './keys.js'

export interface SignedAccessToken {
  readonly token: string
  readonly jti: string
  readonly kid: string
  readonly iat: number
  readonly exp: number
}

/**
 * Signs an RFC 9068 access token bound to `cert` (RFC 8705 §3: cnf.x5t#S256 is the
 * thumbprint of the certificate presented on this request). exp never passes the
 * certificate's notAfter.
 */
export async function signAccessToken(
  deps: { config: Config; keys: SigningKeys },
  p: { cert: CertificateRecord; scope: string | null; now: Date },
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
  const jti = randomUUID()
  const aud = config.tokens.audience
  const claims: Record<string, unknown> = {
    client_id: p.cert.spiffeId,
    cnf: { 'x5t#S256': p.cert.thumbprint },
  }
  if (p.scope) claims.scope = p.scope
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid })
    .setIssuer(config.tokens.issuer)
    .setSubject(p.cert.spiffeId!)
    .setAudience(aud.length === 1 ? aud[0]! : [...aud])
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .setJti(jti)
    .sign(key.privateKey)
  return { token, jti, kid: key.kid, iat, exp }
}
