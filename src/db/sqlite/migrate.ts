import { readdirSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { Database } from 'better-sqlite3'
import { CAError } from '../../errors.js'

/** `migrations/sqlite/` at the package root: the same depth from src/db/sqlite and dist/db/sqlite. */
export const MIGRATIONS_DIR = fileURLToPath(new URL('../../../migrations/sqlite/', import.meta.url))

export interface Migration {
  readonly version: number
  readonly name: string
  readonly sql: string
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => /^[0-9]{4}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({
      version: Number(f.slice(0, 4)),
      name: f,
      sql: readFileSync(`${dir}/${f}`, 'utf8'),
    }))
}

/**
 * Applies the pending migrations in order, each in its own `BEGIN IMMEDIATE` transaction
 * together with its row in `schema_migrations`, re-reading the version inside the transaction:
 * processes starting at the same moment apply each migration once. Re-running is a no-op. A
 * database migrated by newer code is refused rather than guessed at. Returns the versions
 * applied now.
 */
export function migrate(db: Database, migrations = readMigrations()): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`)
  const latest = migrations.at(-1)?.version ?? 0
  const versionNow = () =>
    (db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as { v: number | null })
      .v ?? 0
  const record = db.prepare(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  )
  const applied: number[] = []
  const step = db.transaction((m: Migration | undefined) => {
    const current = versionNow()
    if (current > latest) {
      throw new CAError(
        'ERR_DB_TOO_NEW',
        `database schema version ${current} is newer than this certbound (knows up to ${latest}); ` +
          'upgrade certbound or restore a matching backup',
      )
    }
    if (m === undefined || m.version <= current) return
    db.exec(m.sql)
    record.run(m.version, m.name, Date.now())
    applied.push(m.version)
  })
  step.immediate(undefined)
  for (const m of migrations) step.immediate(m)
  return applied
}
