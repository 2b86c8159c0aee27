import { randomBytes } from 'node:crypto'
import { chmodSync, copyFileSync, existsSync, renameSync, rmSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { fsyncPath } from '../durable-fs.js'
import { CAError } from '../errors.js'

/** The table a backup file carries its manifest in (dropped again by a restore). */
const MANIFEST_TABLE = 'certbound_backup'

/** What a backup says about itself. */
export type BackupManifest = Readonly<Record<string, string>>

/** What a restore needs to know of a backup before it replaces anything. */
export interface BackupContents {
  readonly manifest: BackupManifest
  readonly schemaVersion: number
  /** DER of each root certificate the backup's database records. */
  readonly roots: Uint8Array[]
}

/**
 * A consistent online copy of a live SQLite database (SQLite's online backup API, through
 * better-sqlite3): every page is copied in one step, under one read transaction, so writers
 * in other processes go on (WAL) and the copy is the state of one moment — never half a
 * transaction, and never restarted by their commits. The copy is self-contained (rollback
 * journal, no -wal file), 0600, and carries `manifest` in a table of its own.
 */
export async function backupSqlite(
  source: string,
  target: string,
  manifest: (copy: Omit<BackupContents, 'manifest'>) => BackupManifest,
): Promise<BackupManifest> {
  if (existsSync(target)) throw new CAError('ERR_CONFLICT', `${target} exists; not overwriting it`)
  const partial = `${target}.${randomBytes(4).toString('hex')}.partial`
  const db = new Database(source, { fileMustExist: true })
  try {
    await db.backup(partial, { progress: () => 0x7fffffff })
  } finally {
    db.close()
  }
  try {
    const copy = new Database(partial)
    try {
      copy.pragma('journal_mode = DELETE')
      const written = manifest(readContents(copy))
      copy.exec(`CREATE TABLE ${MANIFEST_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)`)
      const insert = copy.prepare(`INSERT INTO ${MANIFEST_TABLE} (key, value) VALUES (?, ?)`)
      copy.transaction(() => {
        for (const [k, v] of Object.entries(written)) insert.run(k, v)
      })()
      const check = copy.pragma('quick_check', { simple: true })
      if (check !== 'ok') throw new Error(`the copy does not pass quick_check: ${String(check)}`)
      chmodSync(partial, 0o600)
      fsyncPath(partial)
      renameSync(partial, target)
      fsyncPath(dirname(target))
      return written
    } finally {
      if (copy.open) copy.close()
    }
  } finally {
    rmSync(partial, { force: true })
  }
}

/** The manifest, schema version and roots of a backup file (refused unless it is one). */
export function readSqliteBackup(file: string): BackupContents {
  let db: Database.Database
  try {
    db = new Database(file, { readonly: true, fileMustExist: true })
  } catch (e) {
    throw new CAError('ERR_BAD_REQUEST', `cannot open ${file}: ${(e as Error).message}`)
  }
  try {
    const hasManifest = db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`)
      .get(MANIFEST_TABLE)
    if (!hasManifest)
      throw new CAError('ERR_BAD_REQUEST', `${file} is not a certbound backup (no manifest)`)
    const rows = db.prepare(`SELECT key, value FROM ${MANIFEST_TABLE}`).all() as {
      key: string
      value: string
    }[]
    return { ...readContents(db), manifest: Object.fromEntries(rows.map((r) => [r.key, r.value])) }
  } catch (e) {
    if (e instanceof CAError) throw e
    throw new CAError(
      'ERR_BAD_REQUEST',
      `${file} is not a certbound backup: ${(e as Error).message}`,
    )
  } finally {
    db.close()
  }
}

function readContents(db: Database.Database): Omit<BackupContents, 'manifest'> {
  const version = db.prepare('SELECT max(version) AS v FROM schema_migrations').get() as {
    v: number | null
  }
  const roots = db.prepare(`SELECT der FROM ca_certificates WHERE kind = 'root'`).all() as {
    der: Buffer
  }[]
  return { schemaVersion: version.v ?? 0, roots: roots.map((r) => r.der) }
}

/**
 * The holder of the `maintenance` lease of an existing database, if unexpired at `now`: a
 * server runs on it (every serving process renews that lease; a stopped one lets it lapse).
 */
export function liveLeaseHolder(file: string, now: number): { expiresAt: number } | undefined {
  if (!existsSync(file)) return undefined
  const db = new Database(file, { fileMustExist: true })
  try {
    const table = db
      .prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'leases'`)
      .get()
    if (!table) return undefined
    const row = db
      .prepare(`SELECT expires_at FROM leases WHERE name = 'maintenance' AND expires_at > ?`)
      .get(now) as { expires_at: number } | undefined
    return row && { expiresAt: row.expires_at }
  } finally {
    db.close()
  }
}

/**
 * Puts a backup in place as `target` (the server must be stopped): the copy is staged beside
 * it without its manifest, then renamed over; the database it replaces (and its -wal) is kept
 * as `<target>.before-restore-<time>`. Returns that name, if there was one.
 */
export function restoreSqlite(backup: string, target: string, now: Date): string | undefined {
  const staged = `${target}.${randomBytes(4).toString('hex')}.restoring`
  copyFileSync(backup, staged)
  try {
    chmodSync(staged, 0o600)
    const db = new Database(staged, { fileMustExist: true })
    try {
      db.exec(`DROP TABLE ${MANIFEST_TABLE}`)
    } finally {
      db.close()
    }
    fsyncPath(staged)
    let kept: string | undefined
    if (existsSync(target)) {
      kept = `${target}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}`
      renameSync(target, kept)
      if (existsSync(`${target}-wal`)) renameSync(`${target}-wal`, `${kept}-wal`)
      rmSync(`${target}-shm`, { force: true })
    }
    renameSync(staged, target)
    fsyncPath(dirname(target))
    return kept
  } finally {
    rmSync(staged, { force: true })
  }
}
