import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import type { Store } from '../db/port.js'
import type {
  CertificateRecord,
  CommitRefusalReason,
  EntryRecord,
  NewCertificate,
} from '../db/types.js'
import { CAError } from '../errors.js'
import { secretMatches, secretTokenId } from '../crypto/secret-token.js'
import { sha256Hex } from '../crypto/thumbprint.js'
import { parseCsrDer } from '../x509/csr.js'
import type { CrlPublisher } from './crl.js'
import { issueLeaf } from './issue.js'
import type { CaMaterial } from './material.js'
import { resolveTtl, uniqueDnsNames, validateCsr, type Grant } from './policy.js'
import type { RevocationReasonName } from './reasons.js'

export interface AuthorityDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly crl: CrlPublisher
  /** Told which serials a revocation changed (the server renews its own certificate if listed). */
  readonly onRevoked?: (serials: readonly string[]) => void
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

  /** Enrolment with a one-time join token (LIFECYCLE "enrol"). */
  async enroll(grant: JoinTokenGrant, request: CertificateRequest): Promise<IssuedCertificate> {
    const { store, clock } = this.deps
    const now = clock.now()
    const { entry } = grant
    const issued = await this.#issueFromCsr(request, entryGrant(entry), entry, null, now)
    const event = {
      actor: `join-token:${grant.joinTokenId}`,
      action: 'certificate.enroll',
      subject: issued.serial,
      details: {
        spiffe_id: entry.spiffeId,
        entry_id: entry.id,
        not_after: new Date(issued.notAfter).toISOString(),
        // x5t#S256 of the DER: the audit log's leaf names the very certificate (src/audit).
        thumbprint: issued.thumbprint,
      },
    }
    // Commit time, not issue time: the token may have expired, the entry been disabled or the
    // key been revoked while we signed. The transaction re-checks all three (LIFECYCLE
    // invariant 7); kept although signing is synchronous today, so issuance stays safe when it
    // is not.
    const refusal = await store.certificates.commitEnrollment(
      grant.joinTokenId,
      issued,
      event,
      clock.now().getTime(),
    )
    if (refusal) throw refusalError(refusal)
    return this.#response(issued)
  }

  /** Renewal over mTLS with the current certificate (LIFECYCLE "renew"). */
  async renew(
    presented: CertificateRecord,
    request: CertificateRequest,
  ): Promise<IssuedCertificate> {
    const { store, clock } = this.deps
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
    const issued = await this.#issueFromCsr(
      request,
      entryGrant(entry),
      entry,
      presented.serial,
      now,
    )
    const event = {
      actor: presented.spiffeId,
      action: 'certificate.renew',
      subject: issued.serial,
      details: {
        spiffe_id: presented.spiffeId,
        renewed_from: presented.serial,
        not_after: new Date(issued.notAfter).toISOString(),
        thumbprint: issued.thumbprint,
      },
    }
    // Re-checked in the transaction (parent still valid, entry enabled, key not compromised):
    // a revocation while we signed must win, and will have time to when signing is async.
    const refusal = await store.certificates.commitRenewal(issued, event, clock.now().getTime())
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

  async #issueFromCsr(
    request: CertificateRequest,
    grant: Grant,
    entry: EntryRecord,
    renewedFrom: string | null,
    now: Date,
  ): Promise<NewCertificate> {
    const { config, store, ca } = this.deps
    const csr = parseCsrDer(request.csr)
    validateCsr(csr, grant, config)
    const ttlMs = resolveTtl(request.ttlMs, grant, config)
    if (await store.certificates.isKeyCompromised(sha256Hex(csr.spkiDer))) {
      throw new CAError(
        'ERR_POLICY_DENIED',
        'this public key was revoked for keyCompromise and is refused; generate a new key',
      )
    }
    return issueLeaf(ca, config, {
      kind: 'workload',
      publicKey: csr.publicKey,
      spiffeId: grant.spiffeId,
      dnsNames: uniqueDnsNames(csr.dnsNames),
      ttlMs,
      entryId: entry.id,
      renewedFrom,
      now,
    })
  }

  #response(issued: NewCertificate): IssuedCertificate {
    return { certificate: issued, issuerChainPem: this.deps.ca.intermediatePem }
  }
}

function entryGrant(entry: EntryRecord): Grant {
  return {
    spiffeId: entry.spiffeId,
    allowedDnsNames: entry.dnsNames,
    entryMaxTtlMs: entry.maxTtl?.ms ?? null,
  }
}

function refusalError(reason: CommitRefusalReason): CAError {
  switch (reason) {
    case 'join_token_spent':
      return new CAError(
        'ERR_JOIN_TOKEN_INVALID',
        'the join token is unknown, already used or expired',
      )
    case 'entry_disabled':
      return new CAError('ERR_ENTRY_DISABLED', 'the entry was disabled')
    case 'key_compromised':
      return new CAError(
        'ERR_POLICY_DENIED',
        'this public key was revoked for keyCompromise and is refused',
      )
    case 'parent_not_valid':
      return new CAError(
        'ERR_CLIENT_CERT_REQUIRED',
        'the presented certificate was revoked or expired',
      )
  }
}
