import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { uuidV7 } from '../crypto/ordered-id.js'
import { newSecretToken, secretMatches, secretTokenId } from '../crypto/secret-token.js'
import { cloneSuspected, containClone } from '../ca/generations.js'
import type { Store } from '../db/port.js'
import type { CertificateState, LineageRevocation, RefreshTokenState } from '../db/types.js'
import type { TokenResponse } from '../contract.js'
import { CAError } from '../errors.js'
import { parseScopeString } from '../identity/scope.js'
import { signAccessToken } from './issuer.js'
import type { SigningKeys } from './keys.js'

export interface GrantDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly keys: SigningKeys
  readonly onContained?: (revoked: LineageRevocation) => void
  /**
   * Whether a refusal may be audited now: the route bounds the events one peer can cause
   * (contract, "Operations"). Absent: always.
   */
  readonly mayAuditRefusal?: () => boolean
}

/** Where the request came from: the peer address is recorded as the certificate's last use. */
export interface GrantOrigin {
  readonly peer?: string | null
}

/** A grant handler: the authenticated client's certificate and the form; returns tokens. */
export type GrantHandler = (
  client: CertificateState,
  form: Map<string, string>,
  deps: GrantDeps,
  origin?: GrantOrigin,
) => Promise<TokenResponse>

function parseScope(form: Map<string, string>): string | null {
  const scope = form.get('scope')
  if (scope === undefined) return null
  if (!parseScopeString(scope))
    throw new CAError(
      'ERR_INVALID_SCOPE',
      'scope must be space-separated scope tokens (RFC 6749 §3.3)',
    )
  return scope
}

/** An entry that pins its scopes (entry `scopes`) grants only those. */
async function checkEntryScopes(
  client: CertificateState,
  scope: string | null,
  deps: GrantDeps,
): Promise<void> {
  if (scope === null || client.entryId === null) return
  const allowed = (await deps.store.entries.get(client.entryId))?.scopes
  if (allowed === null || allowed === undefined) return
  for (const s of scope.split(' ')) {
    if (!allowed.includes(s))
      // The entry's list, never the request's words (they may be a misplaced secret).
      throw new CAError(
        'ERR_INVALID_SCOPE',
        `a requested scope is not allowed for ${client.spiffeId}; allowed: ${allowed.join(' ')}`,
      )
  }
}

/**
 * The rows a grant commits: the new refresh token, which never outlives the certificate it is
 * bound to (LIFECYCLE invariant 2), and the access token's `jti` for introspection and cascades.
 */
function issuedRows(
  deps: GrantDeps,
  client: CertificateState,
  access: { jti: string; kid: string; exp: number; sha256: Uint8Array },
  refresh: { id: string; hash: string },
  now: number,
) {
  return {
    refresh: {
      id: refresh.id,
      hash: refresh.hash,
      issuedAt: now,
      expiresAt: Math.min(now + deps.config.tokens.refreshTokenTtlMs, client.notAfter),
    },
    access: {
      jti: access.jti,
      certSerial: client.serial,
      spiffeId: client.spiffeId!,
      kid: access.kid,
      issuedAt: now,
      expiresAt: access.exp * 1000,
      sha256: access.sha256,
    },
  }
}

/** client_credentials: a new family bound to the presented certificate. */
const clientCredentials: GrantHandler = async (client, form, deps, origin = {}) => {
  const now = deps.clock.now()
  const scope = parseScope(form)
  await checkEntryScopes(client, scope, deps)
  const access = await signAccessToken(deps, { cert: client, scope, now })
  const refresh = newSecretToken()
  const familyId = uuidV7(now.getTime())
  const rows = issuedRows(deps, client, access, refresh, now.getTime())
  // createFamily re-checks, in its transaction, that the certificate is still valid and its
  // entry enabled: a revocation while the token was signed wins (kept for async signing).
  const ok = await deps.store.tokens.createFamily(
    {
      id: familyId,
      spiffeId: client.spiffeId!,
      entryId: client.entryId,
      certSerial: client.serial,
      scope,
      createdAt: now.getTime(),
      peer: origin.peer ?? null,
    },
    rows.refresh,
    rows.access,
    {
      actor: client.spiffeId!,
      action: 'token.issue',
      subject: client.spiffeId,
      details: {
        grant: 'client_credentials',
        family_id: familyId,
        jti: access.jti,
        cert_serial: client.serial,
        scope,
      },
    },
  )
  if (!ok)
    throw new CAError(
      'ERR_INVALID_CLIENT',
      'the client certificate was revoked or expired, or its entry disabled',
    )
  return response(access.token, access.exp - access.iat, refresh.token, scope)
}

/**
 * refresh_token (LIFECYCLE "refresh"): the certificate and lineage checks run before reuse
 * detection, so a replay by a party without the key kills nothing.
 */
const refreshToken: GrantHandler = async (client, form, deps, origin = {}) => {
  const { store } = deps
  const presented = form.get('refresh_token')
  if (presented === undefined)
    throw new CAError('ERR_INVALID_OAUTH_REQUEST', 'refresh_token is required')
  const now = deps.clock.now()
  const refuse = async (reason: string, details: Record<string, unknown> = {}): Promise<never> => {
    if (deps.mayAuditRefusal?.() ?? true) {
      await store.audit.record(now.getTime(), {
        actor: client.spiffeId!,
        action: 'token.refresh_refused',
        subject: client.spiffeId,
        details: { reason, cert_serial: client.serial, ...details },
      })
    }
    throw new CAError('ERR_INVALID_GRANT', `refresh refused: ${reason.replaceAll('_', ' ')}`)
  }
  const id = secretTokenId(presented)
  const state = id === undefined ? undefined : await store.tokens.findRefreshToken(id)
  if (!state || !secretMatches(presented, state.hash)) return refuse('unknown_refresh_token')
  const family = state.family
  const lineage = await lineageOf(client, state, deps, origin)
  if (lineage === 'outside') return refuse('certificate_outside_lineage', { family_id: family.id })
  if (family.status !== 'active')
    return refuse('family_revoked', { family_id: family.id, family_reason: family.revokedReason })
  if (state.usedAt !== null) {
    await store.tokens.revokeFamily(
      family.id,
      'refresh_token_reuse',
      now.getTime(),
      reuseEvent(client, family.id),
    )
    return refuse('refresh_token_reused', { family_id: family.id })
  }
  if (state.expiresAt <= now.getTime())
    return refuse('refresh_token_expired', { family_id: family.id })
  const scope = narrowScope(parseScope(form), family.scope)
  // An admin may have narrowed the entry's scopes since the family began.
  await checkEntryScopes(client, scope, deps)
  const access = await signAccessToken(deps, { cert: client, scope, now })
  const next = newSecretToken()
  // commitRefresh re-checks, in its transaction, that this refresh token is unused and the
  // family active: of two concurrent refreshes one wins and the other is reuse (invariant 4).
  const outcome = await store.tokens.commitRefresh({
    familyId: family.id,
    oldRefreshId: state.id,
    certSerial: client.serial,
    peer: origin.peer ?? null,
    ...issuedRows(deps, client, access, next, now.getTime()),
    event: {
      actor: client.spiffeId!,
      action: 'token.refresh',
      subject: client.spiffeId,
      details: {
        family_id: family.id,
        jti: access.jti,
        cert_serial: client.serial,
        previous_cert_serial: family.certSerial,
      },
    },
    reuseEvent: reuseEvent(client, family.id),
  })
  if (outcome === 'reused')
    throw new CAError('ERR_INVALID_GRANT', 'refresh refused: refresh token reused')
  if (outcome === 'family_inactive') return refuse('family_revoked', { family_id: family.id })
  return response(access.token, access.exp - access.iat, next.token, scope)
}

/**
 * Whether the presented certificate may refresh the family (LIFECYCLE invariant 3): the
 * family's bound certificate or a descendant of it. Families follow lineages, not branches: a
 * certificate of the family's own lineage that is neither is on a branch that forked off it —
 * two holders of one lineage — and contains the lineage before the refusal.
 */
async function lineageOf(
  client: CertificateState,
  state: RefreshTokenState,
  deps: GrantDeps,
  origin: GrantOrigin,
): Promise<'inside' | 'outside'> {
  const family = state.family
  if (family.spiffeId !== client.spiffeId) return 'outside'
  if (client.serial === family.certSerial) return 'inside'
  if (await deps.store.certificates.isSelfOrDescendant(client.serial, family.certSerial))
    return 'inside'
  const sameLineage = family.lineageId != null && family.lineageId === client.lineageId
  if (!sameLineage) return 'outside'
  await containClone(
    {
      serial: client.serial,
      request: 'refresh',
      peer: origin.peer ?? null,
      now: deps.clock.now().getTime(),
      branchSerial: family.certSerial,
    },
    deps,
  )
  throw cloneSuspected(client)
}

function reuseEvent(client: CertificateState, familyId: string) {
  return {
    actor: client.spiffeId!,
    action: 'token.family.reuse_detected',
    subject: client.spiffeId,
    details: { family_id: familyId, suspected_theft: true, cert_serial: client.serial },
  }
}

function narrowScope(requested: string | null, granted: string | null): string | null {
  if (requested === null) return granted
  const allowed = new Set((granted ?? '').split(' ').filter(Boolean))
  for (const s of requested.split(' ')) {
    if (!allowed.has(s))
      throw new CAError(
        'ERR_INVALID_SCOPE',
        `a requested scope was not granted to this token family; granted: ${[...allowed].join(' ') || '(none)'}`,
      )
  }
  return requested
}

function response(
  accessToken: string,
  expiresIn: number,
  refresh: string,
  scope: string | null,
): TokenResponse {
  return {
    access_token: accessToken,
    token_type: 'Bearer',
    expires_in: expiresIn,
    refresh_token: refresh,
    ...(scope ? { scope } : {}),
  }
}

/** The grant registry (oidc-provider style): adding a grant is adding an entry here. */
export const GRANTS: ReadonlyMap<string, GrantHandler> = new Map([
  ['client_credentials', clientCredentials],
  ['refresh_token', refreshToken],
])
