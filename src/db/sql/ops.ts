import type { SqlDriver } from '../driver.js'
import type { OpsStore } from '../port.js'

/**
 * Operators' reads. The few engine-specific statements (sizes, clocks, integrity) are chosen by
 * dialect here; everything else is the portable SQL of the other repositories.
 */
export class SqlOpsStore implements OpsStore {
  constructor(private readonly db: SqlDriver) {}

  async schemaVersion(): Promise<number> {
    const row = await this.db.get<{ v: number | null }>(
      'SELECT max(version) AS v FROM schema_migrations',
    )
    return row?.v ?? 0
  }

  async expiringCertificates(now: number, until: number): Promise<number> {
    const row = await this.db.get<{ n: number }>(
      `SELECT count(*) AS n FROM certificates
       WHERE status = 'valid' AND not_after > ? AND not_after <= ?`,
      [now, until],
    )
    return row?.n ?? 0
  }

  async databaseBytes(): Promise<number> {
    const sql =
      this.db.dialect === 'sqlite'
        ? 'SELECT p.page_count * s.page_size AS bytes FROM pragma_page_count() p, pragma_page_size() s'
        : 'SELECT pg_database_size(current_database()) AS bytes'
    return (await this.db.get<{ bytes: number }>(sql))?.bytes ?? 0
  }

  async databaseTime(): Promise<number> {
    const sql =
      this.db.dialect === 'sqlite'
        ? // SQLite has no clock of its own: this is the host's, as libc gives it to SQLite.
          "SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS t"
        : 'SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS t'
    return (await this.db.get<{ t: number }>(sql))!.t
  }

  async integrityProblems(): Promise<string[]> {
    if (this.db.dialect === 'sqlite') {
      const rows = await this.db.all<{ integrity_check: string }>('PRAGMA integrity_check')
      const problems = rows.map((r) => r.integrity_check).filter((m) => m !== 'ok')
      const orphans = await this.db.all<{ table: string; parent: string }>(
        'SELECT "table", parent FROM pragma_foreign_key_check()',
      )
      return [
        ...problems,
        ...orphans.map((o) => `${o.table}: a row refers to a missing ${o.parent}`),
      ]
    }
    // PostgreSQL checks its pages itself (data checksums, when enabled); what can be asked
    // without an extension: checksum failures seen, and indexes left invalid. pg_amcheck goes
    // further (README "Operating certbound").
    const checksums = await this.db.get<{ n: number | null }>(
      `SELECT checksum_failures AS n FROM pg_stat_database WHERE datname = current_database()`,
    )
    const invalid = await this.db.all<{ name: string }>(
      `SELECT c.relname AS name FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE NOT i.indisvalid AND n.nspname = current_schema()`,
    )
    return [
      ...((checksums?.n ?? 0) > 0 ? [`${checksums!.n} data checksum failures`] : []),
      ...invalid.map((i) => `index ${i.name} is invalid`),
    ]
  }

  busyRetries(): number {
    return this.db.stats.busyRetries
  }
}
