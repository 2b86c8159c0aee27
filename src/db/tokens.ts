import type { Database } from 'better-sqlite3'
import type { AuditRepository } from './audit.js'
import type { AuditInput } from './types.js'

export interface FamilyRecord {
  readonly id: string
  readonly spiffeId: string
  readonly entryId: string | null
  readonly certSerial: string
  readonly scope: string | null
  readonly status: 'active' | 'revoked'
  readonly revokedReason: string | null
  readonly createdAt: number
}

export interface NewRefreshToken {
  readonly id: string
  readonly hash: string
  readonly issuedAt: number
  readonly expiresAt: number
}

export interface NewAccessToken {
  readonly jti: string
  readonly certSerial: string
  readonly spiffeId: string
  readonly kid: string
  readonly issuedAt: number
  readonly expiresAt: number
}

export interface RefreshTokenState {
  readonly id: string
  readonly hash: string
  readonly issuedAt: number
  readonly expiresAt: number
  readonly usedAt: number | null
  readonly family: FamilyRecord
}

/** An access token as introspection and revocation see it, with its certificate's state. */
export interface AccessTokenState {
  readonly jti: string
  readonly familyId: string | null
  readonly certSerial: string
  readonly spiffeId: string
  readonly expiresAt: number
  readonly revokedAt: number | null
  readonly familyStatus: 'active' | 'revoked' | null
  readonly certStatus: 'valid' | 'revoked'
  readonly certNotAfter: number
}

export type RefreshCommit = 'ok' | 'reused' | 'family_inactive'

interface FamilyRow {
  id: string
  spiffe_id: string
  entry_id: string | null
  cert_serial: string
  scope: string | null
  status: 'active' | 'revoked'
  revoked_reason: string | null
  created_at: number
}

function toFamily(r: FamilyRow): FamilyRecord {
  return {
    id: r.id,
    spiffeId: r.spiffe_id,
    entryId: r.entry_id,
    certSerial: r.cert_serial,
    scope: r.scope,
    status: r.status,
    revokedReason: r.revoked_reason,
    createdAt: r.created_at,
  }
}

/** Token families, refresh tokens (hashes only) and issued access tokens. */
export class TokenRepository {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditRepository,
  ) {}

  #insertRefresh(familyId: string, r: NewRefreshToken): void {
    this.db
      .prepare(
        'INSERT INTO refresh_tokens (id, token_hash, family_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(r.id, r.hash, familyId, r.issuedAt, r.expiresAt)
  }

  #insertAccess(familyId: string | null, a: NewAccessToken): void {
    this.db
      .prepare(
        `INSERT INTO access_tokens (jti, family_id, cert_serial, spiffe_id, kid, issued_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(a.jti, familyId, a.certSerial, a.spiffeId, a.kid, a.issuedAt, a.expiresAt)
  }

  /**
   * client_credentials, one transaction: a new family bound to the presented certificate,
   * committed only if that certificate is still valid (it may have been revoked while the
   * token was being signed).
   */
  async createFamily(
    family: Omit<FamilyRecord, 'status' | 'revokedReason'>,
    refresh: NewRefreshToken,
    access: NewAccessToken,
    event: AuditInput,
  ): Promise<boolean> {
    return this.db.transaction(() => {
      if (!this.#certStillValid(family.certSerial, access.issuedAt)) return false
      this.db
        .prepare(
          `INSERT INTO token_families (id, spiffe_id, entry_id, cert_serial, scope, created_at)
                  VALUES (?, ?, ?, ?, ?, ?)`,
        )
        .run(
          family.id,
          family.spiffeId,
          family.entryId,
          family.certSerial,
          family.scope,
          family.createdAt,
        )
      this.#insertRefresh(family.id, refresh)
      this.#insertAccess(family.id, access)
      this.audit.write(access.issuedAt, event)
      return true
    })()
  }

  /**
   * The commit-time re-check (LIFECYCLE invariant 7): the certificate is still valid and
   * current, and its entry (if any) still enabled — an admin may have revoked the one or
   * disabled the other while the token was being signed.
   */
  #certStillValid(serial: string, now: number): boolean {
    return (
      this.db
        .prepare(
          `SELECT 1 FROM certificates c LEFT JOIN entries e ON e.id = c.entry_id
                WHERE c.serial = ? AND c.status = 'valid' AND c.not_before <= ? AND c.not_after > ?
                  AND (c.entry_id IS NULL OR e.enabled = 1)`,
        )
        .get(serial, now, now) !== undefined
    )
  }

  async findRefreshToken(id: string): Promise<RefreshTokenState | undefined> {
    const row = this.db
      .prepare(
        `SELECT r.id AS rid, r.token_hash, r.issued_at, r.expires_at, r.used_at, f.*
                FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id WHERE r.id = ?`,
      )
      .get(id) as
      | (FamilyRow & {
          rid: string
          token_hash: string
          issued_at: number
          expires_at: number
          used_at: number | null
        })
      | undefined
    if (!row) return undefined
    return {
      id: row.rid,
      hash: row.token_hash,
      issuedAt: row.issued_at,
      expiresAt: row.expires_at,
      usedAt: row.used_at,
      family: toFamily(row),
    }
  }

  /**
   * Refresh, one transaction: spend the old refresh token with a conditional update. If it
   * was already spent (a replay, or a concurrent refresh that won) the family is revoked as
   * suspected theft, in the same transaction. Otherwise the family is re-bound to the
   * presented certificate, and the new refresh and access tokens are recorded.
   */
  async commitRefresh(p: {
    familyId: string
    oldRefreshId: string
    certSerial: string
    refresh: NewRefreshToken
    access: NewAccessToken
    event: AuditInput
    reuseEvent: AuditInput
  }): Promise<RefreshCommit> {
    const now = p.access.issuedAt
    return this.db.transaction((): RefreshCommit => {
      const family = this.db
        .prepare(`SELECT status FROM token_families WHERE id = ?`)
        .get(p.familyId) as { status: string } | undefined
      if (family?.status !== 'active' || !this.#certStillValid(p.certSerial, now))
        return 'family_inactive'
      const spent = this.db
        .prepare('UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL')
        .run(now, p.oldRefreshId).changes
      if (spent !== 1) {
        this.#revokeFamily(p.familyId, 'refresh_token_reuse', now)
        this.audit.write(now, p.reuseEvent)
        return 'reused'
      }
      this.db
        .prepare('UPDATE token_families SET cert_serial = ? WHERE id = ?')
        .run(p.certSerial, p.familyId)
      this.#insertRefresh(p.familyId, p.refresh)
      this.#insertAccess(p.familyId, p.access)
      this.audit.write(now, p.event)
      return 'ok'
    })()
  }

  #revokeFamily(familyId: string, reason: string, now: number): number {
    const changed = this.db
      .prepare(
        `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = ? WHERE id = ? AND status = 'active'`,
      )
      .run(now, reason, familyId).changes
    this.db
      .prepare(
        'UPDATE access_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL AND expires_at > ?',
      )
      .run(now, familyId, now)
    return changed
  }

  /** Revokes a family and its access tokens (reuse, client revocation). */
  async revokeFamily(
    familyId: string,
    reason: string,
    now: number,
    event: AuditInput,
  ): Promise<boolean> {
    return this.db.transaction(() => {
      const changed = this.#revokeFamily(familyId, reason, now)
      if (changed) this.audit.write(now, event)
      return changed > 0
    })()
  }

  async findAccessToken(jti: string): Promise<AccessTokenState | undefined> {
    const row = this.db
      .prepare(
        `SELECT a.jti, a.family_id, a.cert_serial, a.spiffe_id, a.expires_at, a.revoked_at,
                       f.status AS family_status, c.status AS cert_status, c.not_after AS cert_not_after
                FROM access_tokens a JOIN certificates c ON c.serial = a.cert_serial
                LEFT JOIN token_families f ON f.id = a.family_id WHERE a.jti = ?`,
      )
      .get(jti) as
      | {
          jti: string
          family_id: string | null
          cert_serial: string
          spiffe_id: string
          expires_at: number
          revoked_at: number | null
          family_status: 'active' | 'revoked' | null
          cert_status: 'valid' | 'revoked'
          cert_not_after: number
        }
      | undefined
    if (!row) return undefined
    return {
      jti: row.jti,
      familyId: row.family_id,
      certSerial: row.cert_serial,
      spiffeId: row.spiffe_id,
      expiresAt: row.expires_at,
      revokedAt: row.revoked_at,
      familyStatus: row.family_status,
      certStatus: row.cert_status,
      certNotAfter: row.cert_not_after,
    }
  }

  /** Deny-lists one access token by `jti` until its `exp` (RFC 7009). */
  async revokeAccessToken(jti: string, now: number, event: AuditInput): Promise<boolean> {
    return this.db.transaction(() => {
      const changed = this.db
        .prepare('UPDATE access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL')
        .run(now, jti).changes
      if (changed) this.audit.write(now, event)
      return changed > 0
    })()
  }

  async getFamily(id: string): Promise<FamilyRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM token_families WHERE id = ?').get(id) as
      FamilyRow | undefined
    return row && toFamily(row)
  }

  /**
   * Forgets what can no longer matter: access tokens past their exp, and refresh tokens and
   * families past every expiry (a replay of a purged refresh token is then just unknown).
   */
  async purgeExpired(now: number): Promise<{ accessTokens: number; refreshTokens: number }> {
    return this.db.transaction(() => {
      const accessTokens = this.db
        .prepare('DELETE FROM access_tokens WHERE expires_at < ?')
        .run(now).changes
      const refreshTokens = this.db
        .prepare('DELETE FROM refresh_tokens WHERE expires_at < ?')
        .run(now).changes
      this.db
        .prepare(
          `DELETE FROM token_families WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = token_families.id)
                  AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = token_families.id)`,
        )
        .run()
      return { accessTokens, refreshTokens }
    })()
  }
}
