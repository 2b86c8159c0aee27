import type { Database } from 'better-sqlite3'
import { CAError } from '../errors.js'
import type { AuditRepository } from './audit.js'
import { decodeCursor, encodeCursor, toEntry, type EntryRow } from './rows.js'
import type { AuditInput, EntryRecord, Page, TtlCap } from './types.js'

export interface EntryPatch {
  readonly enabled?: boolean
  readonly dnsNames?: readonly string[]
  readonly maxTtl?: TtlCap | null
  readonly scopes?: readonly string[] | null
}

export interface JoinTokenInput {
  readonly id: string
  readonly tokenHash: string
  readonly entryId: string
  readonly expiresAt: number
}

export class EntryRepository {
  constructor(
    private readonly db: Database,
    private readonly audit: AuditRepository,
  ) {}

  async create(entry: EntryRecord, event: AuditInput): Promise<EntryRecord> {
    try {
      this.db.transaction(() => {
        this.db
          .prepare(
            `INSERT INTO entries (id, spiffe_id, dns_names, max_ttl_ms, max_ttl, scopes, enabled, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          )
          .run(
            entry.id,
            entry.spiffeId,
            JSON.stringify(entry.dnsNames),
            entry.maxTtl?.ms ?? null,
            entry.maxTtl?.text ?? null,
            entry.scopes === null ? null : JSON.stringify(entry.scopes),
            entry.enabled ? 1 : 0,
            entry.createdAt,
            entry.updatedAt,
          )
        this.audit.write(entry.createdAt, event)
      })()
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new CAError('ERR_CONFLICT', `an entry for ${entry.spiffeId} already exists`)
      }
      throw e
    }
    return entry
  }

  async get(id: string): Promise<EntryRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM entries WHERE id = ?').get(id) as
      EntryRow | undefined
    return row && toEntry(row)
  }

  async getBySpiffeId(spiffeId: string): Promise<EntryRecord | undefined> {
    const row = this.db.prepare('SELECT * FROM entries WHERE spiffe_id = ?').get(spiffeId) as
      EntryRow | undefined
    return row && toEntry(row)
  }

  async list(q: { cursor?: string; limit: number }): Promise<Page<EntryRecord>> {
    const after = decodeCursor(q.cursor)
    if (after === undefined)
      throw new CAError('ERR_BAD_REQUEST', 'cursor is not one this server issued')
    const rows = this.db
      .prepare('SELECT rowid AS rid, * FROM entries WHERE rowid > ? ORDER BY rowid LIMIT ?')
      .all(after, q.limit + 1) as (EntryRow & { rid: number })[]
    const page = rows.slice(0, q.limit)
    return {
      items: page.map(toEntry),
      nextCursor: rows.length > q.limit ? encodeCursor(page.at(-1)!.rid) : null,
    }
  }

  /**
   * Applies a patch; disabling also ends the entry's token families, in the same transaction.
   * Returns undefined for an unknown entry.
   */
  async update(
    id: string,
    patch: EntryPatch,
    now: number,
    event: AuditInput,
  ): Promise<EntryRecord | undefined> {
    return this.db.transaction(() => {
      const row = this.db.prepare('SELECT * FROM entries WHERE id = ?').get(id) as
        EntryRow | undefined
      if (!row) return undefined
      const before = toEntry(row)
      const after: EntryRecord = {
        ...before,
        enabled: patch.enabled ?? before.enabled,
        dnsNames: patch.dnsNames ?? before.dnsNames,
        maxTtl: patch.maxTtl === undefined ? before.maxTtl : patch.maxTtl,
        scopes: patch.scopes === undefined ? before.scopes : patch.scopes,
        updatedAt: now,
      }
      this.db
        .prepare(
          'UPDATE entries SET enabled = ?, dns_names = ?, max_ttl_ms = ?, max_ttl = ?, scopes = ?, updated_at = ? WHERE id = ?',
        )
        .run(
          after.enabled ? 1 : 0,
          JSON.stringify(after.dnsNames),
          after.maxTtl?.ms ?? null,
          after.maxTtl?.text ?? null,
          after.scopes === null ? null : JSON.stringify(after.scopes),
          now,
          id,
        )
      this.audit.write(now, event)
      if (before.enabled && !after.enabled) {
        const families = this.db
          .prepare(
            `UPDATE token_families SET status = 'revoked', revoked_at = ?, revoked_reason = 'entry_disabled'
             WHERE entry_id = ? AND status = 'active'`,
          )
          .run(now, id).changes
        const tokens = this.db
          .prepare(
            `UPDATE access_tokens SET revoked_at = ? WHERE revoked_at IS NULL AND expires_at > ?
               AND family_id IN (SELECT id FROM token_families WHERE entry_id = ?)`,
          )
          .run(now, now, id).changes
        if (families > 0 || tokens > 0) {
          this.audit.write(now, {
            actor: event.actor,
            action: 'token.family.revoke_cascade',
            subject: before.spiffeId,
            details: { cause: 'entry_disabled', entry_id: id, families, access_tokens: tokens },
          })
        }
      }
      return after
    })()
  }

  async createJoinToken(t: JoinTokenInput, now: number, event: AuditInput): Promise<void> {
    this.db.transaction(() => {
      this.db
        .prepare(
          'INSERT INTO join_tokens (id, token_hash, entry_id, expires_at, created_at) VALUES (?, ?, ?, ?, ?)',
        )
        .run(t.id, t.tokenHash, t.entryId, t.expiresAt, now)
      this.audit.write(now, event)
    })()
  }

  /** A join token by its lookup id, with its entry, if unused and unexpired. */
  async findJoinToken(
    id: string,
    now: number,
  ): Promise<{ id: string; tokenHash: string; entry: EntryRecord } | undefined> {
    const row = this.db
      .prepare(
        `SELECT j.id AS jid, j.token_hash AS jhash, e.* FROM join_tokens j JOIN entries e ON e.id = j.entry_id
         WHERE j.id = ? AND j.used_at IS NULL AND j.expires_at > ?`,
      )
      .get(id, now) as (EntryRow & { jid: string; jhash: string }) | undefined
    return row && { id: row.jid, tokenHash: row.jhash, entry: toEntry(row) }
  }
}
