import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname } from 'node:path'
import { SqliteDriver, type SqliteDriverOptions } from './driver.js'
import { migrate } from './migrate.js'

/** Opens (creating if needed) the SQLite database in WAL mode and brings its schema up to date. */
export function openSqlite(file: string, options: SqliteDriverOptions = {}): SqliteDriver {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  // Created 0600 (SQLite gives its -wal and -shm files the same mode); chmod for older files.
  closeSync(openSync(file, 'a', 0o600))
  chmodSync(file, 0o600)
  const driver = new SqliteDriver(file, options)
  const db = driver.connection
  try {
    // Start-up may wait (synchronously) for another process migrating the same file.
    db.pragma(`busy_timeout = ${Math.max(options.busyTimeoutMs ?? 5000, 30_000)}`)
    migrate(db)
    db.pragma('busy_timeout = 0')
  } catch (e) {
    void driver.close()
    throw e
  }
  return driver
}
