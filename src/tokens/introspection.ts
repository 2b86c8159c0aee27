import { timingSafeEqual } from 'node:crypto'
import type { JWTPayload } from 'jose'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { secretMatches, secretTokenId } from '../crypto/secret-token.js'
import type { Store } from '../db/port.js'
import type { AccessTokenState, RefreshTokenState } from '../db/types.js'
import type { CertificateState } from '../db/types.js'
import { CAError } from '../errors.js'
import { checkJwtClaimsOfAuthenticatedToken, verifyJwt, type JwsAlg } from './jws.js'
import { accessTokenDigest } from './issuer.js'
import type { SigningKeys } from './keys.js'

export interface TokenStateDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly keys: SigningKeys
}

const ALGORITHMS: readonly JwsAlg[] = ['ES256', 'ES384', 'EdDSA', 'RS256']
const INACTIVE = { active: false } as const

type Found =
  | { kind: 'access'; claims: JWTPayload; certSerial: string; active: boolean }
  | {
      kind: 'refresh'
      state: RefreshTokenState
      cert: CertificateState | undefined
      active: boolean
    }

function jwtOptions(deps: TokenStateDeps) {
  return {
    issuer: deps.config.tokens.issuer,
    typ: 'at+jwt',
    algorithms: ALGORITHMS,
    currentDate: deps.clock.now(),
  }
}

/** The `jti` a compact JWT claims, before anything about it is trusted: only to find its row. */
function claimedJti(token: string): string | undefined {
  const parts = token.split('.')
  if (parts.length !== 3) return undefined
  const payload = parts[1]!
  try {
    const jti: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'))?.jti
    return typeof jti === 'string' ? jti : undefined
  } catch {
    return undefined
  }
}

/**
 * An access token of ours and its row. The row recorded the SHA-256 of the token as signed: a
 * presented token with that digest is those very bytes, and under a key still published its
 * signature need not be checked again (the ES256 verification was the larger part of an
 * introspection). Otherwise (rows from before migration 0014, other bytes) the signature
 * decides, as for any JWT. Either way the claims are checked the same.
 */
async function findAccessToken(
  token: string,
  deps: TokenStateDeps,
): Promise<{ claims: JWTPayload; state: AccessTokenState } | undefined> {
  const jti = claimedJti(token)
  const state = jti === undefined ? undefined : await deps.store.tokens.findAccessToken(jti)
  if (!state) return undefined
  const keys = await deps.keys.verificationKeys()
  const result =
    state.sha256 !== null &&
    keys.some((k) => k.kid === state.kid) &&
    digestMatches(token, state.sha256)
      ? checkJwtClaimsOfAuthenticatedToken(token, jwtOptions(deps))
      : verifyJwt(token, keys, jwtOptions(deps))
  // The same bytes name the same jti; the check keeps a forged payload from borrowing a row.
  if (!result.ok || result.payload.jti !== state.jti) return undefined
  return { claims: result.payload as JWTPayload, state }
}

function digestMatches(token: string, recorded: Uint8Array): boolean {
  const digest = accessTokenDigest(token)
  return recorded.length === digest.length && timingSafeEqual(digest, recorded)
}

/** Finds a token of ours (access JWT or refresh token) and decides whether it is active now. */
async function findToken(token: string, deps: TokenStateDeps): Promise<Found | undefined> {
  const now = deps.clock.now().getTime()
  const access = await findAccessToken(token, deps)
  if (access) {
    const { claims, state } = access
    const active =
      state.revokedAt === null &&
      state.familyStatus !== 'revoked' &&
      state.certStatus === 'valid' &&
      state.certNotAfter > now &&
      state.expiresAt > now
    return { kind: 'access', claims, certSerial: state.certSerial, active }
  }
  const id = secretTokenId(token)
  const state = id === undefined ? undefined : await deps.store.tokens.findRefreshToken(id)
  if (!state || !secretMatches(token, state.hash)) return undefined
  const cert = await deps.store.certificates.getState(state.family.certSerial)
  const active =
    state.usedAt === null &&
    state.expiresAt > now &&
    state.family.status === 'active' &&
    cert?.status === 'valid' &&
    cert.notAfter > now
  return { kind: 'refresh', state, cert, active }
}

/** RFC 7662 introspection: active only if signed, unexpired, unrevoked and its certificate still valid. */
export async function introspect(
  caller: CertificateState,
  form: Map<string, string>,
  deps: TokenStateDeps,
): Promise<Record<string, unknown>> {
  const allowed = deps.config.tokens.introspectionClients
  if (allowed !== undefined && (caller.spiffeId === null || !allowed.includes(caller.spiffeId))) {
    throw new CAError(
      'ERR_FORBIDDEN',
      `${caller.spiffeId ?? 'this certificate'} may not introspect tokens (tokens.introspection_clients)`,
    )
  }
  const token = form.get('token')
  if (token === undefined) throw new CAError('ERR_INVALID_OAUTH_REQUEST', 'token is required')
  const found = await findToken(token, deps)
  if (!found?.active) return INACTIVE
  if (found.kind === 'access') {
    const c = found.claims
    return {
      active: true,
      token_type: 'Bearer',
      iss: c.iss,
      sub: c.sub,
      aud: c.aud,
      client_id: c.client_id,
      exp: c.exp,
      iat: c.iat,
      jti: c.jti,
      cnf: c.cnf,
      ...(c.scope ? { scope: c.scope } : {}),
    }
  }
  const { state, cert } = found
  return {
    active: true,
    token_type: 'refresh_token',
    iss: deps.config.tokens.issuer,
    sub: state.family.spiffeId,
    client_id: state.family.spiffeId,
    exp: Math.floor(state.expiresAt / 1000),
    iat: Math.floor(state.issuedAt / 1000),
    cnf: { 'x5t#S256': cert!.thumbprint },
    ...(state.family.scope ? { scope: state.family.scope } : {}),
  }
}

/**
 * RFC 7009 revocation by the token's own client. Unknown tokens are a 200 (the RFC says
 * so); another client's token is refused and left alone.
 */
export async function revokeToken(
  client: CertificateState,
  form: Map<string, string>,
  deps: TokenStateDeps,
): Promise<void> {
  const token = form.get('token')
  if (token === undefined) throw new CAError('ERR_INVALID_OAUTH_REQUEST', 'token is required')
  const found = await findToken(token, deps)
  if (!found) return
  const now = deps.clock.now().getTime()
  // The client is the certificate's lineage, not just its SPIFFE ID: another enrolment of the
  // same identity holding a stolen token must not be able to kill it (LIFECYCLE invariant 4).
  const owner = found.kind === 'access' ? found.claims.sub : found.state.family.spiffeId
  const boundTo = found.kind === 'access' ? found.certSerial : found.state.family.certSerial
  if (
    owner !== client.spiffeId ||
    !(await deps.store.certificates.isSelfOrDescendant(client.serial, boundTo))
  ) {
    throw new CAError('ERR_INVALID_OAUTH_REQUEST', 'the token was not issued to this client')
  }
  if (found.kind === 'access') {
    const jti = found.claims.jti as string
    await deps.store.tokens.revokeAccessToken(jti, now, {
      actor: client.spiffeId!,
      action: 'token.revoke',
      subject: client.spiffeId,
      details: { jti },
    })
    return
  }
  const familyId = found.state.family.id
  await deps.store.tokens.revokeFamily(familyId, 'client_revoked', now, {
    actor: client.spiffeId!,
    action: 'token.family.revoke',
    subject: client.spiffeId,
    details: { family_id: familyId, cause: 'client_revoked' },
  })
}
