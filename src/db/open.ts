import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'
import { migrate } from './migrate.js'

export interface OpenOptions {
  /** FULL by default: an acknowledged issuance must survive a power loss. */
  readonly synchronous?: 'FULL' | 'NORMAL'
  readonly busyTimeoutMs?: number
}

/** Opens (creating if needed) the SQLite database in WAL mode and brings its schema up to date. */
export function openDatabase(file: string, options: OpenOptions = {}): Database.Database {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  // Created 0600 (SQLite gives its -wal and -shm files the same mode); chmod for older files.
  closeSync(openSync(file, 'a', 0o600))
  chmodSync(file, 0o600)
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.pragma(`synchronous = ${options.synchronous ?? 'FULL'}`)
  db.pragma('foreign_keys = ON')
  db.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`)
  try {
    migrate(db)
  } catch (e) {
    db.close()
    throw e
  }
  return db
}
