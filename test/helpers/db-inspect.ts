import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { SqlValue } from '../../src/db/driver.js'
import type { PostgresDriver } from '../../src/db/postgres/driver.js'
import { openPostgresDriver } from '../../src/db/postgres/open.js'
import { toNumberedPlaceholders } from '../../src/db/postgres/placeholders.js'

type Query = <T = any>(sql: string, ...params: SqlValue[]) => Promise<T[]>

/**
 * Read access to a server's database from the test's side, for a server in another process
 * (ProcessServer) or one that is not running at all. SQLite: a read-only connection per query,
 * closed at once, so the test never holds the WAL index across a crash (a connection left open
 * would spare the next server the recovery a real crash makes it do). PostgreSQL: a pool.
 */
export interface DbInspector {
  readonly backend: 'sqlite' | 'postgres'
  query<T = any>(sql: string, ...params: SqlValue[]): Promise<T[]>
  /** Runs `f` with queries that all read one snapshot (one read-only transaction). */
  consistent<T>(f: (query: Query) => Promise<T>): Promise<T>
  /** Problems the backend's own checker finds (empty when healthy); see {@link integrityProblems}. */
  integrity(): Promise<string[]>
  close(): Promise<void>
}

export function inspectDatabase(target: { dataDir: string; url?: string }): DbInspector {
  return target.url === undefined
    ? sqliteInspector(join(target.dataDir, 'certbound.db'))
    : postgresInspector(target.url)
}

function sqliteInspector(file: string): DbInspector {
  const withDb = <T>(f: (db: Database.Database) => T): T => {
    const db = new Database(file, { readonly: true, fileMustExist: true })
    try {
      return f(db)
    } finally {
      db.close()
    }
  }
  return {
    backend: 'sqlite',
    query: async (sql, ...params) => withDb((db) => db.prepare(sql).all(...params) as any[]),
    consistent: async (f) => {
      const db = new Database(file, { readonly: true, fileMustExist: true })
      try {
        db.exec('BEGIN')
        const value = await f(async (sql, ...params) => db.prepare(sql).all(...params) as any[])
        db.exec('COMMIT')
        return value
      } finally {
        db.close()
      }
    },
    integrity: async () =>
      withDb((db) => {
        const problems: string[] = []
        const check = db.pragma('integrity_check') as { integrity_check: string }[]
        if (check.length !== 1 || check[0]!.integrity_check !== 'ok')
          problems.push(...check.map((r) => `integrity_check: ${r.integrity_check}`))
        for (const fk of db.pragma('foreign_key_check') as Record<string, unknown>[])
          problems.push(`foreign_key_check: ${JSON.stringify(fk)}`)
        return problems
      }),
    close: async () => undefined,
  }
}

function postgresInspector(url: string): DbInspector {
  let driver: Promise<PostgresDriver> | undefined
  const open = () => (driver ??= openPostgresDriver({ url, migrate: false }))
  const query = async <T>(sql: string, ...params: SqlValue[]) => (await open()).all<T>(sql, params)
  return {
    backend: 'postgres',
    query,
    consistent: async (f) =>
      (await open()).withClient(async (client) => {
        await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
        try {
          return await f(
            async (sql, ...params) =>
              (await client.query(toNumberedPlaceholders(sql), params)).rows as any[],
          )
        } finally {
          await client.query('ROLLBACK')
        }
      }),
    integrity: async () => postgresIntegrity(query),
    close: async () => {
      if (driver) await (await driver).close()
    },
  }
}

/**
 * PostgreSQL's structural checks where amcheck is available: `verify_heapam` on every table and
 * `bt_index_check` (with heapallindexed) on every B-tree index of the schema; the
 * foreign keys are enforced by the server itself, and re-checked by the callers' queries.
 */
async function postgresIntegrity(query: Query): Promise<string[]> {
  const available = await query(`SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'`)
  if (available.length === 0) return []
  await query('CREATE EXTENSION IF NOT EXISTS amcheck')
  const indexes = await query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_index i
       JOIN pg_class c ON c.oid = i.indexrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_am am ON am.oid = c.relam
     WHERE n.nspname = 'public' AND am.amname = 'btree'`,
  )
  const problems: string[] = []
  // verify_heapam (amcheck 1.3, PostgreSQL 14): every heap page and tuple of every table.
  const heapCheck = await query(`SELECT 1 FROM pg_proc WHERE proname = 'verify_heapam'`)
  if (heapCheck.length > 0) {
    const tables = await query<{ name: string }>(
      `SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'`,
    )
    for (const { name } of tables) {
      const rows = await query<{ msg: string }>(
        `SELECT msg FROM verify_heapam(?::regclass, on_error_stop => false)`,
        name,
      )
      for (const r of rows) problems.push(`verify_heapam(${name}): ${r.msg}`)
    }
  }
  for (const { name } of indexes) {
    try {
      await query(`SELECT bt_index_check(?::regclass, true)`, name)
    } catch (e) {
      problems.push(`bt_index_check(${name}): ${(e as Error).message}`)
    }
  }
  return problems
}
