import type { Database } from 'better-sqlite3'
import { CAError } from '../errors.js'
import type { AuditRepository } from './audit.js'
import {
  decodeCursor,
  encodeCursor,
  toCertificate,
  type CertificateRow,
  type EntryRow,
} from './rows.js'
import type {
  AuditInput,
  CaCertificateRecord,
  CertificateRecord,
  CommitRefusalReason,
  NewCertificate,
  Page,
  RevocationResult,
  RevokedEntry,
} from './types.js'

export type ListStatus = 'valid' | 'revoked' | 'expired'

export class CertificateRepository {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditRepository,
  ) {}

  async get(serial: string): Promise<CertificateRecord | undefined> {
    const row = this.db
      .prepare('SELECT * FROM certificates WHERE serial = ?')
      .get(serial.toLowerCase())
    return row ? toCertificate(row as CertificateRow) : undefined
  }

  async list(q: {
    spiffeId?: string
    status?: ListStatus
    cursor?: string
    limit: number
    now: number
  }): Promise<Page<CertificateRecord>> {
    const after = decodeCursor(q.cursor)
    if (after === undefined)
      throw new CAError('ERR_BAD_REQUEST', 'cursor is not one this server issued')
    const rows = this.db
      .prepare(
        `SELECT * FROM certificates WHERE id > @after
           AND (@spiffe IS NULL OR spiffe_id = @spiffe)
           AND (@status IS NULL
             OR (@status = 'revoked' AND status = 'revoked')
             OR (@status = 'valid' AND status = 'valid' AND not_after > @now)
             OR (@status = 'expired' AND status = 'valid' AND not_after <= @now))
         ORDER BY id LIMIT @limit`,
      )
      .all({
        after,
        spiffe: q.spiffeId ?? null,
        status: q.status ?? null,
        now: q.now,
        limit: q.limit + 1,
      }) as CertificateRow[]
    const page = rows.slice(0, q.limit)
    return {
      items: page.map(toCertificate),
      nextCursor: rows.length > q.limit ? encodeCursor(page.at(-1)!.id) : null,
    }
  }

  async isKeyCompromised(spkiSha256: string): Promise<boolean> {
    return this.#keyCompromised(spkiSha256)
  }

  #keyCompromised(spkiSha256: string): boolean {
    return (
      this.db.prepare('SELECT 1 FROM compromised_keys WHERE spki_sha256 = ?').get(spkiSha256) !==
      undefined
    )
  }

  #insert(c: NewCertificate): void {
    this.db
      .prepare(
        `INSERT INTO certificates (serial, kind, spiffe_id, entry_id, thumbprint, spki_sha256,
           not_before, not_after, renewed_from, der, issued_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        c.serial,
        c.kind,
        c.spiffeId,
        c.entryId,
        c.thumbprint,
        c.spkiSha256,
        c.notBefore,
        c.notAfter,
        c.renewedFrom,
        c.der,
        c.issuedAt,
      )
  }

  #entryEnabled(entryId: string | null): boolean {
    if (entryId === null) return true
    const row = this.db.prepare('SELECT enabled FROM entries WHERE id = ?').get(entryId) as
      Pick<EntryRow, 'enabled'> | undefined
    return row?.enabled === 1
  }

  /** Records a certificate the CA issued for itself (server TLS, admin credential). */
  async insert(c: NewCertificate, event: AuditInput): Promise<void> {
    this.db.transaction(() => {
      this.#insert(c)
      this.audit.write(c.issuedAt, event)
    })()
  }

  /**
   * Enrolment, one transaction: spend the join token only if still unused and unexpired
   * (a conditional update, so of N racing redemptions exactly one commits), re-check the
   * entry and the key, store the certificate, audit. Returns the refusal if nothing changed.
   */
  async commitEnrollment(
    joinTokenId: string,
    c: NewCertificate,
    event: AuditInput,
    now: number,
  ): Promise<CommitRefusalReason | undefined> {
    return this.db.transaction((): CommitRefusalReason | undefined => {
      if (!this.#entryEnabled(c.entryId)) return 'entry_disabled'
      if (this.#keyCompromised(c.spkiSha256)) return 'key_compromised'
      const spent = this.db
        .prepare(
          'UPDATE join_tokens SET used_at = ?, used_by = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?',
        )
        .run(now, c.serial, joinTokenId, now).changes
      if (spent !== 1) return 'join_token_spent'
      this.#insert(c)
      this.audit.write(c.issuedAt, event)
      return undefined
    })()
  }

  /** Renewal, one transaction: the parent must still be valid and current when it commits. */
  async commitRenewal(
    c: NewCertificate,
    event: AuditInput,
    now: number,
  ): Promise<CommitRefusalReason | undefined> {
    return this.db.transaction((): CommitRefusalReason | undefined => {
      const parent = this.db
        .prepare(
          `SELECT 1 FROM certificates WHERE serial = ? AND status = 'valid' AND not_after > ?`,
        )
        .get(c.renewedFrom, now)
      if (!parent) return 'parent_not_valid'
      if (!this.#entryEnabled(c.entryId)) return 'entry_disabled'
      if (this.#keyCompromised(c.spkiSha256)) return 'key_compromised'
      this.#insert(c)
      this.audit.write(c.issuedAt, event)
      return undefined
    })()
  }

  /**
   * Revokes a certificate and cascades, in one transaction: with keyCompromise every valid
   * certificate of the same key too (and the key is refused from then on); every token
   * family bound to a revoked certificate and every access token issued to one.
   */
  async revoke(
    serial: string,
    reason: string,
    now: number,
    actor: string,
  ): Promise<RevocationResult | undefined> {
    return this.db.transaction((): RevocationResult | undefined => {
      const row = this.db.prepare('SELECT * FROM certificates WHERE serial = ?').get(serial) as
        CertificateRow | undefined
      if (!row) return undefined
      const targets: string[] = []
      if (row.status === 'valid') targets.push(row.serial)
      if (reason === 'keyCompromise') {
        const sameKey = this.db
          .prepare(
            `SELECT serial FROM certificates WHERE spki_sha256 = ? AND status = 'valid' AND serial != ?`,
          )
          .all(row.spki_sha256, row.serial) as { serial: string }[]
        targets.push(...sameKey.map((r) => r.serial))
        // Whoever holds the key may already have renewed to a fresh key: the certificates
        // renewed from any of these, directly or further down, go too.
        const descendants = this.db
          .prepare(
            `WITH RECURSIVE down(serial) AS (
               SELECT value FROM json_each(?)
               UNION SELECT c.serial FROM certificates c JOIN down ON c.renewed_from = down.serial)
             SELECT serial FROM certificates WHERE serial IN (SELECT serial FROM down) AND status = 'valid'`,
          )
          .all(JSON.stringify([row.serial, ...targets])) as { serial: string }[]
        for (const d of descendants) if (!targets.includes(d.serial)) targets.push(d.serial)
        const added = this.db
          .prepare(
            'INSERT OR IGNORE INTO compromised_keys (spki_sha256, serial, at) VALUES (?, ?, ?)',
          )
          .run(row.spki_sha256, row.serial, now).changes
        if (added)
          this.audit.write(now, {
            actor,
            action: 'key.compromised',
            subject: row.serial,
            details: { spki_sha256: row.spki_sha256 },
          })
      }
      const revoke = this.db.prepare(
        `UPDATE certificates SET status = 'revoked', revoked_at = ?, revocation_reason = ? WHERE serial = ? AND status = 'valid'`,
      )
      const endFamilies = this.db.prepare(
        `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = 'certificate_revoked'
         WHERE cert_serial = ? AND status = 'active'`,
      )
      const endAccess = this.db.prepare(
        `UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND expires_at > ?
           AND (cert_serial = ? OR family_id IN (SELECT id FROM token_families WHERE cert_serial = ?))`,
      )
      let familiesRevoked = 0
      let accessTokensRevoked = 0
      for (const s of targets) {
        revoke.run(now, reason, s)
        accessTokensRevoked += endAccess.run(now, now, s, s).changes
        const families = endFamilies.run(now, s).changes
        familiesRevoked += families
        this.audit.write(now, {
          actor,
          action: 'certificate.revoke',
          subject: s,
          details: { reason, ...(s !== row.serial ? { cascaded_from: row.serial } : {}) },
        })
      }
      if (familiesRevoked || accessTokensRevoked) {
        this.audit.write(now, {
          actor,
          action: 'token.family.revoke_cascade',
          subject: row.serial,
          details: {
            cause: 'certificate_revoked',
            serials: targets,
            families: familiesRevoked,
            access_tokens: accessTokensRevoked,
          },
        })
      }
      return { changed: targets.length > 0, serials: targets, familiesRevoked, accessTokensRevoked }
    })()
  }

  /** Revoked certificates that have not yet expired (RFC 5280 §3.3: expired ones may leave the CRL). */
  async revokedForCrl(now: number): Promise<RevokedEntry[]> {
    const rows = this.db
      .prepare(
        `SELECT serial, revoked_at, revocation_reason FROM certificates
                WHERE status = 'revoked' AND not_after > ? ORDER BY revoked_at`,
      )
      .all(now) as { serial: string; revoked_at: number; revocation_reason: string }[]
    return rows.map((r) => ({
      serial: r.serial,
      revokedAt: r.revoked_at,
      reason: r.revocation_reason,
    }))
  }

  /** A strictly increasing, persisted CRL number (RFC 5280 §5.2.3). */
  async nextCrlNumber(): Promise<bigint> {
    return this.db.transaction(() => {
      this.db.prepare('UPDATE crl_state SET crl_number = crl_number + 1 WHERE id = 1').run()
      const r = this.db.prepare('SELECT crl_number FROM crl_state WHERE id = 1').get() as {
        crl_number: number
      }
      return BigInt(r.crl_number)
    })()
  }

  /** True when `serial` is `ancestor` or was renewed from it, directly or through further renewals. */
  async isSelfOrDescendant(serial: string, ancestor: string): Promise<boolean> {
    const row = this.db
      .prepare(
        `WITH RECURSIVE up(serial, parent, depth) AS (
           SELECT serial, renewed_from, 0 FROM certificates WHERE serial = ?
           UNION ALL
           SELECT c.serial, c.renewed_from, up.depth + 1 FROM certificates c JOIN up ON c.serial = up.parent
           WHERE up.depth < 10000)
         SELECT 1 FROM up WHERE serial = ? LIMIT 1`,
      )
      .get(serial, ancestor)
    return row !== undefined
  }

  async saveCaCertificate(c: CaCertificateRecord, now: number, event: AuditInput): Promise<void> {
    this.db.transaction(() => {
      this.db
        .prepare(
          `INSERT INTO ca_certificates (kind, serial, der, key_file, not_before, not_after, created_at)
                  VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(c.kind, c.serial, c.der, c.keyFile, c.notBefore, c.notAfter, now)
      this.audit.write(now, event)
    })()
  }

  async caCertificates(): Promise<CaCertificateRecord[]> {
    const rows = this.db
      .prepare(
        'SELECT kind, serial, der, key_file, not_before, not_after FROM ca_certificates ORDER BY id',
      )
      .all() as {
      kind: 'root' | 'intermediate'
      serial: string
      der: Buffer
      key_file: string
      not_before: number
      not_after: number
    }[]
    return rows.map((r) => ({
      kind: r.kind,
      serial: r.serial,
      der: new Uint8Array(r.der),
      keyFile: r.key_file,
      notBefore: r.not_before,
      notAfter: r.not_after,
    }))
  }
}
