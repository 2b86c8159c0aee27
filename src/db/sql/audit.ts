import type { SqlDriver, SqlExecutor } from '../driver.js'
import type { AuditStore } from '../port.js'
import type { AuditInput, AuditRecord } from '../types.js'
import { toAudit, type AuditRow } from './rows.js'

/** Writes an audit event inside the caller's transaction (every state change has one). */
export function writeAudit(tx: SqlExecutor, at: number, event: AuditInput): Promise<number> {
  const details = event.details === undefined ? null : JSON.stringify(event.details)
  return tx.run(
    'INSERT INTO audit_events (at, actor, action, subject, details) VALUES (?, ?, ?, ?, ?)',
    [at, event.actor, event.action, event.subject ?? null, details],
  )
}

export class SqlAuditStore implements AuditStore {
  constructor(private readonly db: SqlDriver) {}

  async record(at: number, event: AuditInput): Promise<void> {
    await this.db.transaction((tx) => writeAudit(tx, at, event))
  }

  async list(
    filter: { subject?: string; action?: string; limit?: number } = {},
  ): Promise<AuditRecord[]> {
    const where: string[] = []
    const params: (string | number)[] = []
    // Conditions are added in JS: `? IS NULL` has no type to infer in PostgreSQL.
    if (filter.subject !== undefined) {
      where.push('subject = ?')
      params.push(filter.subject)
    }
    if (filter.action !== undefined) {
      where.push('action = ?')
      params.push(filter.action)
    }
    const rows = await this.db.all<AuditRow>(
      `SELECT * FROM audit_events ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY id LIMIT ?`,
      [...params, filter.limit ?? 1000],
    )
    return rows.map(toAudit)
  }
}
