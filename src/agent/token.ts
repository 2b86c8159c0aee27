import type { TokenResponse } from './api.js'

/** An access token as the agent keeps it (the refresh token lives in the state only). */
export interface AccessToken {
  readonly accessToken: string
  readonly expiresAt: number
  readonly receivedAt: number
  /** `x5t#S256` of the certificate it was issued with (= its `cnf`). */
  readonly thumbprint: string
}

/** The grants the agent uses (RFC 6749 §4.4 and §6). */
export type Grant = 'client_credentials' | 'refresh_token'

/** Checks the shape of an RFC 6749 §5.1 answer; throws naming the grant otherwise. */
export function checkTokenResponse(
  res: TokenResponse,
  grant: Grant,
): { res: TokenResponse; grant: Grant } {
  const { access_token: at, token_type: type, expires_in: ttl, refresh_token: rt } = res
  const ok = typeof at === 'string' && at !== '' && typeof rt === 'string' && rt !== ''
  if (!ok || typeof type !== 'string' || type.toLowerCase() !== 'bearer' || !(ttl > 0)) {
    throw new Error(`${grant}: the token response is malformed`)
  }
  return { res, grant }
}

/** The earlier of `expires_in` and the JWT's own `exp` (whole seconds, RFC 7519 §4.1.4). */
function expiryOf(res: TokenResponse, receivedAt: number): number {
  const byTtl = receivedAt + res.expires_in * 1000
  try {
    const payload = res.access_token.split('.')[1] ?? ''
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { exp?: unknown }
    if (typeof claims.exp === 'number') return Math.min(byTtl, claims.exp * 1000)
  } catch {
    // not a JWT we can read: expires_in alone
  }
  return byTtl
}

/** The access token of an answer received at `receivedAt` with the certificate `thumbprint`. */
export function accessTokenFrom(
  res: TokenResponse,
  thumbprint: string,
  receivedAt: number,
): AccessToken {
  return {
    accessToken: res.access_token,
    expiresAt: expiryOf(res, receivedAt),
    receivedAt,
    thumbprint,
  }
}
