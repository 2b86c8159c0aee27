import type { SqlDriver } from '../driver.js'
import type { AuthFailureStore } from '../port.js'
import type { AuthFailureWindow } from '../types.js'

interface WindowRow {
  failures: number
  window_start: number
}

const toWindow = (r: WindowRow): AuthFailureWindow => ({
  failures: r.failures,
  windowStart: r.window_start,
})

/**
 * Failed-authentication counters, one row per peer. One upsert counts a failure: a window that
 * ended before `now` restarts at 1 (the right-hand sides of an upsert read the old row, in
 * SQLite and PostgreSQL alike), so processes and replicas counting at once never lose a count.
 */
export class SqlAuthFailureStore implements AuthFailureStore {
  constructor(private readonly db: SqlDriver) {}

  async record(peer: string, now: number, windowMs: number): Promise<AuthFailureWindow> {
    const ended = now - windowMs
    const row = await this.db.transaction((tx) =>
      tx.get<WindowRow>(
        `INSERT INTO auth_failures (peer, window_start, failures) VALUES (?, ?, 1)
         ON CONFLICT (peer) DO UPDATE SET
           failures = CASE WHEN auth_failures.window_start <= ? THEN 1
                           ELSE auth_failures.failures + 1 END,
           window_start = CASE WHEN auth_failures.window_start <= ? THEN excluded.window_start
                               ELSE auth_failures.window_start END
         RETURNING failures, window_start`,
        [peer, now, ended, ended],
      ),
    )
    return toWindow(row!)
  }

  async current(peer: string, now: number, windowMs: number) {
    const row = await this.db.get<WindowRow>(
      'SELECT failures, window_start FROM auth_failures WHERE peer = ? AND window_start > ?',
      [peer, now - windowMs],
    )
    return row && toWindow(row)
  }

  purge(now: number, windowMs: number): Promise<number> {
    return this.db.transaction((tx) =>
      tx.run('DELETE FROM auth_failures WHERE window_start <= ?', [now - windowMs]),
    )
  }
}
