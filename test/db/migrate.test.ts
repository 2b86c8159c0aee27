import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { migrate, MIGRATIONS_DIR, readMigrations } from '../../src/db/sqlite/migrate.js'
import { openSqlite } from '../../src/db/sqlite/open.js'
import { openStore } from '../../src/db/store.js'
import { CAError } from '../../src/errors.js'

const REQUIRED_TABLES = [
  'schema_migrations',
  'ca_certificates',
  'entries',
  'join_tokens',
  'certificates',
  'compromised_keys',
  'crl_state',
  'audit_events',
]

/** The raw write connection of a freshly opened (and migrated) database file. */
const openDatabase = (file: string, options?: Parameters<typeof openSqlite>[1]) =>
  openSqlite(file, options).connection

const dirs: string[] = []
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'certbound-db-'))
  dirs.push(d)
  return d
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const tables = (db: Database.Database) =>
  (
    db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as {
      name: string
    }[]
  ).map((r) => r.name)
const versions = (db: Database.Database) =>
  db.prepare('SELECT version, name FROM schema_migrations ORDER BY version').all() as {
    version: number
    name: string
  }[]

describe('migrations on a real SQLite file', () => {
  it('from empty: every migration applied in order, recorded, tables and indexes exist', () => {
    const file = join(tempDir(), 'certbound.db')
    const db = openDatabase(file)
    try {
      const known = readMigrations()
      expect(known.length).toBeGreaterThanOrEqual(1)
      expect(known.map((m) => m.version)).toEqual(
        [...known.map((m) => m.version)].sort((a, b) => a - b),
      )
      expect(versions(db)).toEqual(known.map((m) => ({ version: m.version, name: m.name })))
      expect(tables(db)).toEqual(expect.arrayContaining(REQUIRED_TABLES))
      const indexes = (
        db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index'`).all() as {
          name: string
        }[]
      ).map((r) => r.name)
      expect(indexes).toEqual(
        expect.arrayContaining(['certificates_by_spiffe_id', 'certificates_by_spki']),
      )
      // The files in migrations/ are exactly what was read.
      expect(
        readdirSync(MIGRATIONS_DIR)
          .filter((f) => f.endsWith('.sql'))
          .sort(),
      ).toEqual(known.map((m) => m.name))
    } finally {
      db.close()
    }
  })

  it('re-running is a no-op: nothing applied, data untouched, reopening works', () => {
    const file = join(tempDir(), 'certbound.db')
    let db = openDatabase(file)
    db.prepare(
      `INSERT INTO entries (id, spiffe_id, created_at, updated_at) VALUES ('e1', 'spiffe://example.org/x', 1, 1)`,
    ).run()
    const before = versions(db)
    expect(migrate(db)).toEqual([])
    expect(versions(db)).toEqual(before)
    db.close()
    db = openDatabase(file)
    try {
      expect(versions(db)).toEqual(before)
      expect(db.prepare('SELECT spiffe_id FROM entries').all()).toEqual([
        { spiffe_id: 'spiffe://example.org/x' },
      ])
      expect(db.prepare('SELECT crl_number FROM crl_state').all()).toEqual([{ crl_number: 0 }])
    } finally {
      db.close()
    }
  })

  it('a database with a newer schema version is refused with ERR_DB_TOO_NEW and a clear message', async () => {
    const dir = tempDir()
    const file = join(dir, 'certbound.db')
    const db = openDatabase(file)
    const latest = readMigrations().at(-1)!.version
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
      latest + 1,
      `${latest + 1}_future.sql`,
      Date.now(),
    )
    db.close()

    let error: unknown
    try {
      openDatabase(file).close()
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(CAError)
    expect((error as CAError).code).toBe('ERR_DB_TOO_NEW')
    expect((error as CAError).message).toContain(String(latest + 1))
    expect((error as CAError).message).toContain(String(latest))
    expect((error as CAError).message).toMatch(/newer/)
    // The store refuses the same way, and the refused open did not touch the file.
    await expect(openStore(dir)).rejects.toThrow(/newer/)
    const raw = new Database(file, { readonly: true })
    try {
      expect(raw.prepare('SELECT max(version) AS v FROM schema_migrations').get()).toEqual({
        v: latest + 1,
      })
    } finally {
      raw.close()
    }
  })

  it('a migration that fails is rolled back whole (its rows and tables absent), earlier ones stay', () => {
    const migDir = tempDir()
    for (const m of readMigrations())
      copyFileSync(join(MIGRATIONS_DIR, m.name), join(migDir, m.name))
    const next = readMigrations().at(-1)!.version + 1
    const name = `${String(next).padStart(4, '0')}_broken.sql`
    writeFileSync(
      join(migDir, name),
      'CREATE TABLE half_done (id INTEGER);\nINSERT INTO no_such_table VALUES (1);\n',
    )
    const db = new Database(join(tempDir(), 'certbound.db'))
    try {
      expect(() => migrate(db, readMigrations(migDir))).toThrow(/no_such_table/)
      expect(tables(db)).not.toContain('half_done')
      expect(versions(db).map((v) => v.version)).toEqual(readMigrations().map((m) => m.version))
    } finally {
      db.close()
    }
  })

  it('0004 carries existing entry ttl caps over as text in their largest whole unit', () => {
    const db = new Database(join(tempDir(), 'certbound.db'))
    try {
      migrate(
        db,
        readMigrations().filter((m) => m.version < 4),
      )
      const insert = db.prepare(
        `INSERT INTO entries (id, spiffe_id, dns_names, max_ttl_ms, enabled, created_at, updated_at)
         VALUES (?, ?, '[]', ?, 1, 0, 0)`,
      )
      const caps = [86_400_000, 7_200_000, 5_400_000, 90_000, null]
      caps.forEach((ms, i) => insert.run(`e${i}`, `spiffe://example.org/m/${i}`, ms))
      migrate(db)
      const rows = db.prepare('SELECT max_ttl FROM entries ORDER BY id').all() as {
        max_ttl: string | null
      }[]
      expect(rows.map((r) => r.max_ttl)).toEqual(['1d', '2h', '90m', '90s', null])
    } finally {
      db.close()
    }
  })

  it('openDatabase: WAL, synchronous=NORMAL (1) with the driver flushing the WAL itself for FULL, foreign_keys on, no blocking busy handler', () => {
    const file = join(tempDir(), 'certbound.db')
    const db = openDatabase(file)
    try {
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal')
      // FULL's per-commit fsync is the driver's own, after COMMIT and off the event loop
      // (test/db/sqlite-driver: no answer before it); SQLite itself syncs only checkpoints.
      expect(db.pragma('synchronous', { simple: true })).toBe(1)
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1)
      // The writer never sleeps on the event loop: busy waits are asynchronous (test/db/store).
      expect(db.pragma('busy_timeout', { simple: true })).toBe(0)
      // Foreign keys are enforced, not just declared.
      expect(() =>
        db
          .prepare(
            `INSERT INTO join_tokens (id, token_hash, entry_id, expires_at, created_at) VALUES ('t', 'h', 'missing', 1, 1)`,
          )
          .run(),
      ).toThrow(/FOREIGN KEY/)
    } finally {
      db.close()
    }
    // WAL is persistent in the file: a plain connection sees it too.
    const raw = new Database(file)
    try {
      expect(raw.pragma('journal_mode', { simple: true })).toBe('wal')
    } finally {
      raw.close()
    }
  })

  it('database.synchronous NORMAL is honoured when configured', () => {
    const db = openDatabase(join(tempDir(), 'certbound.db'), {
      synchronous: 'NORMAL',
      busyTimeoutMs: 1234,
    })
    try {
      expect(db.pragma('synchronous', { simple: true })).toBe(1)
    } finally {
      db.close()
    }
  })
})
