import type { Database, Statement } from 'better-sqlite3'
import { toAudit, type AuditRow } from './rows.js'
import type { AuditInput, AuditRecord } from './types.js'

/** Audit events are written by the other repositories inside their own transactions. */
export class AuditRepository {
  readonly #insert: Statement
  constructor(private readonly db: Database) {
    this.#insert = db.prepare(
      'INSERT INTO audit_events (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)',
    )
  }

  /** Synchronous on purpose: callers are already inside a transaction. */
  write(at: number, event: AuditInput): void {
    const details = event.details === undefined ? null : JSON.stringify(event.details)
    this.#insert.run(at, event.actor, event.action, event.subject ?? null, details)
  }

  async record(at: number, event: AuditInput): Promise<void> {
    this.write(at, event)
  }

  async list(
    filter: { subject?: string; action?: string; limit?: number } = {},
  ): Promise<AuditRecord[]> {
    const rows = this.db
      .prepare(
        `SELECT * FROM audit_events
         WHERE (@subject IS NULL OR subject = @subject) AND (@action IS NULL OR action = @action)
         ORDER BY id LIMIT @limit`,
      )
      .all({
        subject: filter.subject ?? null,
        action: filter.action ?? null,
        limit: filter.limit ?? 1000,
      })
    return (rows as AuditRow[]).map(toAudit)
  }
}
