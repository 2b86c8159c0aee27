import type { SqlDriver } from '../driver.js'
import type { LeaseStore } from '../port.js'

/** Leases with expiry: one holder at a time, taken over when the holder stops renewing. */
export class SqlLeaseStore implements LeaseStore {
  constructor(private readonly db: SqlDriver) {}

  async acquire(name: string, holder: string, now: number, ttlMs: number): Promise<boolean> {
    const changed = await this.db.transaction((tx) =>
      tx.run(
        `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`,
        [name, holder, now + ttlMs, now],
      ),
    )
    return changed === 1
  }

  async release(name: string, holder: string): Promise<void> {
    await this.db.transaction((tx) =>
      tx.run('DELETE FROM leases WHERE name = ? AND holder = ?', [name, holder]),
    )
  }
}
