import { fileURLToPath } from 'node:url'
import type pg from 'pg'
import { CAError } from '../../errors.js'
import { readMigrations, type Migration } from '../sqlite/migrate.js'
import type { PostgresDriver } from './driver.js'

/** `migrations/postgres/` at the package root: the same depth from src/db/postgres and dist/. */
export const POSTGRES_MIGRATIONS_DIR = fileURLToPath(
  new URL('../../../migrations/postgres/', import.meta.url),
)

/**
 * One key for every certbound schema change in a database (advisory locks are per database):
 * "certboun" in ASCII (the first eight bytes of "certbound", which fit a signed 64-bit integer).
 */
export const MIGRATION_LOCK_KEY = '7162256626595886446'

/** The refusal of a schema migrated by newer code: the SQLite backend's words exactly. */
export function schemaTooNew(current: number, latest: number): CAError {
  return new CAError(
    'ERR_DB_TOO_NEW',
    `database schema version ${current} is newer than this certbound (knows up to ${latest}); ` +
      'upgrade certbound or restore a matching backup',
  )
}

/**
 * Applies the pending migrations in one transaction under a transaction-level advisory lock:
 * replicas that start at the same moment queue on the lock, the first applies, the others
 * then find nothing to do. DDL is transactional in PostgreSQL, so a failed migration leaves
 * the schema as it was. A schema newer than the code is refused. Returns the versions applied.
 */
export async function migratePostgres(
  driver: PostgresDriver,
  migrations: readonly Migration[] = readMigrations(POSTGRES_MIGRATIONS_DIR),
): Promise<number[]> {
  return driver.withClient(async (client) => {
    await client.query('BEGIN')
    try {
      const applied = await migrateLocked(client, migrations)
      await client.query('COMMIT')
      return applied
    } catch (e) {
      // The first error is the one to report; a lost connection rolls back by itself.
      await client.query('ROLLBACK').catch(() => {})
      throw e
    }
  })
}

async function migrateLocked(
  client: pg.PoolClient,
  migrations: readonly Migration[],
): Promise<number[]> {
  // Another replica's migration may take a while: wait for it however long the pool's
  // lock_timeout (database.busy_timeout) is.
  await client.query('SET LOCAL lock_timeout = 0')
  await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK_KEY])
  await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`)
  const { rows } = await client.query<{ v: number | null }>(
    'SELECT max(version) AS v FROM schema_migrations',
  )
  const current = rows[0]?.v ?? 0
  const latest = migrations.at(-1)?.version ?? 0
  if (current > latest) throw schemaTooNew(current, latest)
  const applied: number[] = []
  for (const m of migrations) {
    if (m.version <= current) continue
    // No parameters: the simple query protocol runs a file of several statements.
    await client.query(m.sql)
    await client.query(
      'INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
      [m.version, m.name, Date.now()],
    )
    applied.push(m.version)
  }
  return applied
}
