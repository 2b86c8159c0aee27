import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { EntryStore } from '../port.js'
import type {
  AuditInput,
  EntryPatch,
  EntryRecord,
  FoundJoinToken,
  JoinTokenInput,
  Page,
} from '../types.js'
import { writeAudit } from './audit.js'
import { decodeCursor, encodeCursor, toEntry, type EntryRow } from './rows.js'

function entryColumns(e: EntryRecord) {
  return [
    JSON.stringify(e.dnsNames),
    e.maxTtl?.ms ?? null,
    e.maxTtl?.text ?? null,
    e.scopes === null ? null : JSON.stringify(e.scopes),
    e.subjectCn ?? null,
    e.oidc === null ? null : JSON.stringify(e.oidc),
    e.enabled ? 1 : 0,
    e.renewAfterExpiry?.ms ?? null,
    e.renewAfterExpiry?.text ?? null,
  ]
}

/** Ends an entry's token families and their access tokens (entry disabled). */
async function endEntryFamilies(
  tx: SqlExecutor,
  entry: EntryRecord,
  now: number,
  actor: string,
): Promise<void> {
  // Access tokens first, while their families are active (see endBoundTokens).
  const tokens = await tx.run(
    `UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND expires_at > ?
       AND family_id IN (SELECT id FROM token_families WHERE entry_id = ? AND status = 'active')`,
    [now, now, entry.id],
  )
  const families = await tx.run(
    `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = 'entry_disabled'
     WHERE entry_id = ? AND status = 'active'`,
    [now, entry.id],
  )
  if (families > 0 || tokens > 0) {
    await writeAudit(tx, now, {
      actor,
      action: 'token.family.revoke_cascade',
      subject: entry.spiffeId,
      details: { cause: 'entry_disabled', entry_id: entry.id, families, access_tokens: tokens },
    })
  }
}

export class SqlEntryStore implements EntryStore {
  constructor(private readonly db: SqlDriver) {}

  async create(entry: EntryRecord, event: AuditInput): Promise<EntryRecord> {
    await this.db.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO entries (id, spiffe_id, dns_names, max_ttl_ms, max_ttl, scopes, subject_cn,
           oidc, enabled, renew_after_expiry_ms, renew_after_expiry, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        [entry.id, entry.spiffeId, ...entryColumns(entry), entry.createdAt, entry.updatedAt],
      )
      await writeAudit(tx, entry.createdAt, event)
    })
    return entry
  }

  async get(id: string): Promise<EntryRecord | undefined> {
    const row = await this.db.get<EntryRow>('SELECT * FROM entries WHERE id = ?', [id])
    return row && toEntry(row)
  }

  async getBySpiffeId(spiffeId: string): Promise<EntryRecord | undefined> {
    const row = await this.db.get<EntryRow>('SELECT * FROM entries WHERE spiffe_id = ?', [spiffeId])
    return row && toEntry(row)
  }

  async list(q: { cursor?: string; limit: number }): Promise<Page<EntryRecord>> {
    const after = decodeCursor<[number, string]>(q.cursor, ['number', 'string'])
    const rows = await this.db.all<EntryRow>(
      after === undefined
        ? 'SELECT * FROM entries ORDER BY created_at, id LIMIT ?'
        : `SELECT * FROM entries WHERE created_at > ? OR (created_at = ? AND id > ?)
           ORDER BY created_at, id LIMIT ?`,
      after === undefined ? [q.limit + 1] : [after[0], after[0], after[1], q.limit + 1],
    )
    const page = rows.slice(0, q.limit)
    const last = page.at(-1)
    return {
      items: page.map(toEntry),
      nextCursor: rows.length > q.limit && last ? encodeCursor([last.created_at, last.id]) : null,
    }
  }

  update(
    id: string,
    patch: EntryPatch,
    now: number,
    event: AuditInput,
  ): Promise<EntryRecord | undefined> {
    return this.db.transaction(async (tx) => {
      const row = await tx.get<EntryRow>(`SELECT * FROM entries WHERE id = ?${this.db.forUpdate}`, [
        id,
      ])
      if (!row) return undefined
      const before = toEntry(row)
      const after: EntryRecord = {
        ...before,
        enabled: patch.enabled ?? before.enabled,
        dnsNames: patch.dnsNames ?? before.dnsNames,
        maxTtl: patch.maxTtl === undefined ? before.maxTtl : patch.maxTtl,
        scopes: patch.scopes === undefined ? before.scopes : patch.scopes,
        subjectCn: patch.subjectCn === undefined ? before.subjectCn : patch.subjectCn,
        renewAfterExpiry:
          patch.renewAfterExpiry === undefined ? before.renewAfterExpiry : patch.renewAfterExpiry,
        oidc: patch.oidc === undefined ? before.oidc : patch.oidc,
        updatedAt: now,
      }
      await tx.run(
        `UPDATE entries SET dns_names = ?, max_ttl_ms = ?, max_ttl = ?, scopes = ?, subject_cn = ?,
           oidc = ?, enabled = ?, renew_after_expiry_ms = ?, renew_after_expiry = ?, updated_at = ?
         WHERE id = ?`,
        [...entryColumns(after), now, id],
      )
      await writeAudit(tx, now, event)
      if (before.enabled && !after.enabled) await endEntryFamilies(tx, after, now, event.actor)
      return after
    })
  }

  async createJoinToken(t: JoinTokenInput, now: number, event: AuditInput): Promise<void> {
    await this.db.transaction(async (tx) => {
      await tx.run(
        'INSERT INTO join_tokens (id, token_hash, entry_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?)',
        [t.id, t.tokenHash, t.entryId, t.expiresAt, now],
      )
      await writeAudit(tx, now, event)
    })
  }

  async findJoinToken(id: string, now: number): Promise<FoundJoinToken | undefined> {
    const row = await this.db.get<EntryRow & { jid: string; jhash: string }>(
      `SELECT j.id AS jid, j.token_hash AS jhash, e.* FROM join_tokens j JOIN entries e ON e.id = j.entry_id
       WHERE j.id = ? AND j.used_at IS NULL AND j.expires_at > ?`,
      [id, now],
    )
    return row && { id: row.jid, tokenHash: row.jhash, entry: toEntry(row) }
  }
}
