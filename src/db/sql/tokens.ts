import { setTimeout as sleep } from 'node:timers/promises'
import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { TokenStore } from '../port.js'
import type {
  AccessTokenState,
  AuditInput,
  FamilyRecord,
  NewAccessToken,
  NewFamily,
  NewRefreshToken,
  RefreshCommit,
  RefreshCommitInput,
  RefreshTokenState,
} from '../types.js'
import { writeAudit } from './audit.js'

// Rows of each kind a purge deletes per transaction (ids bound as parameters: well under
// SQLite's 32,766 and PostgreSQL's 65,535).
const PURGE_CHUNK = 1_000

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ')

interface FamilyRow {
  id: string
  spiffe_id: string
  entry_id: string | null
  cert_serial: string
  scope: string | null
  status: 'active' | 'revoked'
  revoked_reason: string | null
  created_at: number
  /** The lineage of the certificate it is bound to (joined, not stored). */
  lineage_id: string | null
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
    lineageId: r.lineage_id,
  }
}

function insertRefresh(tx: SqlExecutor, familyId: string, r: NewRefreshToken): Promise<number> {
  return tx.run(
    'INSERT INTO refresh_tokens (id, token_hash, family_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)',
    [r.id, r.hash, familyId, r.issuedAt, r.expiresAt],
  )
}

function insertAccess(tx: SqlExecutor, familyId: string | null, a: NewAccessToken) {
  return tx.run(
    `INSERT INTO access_tokens (jti, family_id, cert_serial, spiffe_id, kid, issued_at, expires_at, token_sha256)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    [a.jti, familyId, a.certSerial, a.spiffeId, a.kid, a.issuedAt, a.expiresAt, a.sha256],
  )
}

async function revokeFamilyRows(
  tx: SqlExecutor,
  familyId: string,
  reason: string,
  now: number,
): Promise<number> {
  const changed = await tx.run(
    `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = ?
     WHERE id = ? AND status = 'active'`,
    [now, reason, familyId],
  )
  await tx.run(
    'UPDATE access_tokens SET revoked_at = ? WHERE family_id = ? AND revoked_at IS NULL AND expires_at > ?',
    [now, familyId, now],
  )
  return changed
}

/** Token families, refresh tokens (hashes only) and issued access tokens. */
export class SqlTokenStore implements TokenStore {
  constructor(private readonly db: SqlDriver) {}

  /**
   * The commit-time re-check (LIFECYCLE invariant 7): the certificate is still valid, current
   * (not retired by the first use of its lineage's next generation) and in its window, and its
   * entry (if any) still enabled — an admin may have revoked the one or disabled the other while
   * the token was being signed. Kept even though signing is synchronous today: it is what makes
   * the commit safe whatever ran before it. The share locks make a concurrent revocation or
   * disable wait for this commit, then see its rows. The request's peer address is recorded as
   * the certificate's last use when it changed (a write only then).
   */
  async #certStillValid(
    tx: SqlExecutor,
    serial: string,
    now: number,
    peer: string | null | undefined,
  ): Promise<boolean> {
    // The certificate and its entry in one statement (every OAuth client has an entry); a
    // certificate without one, never a client today, takes the two-statement path.
    const window = `c.serial = ? AND c.status = 'valid' AND c.not_before <= ? AND c.not_after > ?
         AND (c.lineage_state IS NULL OR c.lineage_state <> 'retired')`
    let cert = await tx.get<{ entry_id: string | null; last_peer: string | null; enabled: number }>(
      `SELECT c.entry_id, c.last_peer, e.enabled FROM certificates c
         JOIN entries e ON e.id = c.entry_id WHERE ${window}${this.db.forShare}`,
      [serial, now, now],
    )
    if (cert === undefined) {
      cert = await tx.get(
        `SELECT c.entry_id, c.last_peer, 1 AS enabled FROM certificates c
           WHERE ${window} AND c.entry_id IS NULL${this.db.forShare}`,
        [serial, now, now],
      )
    }
    if (cert?.enabled !== 1) return false
    if (peer && peer !== cert.last_peer)
      await tx.run('UPDATE certificates SET last_peer = ? WHERE serial = ?', [peer, serial])
    return true
  }

  createFamily(
    family: NewFamily,
    refresh: NewRefreshToken,
    access: NewAccessToken,
    event: AuditInput,
  ): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      if (!(await this.#certStillValid(tx, family.certSerial, access.issuedAt, family.peer)))
        return false
      await tx.run(
        `INSERT INTO token_families (id, spiffe_id, entry_id, cert_serial, scope, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
        [
          family.id,
          family.spiffeId,
          family.entryId,
          family.certSerial,
          family.scope,
          family.createdAt,
        ],
      )
      await insertRefresh(tx, family.id, refresh)
      await insertAccess(tx, family.id, access)
      await writeAudit(tx, access.issuedAt, event)
      return true
    })
  }

  async findRefreshToken(id: string): Promise<RefreshTokenState | undefined> {
    const row = await this.db.get<
      FamilyRow & {
        rid: string
        token_hash: string
        issued_at: number
        expires_at: number
        used_at: number | null
      }
    >(
      `SELECT r.id AS rid, r.token_hash, r.issued_at, r.expires_at, r.used_at, f.*,
         c.lineage_id AS lineage_id
       FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id
       JOIN certificates c ON c.serial = f.cert_serial WHERE r.id = ?`,
      [id],
    )
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

  commitRefresh(p: RefreshCommitInput): Promise<RefreshCommit> {
    const now = p.access.issuedAt
    return this.db.transaction(async (tx): Promise<RefreshCommit> => {
      const family = await tx.get<{ status: string; cert_serial: string }>(
        `SELECT status, cert_serial FROM token_families WHERE id = ?${this.db.forUpdate}`,
        [p.familyId],
      )
      if (
        family?.status !== 'active' ||
        !(await this.#certStillValid(tx, p.certSerial, now, p.peer))
      )
        return 'family_inactive'
      // Single use: of two refreshes with one token, one changes the row; the other is reuse.
      const spent = await tx.run(
        'UPDATE refresh_tokens SET used_at = ? WHERE id = ? AND used_at IS NULL',
        [now, p.oldRefreshId],
      )
      if (spent !== 1) {
        await revokeFamilyRows(tx, p.familyId, 'refresh_token_reuse', now)
        await writeAudit(tx, now, p.reuseEvent)
        return 'reused'
      }
      // Re-bound only when refreshed with another certificate of its lineage (a renewal).
      if (family.cert_serial !== p.certSerial)
        await tx.run('UPDATE token_families SET cert_serial = ? WHERE id = ?', [
          p.certSerial,
          p.familyId,
        ])
      await insertRefresh(tx, p.familyId, p.refresh)
      await insertAccess(tx, p.familyId, p.access)
      await writeAudit(tx, now, p.event)
      return 'ok'
    })
  }

  revokeFamily(familyId: string, reason: string, now: number, event: AuditInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await revokeFamilyRows(tx, familyId, reason, now)
      if (changed) await writeAudit(tx, now, event)
      return changed > 0
    })
  }

  async findAccessToken(jti: string): Promise<AccessTokenState | undefined> {
    const row = await this.db.get<{
      jti: string
      family_id: string | null
      cert_serial: string
      spiffe_id: string
      kid: string
      expires_at: number
      revoked_at: number | null
      token_sha256: Uint8Array | null
      family_status: 'active' | 'revoked' | null
      cert_status: 'valid' | 'revoked'
      cert_not_after: number
    }>(
      `SELECT a.jti, a.family_id, a.cert_serial, a.spiffe_id, a.kid, a.expires_at, a.revoked_at,
              a.token_sha256, f.status AS family_status, c.status AS cert_status, c.not_after AS cert_not_after
       FROM access_tokens a JOIN certificates c ON c.serial = a.cert_serial
       LEFT JOIN token_families f ON f.id = a.family_id WHERE a.jti = ?`,
      [jti],
    )
    if (!row) return undefined
    return {
      jti: row.jti,
      familyId: row.family_id,
      certSerial: row.cert_serial,
      spiffeId: row.spiffe_id,
      kid: row.kid,
      expiresAt: row.expires_at,
      revokedAt: row.revoked_at,
      sha256: row.token_sha256 === null ? null : new Uint8Array(row.token_sha256),
      familyStatus: row.family_status,
      certStatus: row.cert_status,
      certNotAfter: row.cert_not_after,
    }
  }

  revokeAccessToken(jti: string, now: number, event: AuditInput): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const changed = await tx.run(
        'UPDATE access_tokens SET revoked_at = ? WHERE jti = ? AND revoked_at IS NULL',
        [now, jti],
      )
      if (changed) await writeAudit(tx, now, event)
      return changed > 0
    })
  }

  async getFamily(id: string): Promise<FamilyRecord | undefined> {
    const row = await this.db.get<FamilyRow>(
      `SELECT f.*, c.lineage_id AS lineage_id FROM token_families f
       JOIN certificates c ON c.serial = f.cert_serial WHERE f.id = ?`,
      [id],
    )
    return row && toFamily(row)
  }

  /**
   * Forgets what can no longer matter: access tokens past their exp, and refresh tokens and
   * families past every expiry (a replay of a purged refresh token is then just unknown). A
   * family loses its last token only here, so only the families of the tokens just deleted
   * are looked at: a scan of every family took 2 s of a million-family database, with the event
   * loop stopped, every hour. In chunks, each its own transaction: a backlog (a restart after a
   * long stop) is forgotten bit by bit while requests go on.
   */
  async purgeExpired(
    now: number,
    { chunk = PURGE_CHUNK, budgetMs = Infinity }: { chunk?: number; budgetMs?: number } = {},
  ): Promise<{ accessTokens: number; refreshTokens: number; complete: boolean }> {
    const total = { accessTokens: 0, refreshTokens: 0 }
    const deadline = performance.now() + budgetMs
    for (;;) {
      const started = performance.now()
      const done = await this.db.transaction(async (tx) => {
        const access = await tx.all<{ jti: string; family_id: string | null }>(
          'SELECT jti, family_id FROM access_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ?',
          [now, chunk],
        )
        const refresh = await tx.all<{ id: string; family_id: string }>(
          'SELECT id, family_id FROM refresh_tokens WHERE expires_at < ? ORDER BY expires_at LIMIT ?',
          [now, chunk],
        )
        if (access.length > 0)
          await tx.run(
            `DELETE FROM access_tokens WHERE jti IN (${marks(access.length)})`,
            access.map((a) => a.jti),
          )
        if (refresh.length > 0)
          await tx.run(
            `DELETE FROM refresh_tokens WHERE id IN (${marks(refresh.length)})`,
            refresh.map((r) => r.id),
          )
        const families = [
          ...new Set([...access.map((a) => a.family_id), ...refresh.map((r) => r.family_id)]),
        ].filter((id): id is string => id !== null)
        if (families.length > 0)
          await tx.run(
            `DELETE FROM token_families WHERE id IN (${marks(families.length)})
               AND NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.family_id = token_families.id)
               AND NOT EXISTS (SELECT 1 FROM access_tokens a WHERE a.family_id = token_families.id)`,
            families,
          )
        total.accessTokens += access.length
        total.refreshTokens += refresh.length
        return access.length < chunk && refresh.length < chunk
      })
      if (done) return { ...total, complete: true }
      if (performance.now() >= deadline) return { ...total, complete: false }
      // A backlog gets at most a quarter of the writer: each chunk holds it (the event loop
      // too, on SQLite) while its rows are deleted; requests go first in the pause after it.
      await sleep((performance.now() - started) * 3)
    }
  }
}
