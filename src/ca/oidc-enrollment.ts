import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import type { EntryRecord, OidcTokenUse } from '../db/types.js'
import { CAError } from '../errors.js'
import { matchClaims } from '../federation/claims.js'
import { oidcRefusal } from '../federation/errors.js'
import type { OidcFederation } from '../federation/federation.js'
import { CLOCK_TOLERANCE_S } from '../federation/verify.js'
import { parseCsrDer } from '../x509/csr.js'

/** Who an OIDC token says the caller is, as the audit event records it (never the token). */
export interface OidcIdentity {
  /** The issuer's name in `federation.oidc_issuers`. */
  readonly issuer: string
  /** Its `iss`. */
  readonly iss: string
  readonly sub: string
  /** The rule's claims with the token's values. */
  readonly claims: Readonly<Record<string, string>>
  readonly jti: string | undefined
}

/** An authenticated OIDC identity token and its entry: what an enrolment may be granted. */
export interface OidcGrant {
  readonly entry: EntryRecord
  readonly oidc: OidcIdentity
  /** The use the enrolment records, in its own transaction (each token enrols at most once). */
  readonly use: OidcTokenUse
}

/**
 * Authenticates an enrolment by OIDC identity token for the entry of `spiffeId` (CONTRACT
 * "Enrolment by an OIDC identity token"): the entry must carry an `oidc` rule, the token must
 * pass every check of the rule's issuer and match every claim of the rule, and must not have
 * enrolled before. Checks only: nothing is written until the enrolment commits.
 */
export async function authenticateOidc(
  deps: { readonly store: Store; readonly clock: Clock; readonly federation?: OidcFederation },
  token: string,
  spiffeId: string,
): Promise<OidcGrant> {
  const { store, clock, federation } = deps
  if (federation === undefined) {
    throw oidcRefusal('issuer', 'this server has no federation.oidc_issuers')
  }
  const entry = await store.entries.getBySpiffeId(spiffeId)
  const rule = entry?.oidc
  // Without a rule the token is still checked (by the issuer its `iss` names) before the
  // refusal says so: only a valid token learns which SPIFFE IDs have no OIDC entry.
  const issuerName = rule?.issuer ?? federation.nameForToken(token)
  if (issuerName === undefined) {
    throw oidcRefusal('iss', "the token's issuer is not one of federation.oidc_issuers")
  }
  const now = clock.now()
  const { issuer, token: verified } = await federation.verify(token, issuerName, now)
  if (!entry || !rule) {
    throw oidcRefusal('entry', `no entry for ${spiffeId.slice(0, 300)} accepts OIDC tokens`)
  }
  const match = matchClaims(rule.claims, verified.payload)
  if (!match.ok) {
    const claim = JSON.stringify(match.claim)
    throw oidcRefusal(
      'claims',
      match.reason === 'missing'
        ? `the token has no string claim ${claim}, which the entry's rule pins`
        : `the token's claim ${claim} does not match the entry's rule`,
    )
  }
  if (!entry.enabled) {
    throw new CAError('ERR_ENTRY_DISABLED', `the entry for ${entry.spiffeId} is disabled`)
  }
  const expiresAt = (verified.payload.exp + CLOCK_TOLERANCE_S) * 1000
  if (await store.oidcTokens.isUsed(verified.replayKey, now.getTime())) {
    throw oidcRefusal('replay', 'this token has enrolled already; each token enrols once')
  }
  const jti = verified.payload.jti
  return {
    entry,
    oidc: {
      issuer: issuer.name,
      iss: issuer.issuer,
      sub: verified.payload.sub,
      claims: match.matched,
      jti: typeof jti === 'string' ? jti.slice(0, 256) : undefined,
    },
    use: { tokenHash: verified.replayKey, issuer: issuer.name, expiresAt },
  }
}

/**
 * The SPIFFE ID an OIDC enrolment is for when the request carries no `spiffe_id` (EST
 * `simpleenroll`, CONTRACT "EST"): the CSR's one URI SAN, required then.
 */
export function spiffeIdOfCsr(csrDer: Uint8Array): string {
  const { uris } = parseCsrDer(csrDer)
  if (uris.length !== 1) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      'with an OIDC identity token, the CSR must name the SPIFFE ID as its one URI SAN',
    )
  }
  return uris[0]!
}
