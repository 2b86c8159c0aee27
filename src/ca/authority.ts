import { uuidV7 } from '../crypto/ordered-id.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import type { Store } from '../db/port.js'
import type {
  CertificateRecord,
  CertificateState,
  EntryRecord,
  LineageWithGenerations,
  NewCertificate,
} from '../db/types.js'
import { CAError } from '../errors.js'
import { secretMatches, secretTokenId } from '../crypto/secret-token.js'
import { sha256Hex } from '../crypto/thumbprint.js'
import type { OidcFederation } from '../federation/federation.js'
import { parseCsrDer } from '../x509/csr.js'
import { LintError } from '../x509/lint.js'
import type { CrlPublisher } from './crl.js'
import { cloneSuspected } from './generations.js'
import { issueLeaf } from './issue.js'
import type { CaMaterial } from './material.js'
import { authenticateOidc, spiffeIdOfCsr, type OidcGrant } from './oidc-enrollment.js'
import { resolveTtl, uniqueDnsNames, validateCsr, type Grant } from './policy.js'
import type { RevocationReasonName } from './reasons.js'
import { refusalError } from './refusals.js'
import { checkKeyForIdentity, checkLineageRenewable } from './renewal-policy.js'

export interface AuthorityDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly crl: CrlPublisher
  /** Told which serials a revocation changed (the server renews its own certificate if listed). */
  readonly onRevoked?: (serials: readonly string[]) => void
  /** The configured OIDC issuers; without it, OIDC identity tokens are refused. */
  readonly federation?: OidcFederation
}

/** What a client asks for, as the edges (JSON, EST) decode it: DER CSR bytes, ttl in ms. */
export interface CertificateRequest {
  readonly csr: Uint8Array
  readonly ttlMs?: number
}

/** An authenticated join token and its entry: what an enrolment may be granted. */
export interface JoinTokenGrant {
  readonly joinTokenId: string
  readonly entry: EntryRecord
}

/** Where a request came from: its peer address is recorded as the certificate's last use. */
export interface RequestOrigin {
  readonly peer?: string | null
}

/** A renewal after expiry: the proof's jti (single use until the proof's exp). */
export interface ExpiredRenewalProof {
  readonly jti: string
  readonly expiresAt: number
}

export type { OidcGrant } from './oidc-enrollment.js'

/** What an enrolment may be granted: a join token's, or an OIDC identity token's. */
export type EnrollmentGrant = JoinTokenGrant | OidcGrant

/** A certificate just issued, with the chain of the CA that issued it (PEM, leaf side first). */
export interface IssuedCertificate {
  readonly certificate: NewCertificate
  readonly issuerChainPem: string
}

/** Orchestrates issuance, renewal and revocation; each step is a small named check. */
export class Authority {
  constructor(private readonly deps: AuthorityDeps) {}

  /**
   * The first half of an enrolment: the join token must be unused, unexpired and its entry
   * enabled. Authentication comes before the request body is even decoded, so a bad token is
   * always a 401, whatever else is wrong.
   */
  async authenticateJoinToken(joinToken: string): Promise<JoinTokenGrant> {
    const { store, clock } = this.deps
    const id = secretTokenId(joinToken)
    const found =
      id === undefined ? undefined : await store.entries.findJoinToken(id, clock.now().getTime())
    if (!found || !secretMatches(joinToken, found.tokenHash)) {
      throw new CAError(
        'ERR_JOIN_TOKEN_INVALID',
        'the join token is unknown, already used or expired',
      )
    }
    if (!found.entry.enabled)
      throw new CAError('ERR_ENTRY_DISABLED', `the entry for ${found.entry.spiffeId} is disabled`)
    return { joinTokenId: found.id, entry: found.entry }
  }

  /**
   * The first half of an enrolment by OIDC identity token, for the entry of `spiffeId` (from
   * the request body on /v1/enroll, the CSR's URI SAN on EST): the same kind of grant as
   * {@link authenticateJoinToken}, for {@link enroll}. Refusals are ERR_OIDC_TOKEN_INVALID
   * naming the failed check (ERR_OIDC_ISSUER_UNAVAILABLE when the issuer cannot be asked).
   */
  authenticateOidcToken(token: string, spiffeId: string): Promise<OidcGrant> {
    return authenticateOidc(this.deps, token, spiffeId)
  }

  /** {@link authenticateOidcToken} for the SPIFFE ID a CSR names (EST: its one URI SAN). */
  async authenticateOidcTokenForCsr(token: string, csrDer: Uint8Array): Promise<OidcGrant> {
    return authenticateOidc(this.deps, token, spiffeIdOfCsr(csrDer))
  }

  /** Enrolment with a one-time join token or OIDC identity token (LIFECYCLE "enrol"). */
  async enroll(
    grant: EnrollmentGrant,
    request: CertificateRequest,
    origin: RequestOrigin = {},
  ): Promise<IssuedCertificate> {
    const { store, clock } = this.deps
    const now = clock.now()
    const { entry } = grant
    const issued = await this.#issueFromCsr(request, entryGrant(entry), entry, null, now)
    const event = {
      actor: 'oidc' in grant ? `oidc:${grant.oidc.issuer}` : `join-token:${grant.joinTokenId}`,
      action: 'certificate.enroll',
      subject: issued.serial,
      details: {
        spiffe_id: entry.spiffeId,
        entry_id: entry.id,
        lineage_id: issued.lineageId,
        not_after: new Date(issued.notAfter).toISOString(),
        // Who the token said the caller is; never the token.
        ...('oidc' in grant && { oidc: grant.oidc }),
        // x5t#S256 of the DER: the audit log's leaf names the very certificate (src/audit).
        thumbprint: issued.thumbprint,
      },
    }
    // Commit time, not issue time: the token may have expired, the entry been disabled or the
    // key been revoked while we signed. The transaction re-checks all three (LIFECYCLE
    // invariant 7); kept although signing is synchronous today, so issuance stays safe when it
    // is not.
    const refusal = await store.certificates.commitEnrollment(
      'oidc' in grant ? { oidcToken: grant.use } : { joinTokenId: grant.joinTokenId },
      issued,
      event,
      clock.now().getTime(),
      origin.peer ?? null,
    )
    if (refusal) throw refusalError(refusal)
    return this.#response(issued)
  }

  /**
   * Renewal with the current generation of its lineage (LIFECYCLE "renew"): over mTLS, or with
   * a proof of possession by an expired certificate (`proof`, see expired-renewal.ts). It re-runs
   * the whole issuance policy: entry enabled, DNS names still allowed, ttl caps, key types, a
   * new key (renewal.require_new_key) certified for no other identity, the lineage's age.
   */
  async renew(
    presented: CertificateState,
    request: CertificateRequest,
    origin: RequestOrigin & { proof?: ExpiredRenewalProof } = {},
  ): Promise<IssuedCertificate> {
    const { store, clock, config } = this.deps
    const now = clock.now()
    if (
      presented.kind !== 'workload' ||
      presented.spiffeId === null ||
      presented.entryId === null
    ) {
      throw new CAError(
        'ERR_FORBIDDEN',
        'only workload certificates are renewed here; use `certbound admin-credential` for admin credentials',
      )
    }
    const entry = await store.entries.get(presented.entryId)
    if (!entry || !entry.enabled) {
      throw new CAError('ERR_ENTRY_DISABLED', `the entry for ${presented.spiffeId} is disabled`)
    }
    checkLineageRenewable(
      await store.lineages.find(presented.lineageId ?? ''),
      config,
      now.getTime(),
    )
    const issued = await this.#issueFromCsr(request, entryGrant(entry), entry, presented, now)
    const event = {
      actor: presented.spiffeId,
      action: 'certificate.renew',
      subject: issued.serial,
      details: {
        spiffe_id: presented.spiffeId,
        renewed_from: presented.serial,
        lineage_id: issued.lineageId,
        generation: issued.generation,
        not_after: new Date(issued.notAfter).toISOString(),
        ...(origin.proof && { after_expiry: true }),
        thumbprint: issued.thumbprint,
      },
    }
    // Re-checked in the transaction (parent still the current generation and valid, entry
    // enabled, key not compromised): a revocation, or the first use of another generation,
    // while we signed must win, and will have time to when signing is async.
    const { proof } = origin
    const refusal = await store.certificates.commitRenewal(issued, event, clock.now().getTime(), {
      peer: origin.peer ?? null,
      ...(proof && {
        afterExpiry: {
          jti: proof.jti,
          proofExpiresAt: proof.expiresAt,
          graceMs: entry.renewAfterExpiry?.ms ?? 0,
        },
      }),
    })
    if (refusal === 'clone_suspected') {
      await this.deps.crl.refresh().catch(() => undefined)
      throw cloneSuspected(presented)
    }
    if (refusal) throw refusalError(refusal)
    return this.#response(issued)
  }

  /** Revocation by an admin, cascading to tokens; idempotent (the first reason is kept). */
  async revoke(
    serial: string,
    reason: RevocationReasonName,
    actor: string,
  ): Promise<CertificateRecord> {
    const { store, clock, crl } = this.deps
    const result = await store.certificates.revoke(
      serial.toLowerCase(),
      reason,
      clock.now().getTime(),
      actor,
    )
    if (!result) throw new CAError('ERR_NOT_FOUND', `no certificate with serial ${serial}`)
    if (result.changed) {
      // Committed with a new CRL revision: a CRL without these serials is stale everywhere from
      // now on. Building the next one here saves the next reader the work (if this fails, the
      // next read builds it).
      await crl.refresh().catch(() => undefined)
      this.deps.onRevoked?.(result.serials)
    }
    return (await store.certificates.get(serial))!
  }

  /** Revokes a lineage with its certificates and tokens (admin); idempotent. */
  async revokeLineage(
    id: string,
    reason: RevocationReasonName,
    actor: string,
  ): Promise<LineageWithGenerations> {
    const { store, clock, crl } = this.deps
    const result = await store.lineages.revoke(id, reason, clock.now().getTime(), actor)
    if (!result) throw new CAError('ERR_NOT_FOUND', `no lineage with id ${id}`)
    if (result.changed) await crl.refresh().catch(() => undefined)
    return (await store.lineages.get(id))!
  }

  async #issueFromCsr(
    request: CertificateRequest,
    grant: Grant,
    entry: EntryRecord,
    parent: CertificateState | null,
    now: Date,
  ): Promise<NewCertificate> {
    const { config, store, ca } = this.deps
    const csr = parseCsrDer(request.csr)
    validateCsr(csr, grant, config)
    const ttlMs = resolveTtl(request.ttlMs, grant, config)
    const spki = sha256Hex(csr.spkiDer)
    if (await store.certificates.isKeyCompromised(spki)) {
      throw new CAError(
        'ERR_POLICY_DENIED',
        'this public key was revoked for keyCompromise and is refused; generate a new key',
      )
    }
    checkKeyForIdentity(spki, grant.spiffeId, await store.certificates.keyIdentity(spki), {
      parent,
      requireNewKey: config.renewal.requireNewKey,
    })
    try {
      return issueLeaf(ca, config, {
        kind: 'workload',
        publicKey: csr.publicKey,
        spiffeId: grant.spiffeId,
        dnsNames: uniqueDnsNames(csr.dnsNames),
        ttlMs,
        entryId: entry.id,
        renewedFrom: parent?.serial ?? null,
        now,
        subjectCn: entry.subjectCn ?? null,
        // An enrolment starts a lineage; a renewal is its next generation. Time-ordered, so the
        // lineages table and the certificates' lineage index grow at one end (a UUIDv4 sends
        // each insert to a random page, which the commit then writes out whole).
        lineageId: parent ? parent.lineageId : uuidV7(now.getTime()),
        generation: parent ? (parent.generation ?? 0) + 1 : 1,
      })
    } catch (e) {
      if (!(e instanceof LintError)) throw e
      // Never signed; the refusal is on record (a lint failure means a bug or a bad entry).
      await store.audit.record(now.getTime(), {
        actor: 'system',
        action: 'certificate.lint_refused',
        subject: grant.spiffeId,
        details: { entry_id: entry.id, violations: e.violations },
      })
      throw new CAError('ERR_POLICY_DENIED', `the certificate was not issued: ${e.message}`)
    }
  }

  #response(issued: NewCertificate): IssuedCertificate {
    const ca = this.deps.ca
    const issuer = issued.issuerKeyId ? ca.byKeyId(issued.issuerKeyId) : undefined
    return { certificate: issued, issuerChainPem: issuer?.pem ?? ca.intermediatePem }
  }
}

function entryGrant(entry: EntryRecord): Grant {
  return {
    spiffeId: entry.spiffeId,
    allowedDnsNames: entry.dnsNames,
    entryMaxTtlMs: entry.maxTtl?.ms ?? null,
  }
}
