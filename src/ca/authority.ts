import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import type { Store } from '../db/store.js'
import type {
  CertificateRecord,
  CommitRefusalReason,
  EntryRecord,
  NewCertificate,
} from '../db/types.js'
import type { CertificateResponse } from '../contract.js'
import { CAError } from '../errors.js'
import { secretMatches, secretTokenId } from '../crypto/secret-token.js'
import { sha256Hex } from '../crypto/thumbprint.js'
import { parseCsr } from '../x509/csr.js'
import { derToPem } from '../x509/pem.js'
import type { CrlPublisher } from './crl.js'
import { issueLeaf } from './issue.js'
import type { CaMaterial } from './material.js'
import { resolveTtl, uniqueDnsNames, validateCsr, type Grant } from './policy.js'
import { REVOCATION_REASONS, type RevocationReasonName } from './reasons.js'

export interface AuthorityDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly crl: CrlPublisher
  /** Told which serials a revocation changed (the server renews its own certificate if listed). */
  readonly onRevoked?: (serials: readonly string[]) => void
}

export interface CertificateRequestBody {
  readonly csr: string
  readonly ttl?: unknown
}

/** Orchestrates issuance, renewal and revocation; each step is a small named check. */
export class Authority {
  constructor(private readonly deps: AuthorityDeps) {}

  /** Enrolment with a one-time join token (LIFECYCLE "enrol"). */
  async enroll(joinToken: string, body: CertificateRequestBody): Promise<CertificateResponse> {
    const { store, clock } = this.deps
    const now = clock.now()
    const id = secretTokenId(joinToken)
    const found =
      id === undefined ? undefined : await store.entries.findJoinToken(id, now.getTime())
    if (!found || !secretMatches(joinToken, found.tokenHash)) {
      throw new CAError(
        'ERR_JOIN_TOKEN_INVALID',
        'the join token is unknown, already used or expired',
      )
    }
    const { entry } = found
    if (!entry.enabled)
      throw new CAError('ERR_ENTRY_DISABLED', `the entry for ${entry.spiffeId} is disabled`)
    const issued = await this.#issueFromCsr(body, entryGrant(entry), entry, null, now)
    const event = {
      actor: `join-token:${found.id}`,
      action: 'certificate.enroll',
      subject: issued.serial,
      details: {
        spiffe_id: entry.spiffeId,
        entry_id: entry.id,
        not_after: new Date(issued.notAfter).toISOString(),
      },
    }
    // Commit time, not issue time: the token may have expired while we signed. The
    // transaction re-checks token, entry and key (LIFECYCLE invariant 7); kept although signing
    // is synchronous today, so issuance stays safe when it is not.
    const refusal = await store.certificates.commitEnrollment(
      found.id,
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
    body: CertificateRequestBody,
  ): Promise<CertificateResponse> {
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
    const issued = await this.#issueFromCsr(body, entryGrant(entry), entry, presented.serial, now)
    const event = {
      actor: presented.spiffeId,
      action: 'certificate.renew',
      subject: issued.serial,
      details: {
        spiffe_id: presented.spiffeId,
        renewed_from: presented.serial,
        not_after: new Date(issued.notAfter).toISOString(),
      },
    }
    // Re-checked in the transaction (parent still valid, entry enabled, key not compromised):
    // a revocation while we signed must win, and will have time to when signing is async.
    const refusal = await store.certificates.commitRenewal(issued, event, clock.now().getTime())
    if (refusal) throw refusalError(refusal)
    return this.#response(issued)
  }

  /** Revocation by an admin, cascading to tokens; idempotent (the first reason is kept). */
  async revoke(serial: string, reason: unknown, actor: string): Promise<CertificateRecord> {
    const name = parseReason(reason)
    const { store, clock, crl } = this.deps
    const result = await store.certificates.revoke(
      serial.toLowerCase(),
      name,
      clock.now().getTime(),
      actor,
    )
    if (!result) throw new CAError('ERR_NOT_FOUND', `no certificate with serial ${serial}`)
    if (result.changed) {
      // The revocation is committed: the next CRL must list it even if this rebuild fails.
      crl.markStale()
      await crl.rebuild().catch(() => undefined)
      this.deps.onRevoked?.(result.serials)
    }
    return (await store.certificates.get(serial))!
  }

  async #issueFromCsr(
    body: CertificateRequestBody,
    grant: Grant,
    entry: EntryRecord,
    renewedFrom: string | null,
    now: Date,
  ): Promise<NewCertificate> {
    const { config, store, ca } = this.deps
    if (typeof body.csr !== 'string')
      throw new CAError('ERR_BAD_REQUEST', '"csr" must be a PEM CERTIFICATE REQUEST string')
    const csr = parseCsr(body.csr)
    validateCsr(csr, grant, config)
    const ttlMs = resolveTtl(body.ttl, grant, config)
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

  #response(issued: NewCertificate): CertificateResponse {
    const leaf = derToPem(issued.der, 'CERTIFICATE')
    return {
      serial: issued.serial,
      spiffe_id: issued.spiffeId!,
      certificate: leaf,
      chain: leaf + this.deps.ca.intermediatePem,
      not_before: new Date(issued.notBefore).toISOString(),
      not_after: new Date(issued.notAfter).toISOString(),
    }
  }
}

function entryGrant(entry: EntryRecord): Grant {
  return {
    spiffeId: entry.spiffeId,
    allowedDnsNames: entry.dnsNames,
    entryMaxTtlMs: entry.maxTtl?.ms ?? null,
  }
}

function parseReason(reason: unknown): RevocationReasonName {
  if (reason === undefined || reason === null) return 'unspecified'
  if (reason === 'certificateHold' || reason === 'removeFromCRL') {
    throw new CAError(
      'ERR_BAD_REQUEST',
      `reason "${reason}" is refused: certbound does not put certificates on hold`,
    )
  }
  if (typeof reason !== 'string' || !(REVOCATION_REASONS as readonly string[]).includes(reason)) {
    throw new CAError('ERR_BAD_REQUEST', `"reason" must be one of ${REVOCATION_REASONS.join(', ')}`)
  }
  return reason as RevocationReasonName
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
