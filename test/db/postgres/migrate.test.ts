import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { migrate, readMigrations } from '../../../src/db/sqlite/migrate.js'
import { PostgresDriver } from '../../../src/db/postgres/driver.js'
import { migratePostgres, POSTGRES_MIGRATIONS_DIR } from '../../../src/db/postgres/migrate.js'
import { openPostgresDriver, poolConfig } from '../../../src/db/postgres/open.js'
import { CAError } from '../../../src/errors.js'
import { createTestDatabase, testPostgres, type TestDatabase } from '../../helpers/postgres.js'

const TSX = join(process.cwd(), 'node_modules/.bin/tsx')

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (e) {
    return e as Error & { code?: string }
  }
  throw new Error('resolved, expected a rejection')
}

/** A migrated SQLite database file, to hold the PostgreSQL schema against. */
function sqliteSchema(dir: string): Database.Database {
  const db = new Database(join(dir, 'certbound.db'))
  migrate(db)
  return db
}

const postgres = await testPostgres()
describe.skipIf(!postgres.cluster)(`PostgreSQL migrations${postgres.skipped}`, () => {
  const dbs: TestDatabase[] = []
  let dir: string
  const fresh = async () => {
    const db = await createTestDatabase(postgres.cluster!)
    dbs.push(db)
    return db
  }
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'certbound-pgmig-'))
  })
  afterAll(async () => {
    for (const db of dbs) await db.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('has the same numbered migrations as SQLite, applied in order once', async () => {
    const pgMigrations = readMigrations(POSTGRES_MIGRATIONS_DIR)
    expect(pgMigrations.map((m) => m.name)).toEqual(readMigrations().map((m) => m.name))
    const driver = await openPostgresDriver({ url: (await fresh()).url })
    try {
      expect(
        await driver.all('SELECT version, name FROM schema_migrations ORDER BY version'),
      ).toEqual(pgMigrations.map((m) => ({ version: m.version, name: m.name })))
      expect(await migratePostgres(driver)).toEqual([])
    } finally {
      await driver.close()
    }
  })

  it('makes the tables, columns (types and NOT NULL) and indexes SQLite has', async () => {
    const sqlite = sqliteSchema(dir)
    const driver = await openPostgresDriver({ url: (await fresh()).url })
    try {
      const sqliteTables = (
        sqlite
          .prepare(
            `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`,
          )
          .all() as { name: string }[]
      ).map((r) => r.name)
      const kind: Record<string, string> = {
        bigint: 'INTEGER',
        integer: 'INTEGER',
        text: 'TEXT',
        bytea: 'BLOB',
      }
      const pgColumns = await driver.all<{ t: string; c: string; type: string; nullable: string }>(
        `SELECT table_name AS t, column_name AS c, data_type AS type, is_nullable AS nullable
         FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`,
      )
      const pgTables = [...new Set(pgColumns.map((r) => r.t))]
      expect(pgTables.sort()).toEqual([...sqliteTables].sort())
      for (const table of sqliteTables) {
        const expected = (
          sqlite.prepare(`PRAGMA table_info(${table})`).all() as {
            name: string
            type: string
            notnull: number
            pk: number
          }[]
        ).map((c) => ({ c: c.name, type: c.type, notNull: c.notnull === 1 || c.pk === 1 }))
        const actual = pgColumns
          .filter((r) => r.t === table)
          .map((r) => ({ c: r.c, type: kind[r.type] ?? r.type, notNull: r.nullable === 'NO' }))
        expect(actual, table).toEqual(expected)
      }
      const sqliteIndexes = (
        sqlite
          .prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL`)
          .all() as { name: string }[]
      ).map((r) => r.name)
      const pgIndexes = (
        await driver.all<{ name: string }>(
          `SELECT indexname AS name FROM pg_indexes WHERE schemaname = 'public'
           AND indexname NOT LIKE '%\\_pkey' AND indexname NOT LIKE '%\\_key'`,
        )
      ).map((r) => r.name)
      expect(pgIndexes.sort()).toEqual(sqliteIndexes.sort())
    } finally {
      sqlite.close()
      await driver.close()
    }
  })

  it('0004 writes the same ttl texts as on SQLite', async () => {
    const all = readMigrations(POSTGRES_MIGRATIONS_DIR)
    const upTo = (v: number) => all.filter((m) => m.version <= v)
    const driver = new PostgresDriver(poolConfig({ url: (await fresh()).url }))
    const sqlite = new Database(':memory:')
    try {
      await migratePostgres(driver, upTo(3))
      migrate(
        sqlite,
        readMigrations().filter((m) => m.version <= 3),
      )
      const ttls = [86_400_000, 5_400_000, 7_200_000, 1500, null]
      for (const [i, ms] of ttls.entries()) {
        const row = [`e${i}`, `spiffe://example.org/w${i}`, ms, 1, 1]
        const sql = `INSERT INTO entries (id, spiffe_id, max_ttl_ms, created_at, updated_at) VALUES (?, ?, ?, ?, ?)`
        await driver.run(sql, row)
        sqlite.prepare(sql).run(...row)
      }
      await migratePostgres(driver, upTo(4))
      migrate(
        sqlite,
        readMigrations().filter((m) => m.version <= 4),
      )
      const read = 'SELECT id, max_ttl FROM entries ORDER BY id'
      const expected = sqlite.prepare(read).all()
      expect(expected.map((r) => (r as { max_ttl: unknown }).max_ttl)).toEqual([
        '1d',
        '90m',
        '2h',
        '1s',
        null,
      ])
      expect(await driver.all(read)).toEqual(expected)
    } finally {
      sqlite.close()
      await driver.close()
    }
  })

  it('a failing migration leaves the schema as it was (transactional DDL)', async () => {
    const driver = new PostgresDriver(poolConfig({ url: (await fresh()).url }))
    try {
      const broken = [
        { version: 1, name: '0001_a.sql', sql: 'CREATE TABLE a (x INTEGER)' },
        { version: 2, name: '0002_b.sql', sql: 'CREATE TABLE b (x INTEGER); CREATE TABLEX c ()' },
      ]
      const e = await rejection(migratePostgres(driver, broken))
      expect(e.code).toBe('42601')
      expect(
        await driver.all(`SELECT tablename FROM pg_tables WHERE schemaname = 'public'`),
      ).toEqual([])
    } finally {
      await driver.close()
    }
  })

  it('refuses a schema newer than the code, in the words SQLite uses', async () => {
    const url = (await fresh()).url
    const driver = await openPostgresDriver({ url })
    const latest = readMigrations(POSTGRES_MIGRATIONS_DIR).at(-1)!.version
    await driver.run(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`, [
      latest + 1,
      'from_the_future.sql',
      Date.now(),
    ])
    await driver.close()
    const e = await rejection(openPostgresDriver({ url }))
    expect(e).toBeInstanceOf(CAError)
    expect(e.code).toBe('ERR_DB_TOO_NEW')

    const sqlite = sqliteSchema(mkdtempSync(join(dir, 'new-')))
    sqlite.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(latest + 1, 'x.sql', 0)
    let sqliteMessage = ''
    try {
      migrate(sqlite)
    } catch (err) {
      sqliteMessage = (err as Error).message
    } finally {
      sqlite.close()
    }
    expect(e.message).toBe(sqliteMessage)
    expect(e.message).toMatch(`database schema version ${latest + 1} is newer`)
  })

  it('replicas (processes) migrating at the same moment apply each migration once', async () => {
    const url = (await fresh()).url
    const replicas = Array.from({ length: 4 }, () => {
      const child = spawn(TSX, [join('test/db/postgres/migrate-child.ts'), url], {
        stdio: ['pipe', 'pipe', 'pipe'],
      })
      let out = ''
      let err = ''
      child.stdout.on('data', (d: Buffer) => (out += d))
      child.stderr.on('data', (d: Buffer) => (err += d))
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', () => out.includes('ready\n') && resolve())
        child.once('exit', (code) => reject(new Error(`exited ${code} before ready: ${err}`)))
      })
      const done = new Promise<{ applied: number[] }>((resolve, reject) =>
        child.once('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out.split('\n')[1]!) as { applied: number[] })
            : reject(new Error(`replica exited ${code}: ${err}`)),
        ),
      )
      return { child, ready, done }
    })
    await Promise.all(replicas.map((r) => r.ready))
    for (const r of replicas) r.child.stdin.end('go\n')
    const results = await Promise.all(replicas.map((r) => r.done))
    const versions = readMigrations(POSTGRES_MIGRATIONS_DIR).map((m) => m.version)
    expect(results.filter((r) => r.applied.length > 0)).toEqual([{ applied: versions }])
    const driver = new PostgresDriver(poolConfig({ url }))
    try {
      expect(await driver.all('SELECT version FROM schema_migrations ORDER BY version')).toEqual(
        versions.map((version) => ({ version })),
      )
    } finally {
      await driver.close()
    }
  })
})
