import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { SqlValue } from '../../src/db/driver.js'
import { openPostgresDriver } from '../../src/db/postgres/open.js'
import type { TestServer } from '../helpers/server.js'

/**
 * A statement straight on the database of a running test server, on a connection of the
 * test's own, as someone with write access to the database (not the CA) would: how the
 * tampering tests change rows behind certbound's back.
 */
export async function rawRun(s: TestServer, sql: string, ...params: SqlValue[]): Promise<number> {
  const url = s.databaseUrl
  if (url === undefined) {
    const db = new Database(join(s.dataDir, 'certbound.db'), { timeout: 10_000 })
    try {
      return db
        .prepare(sql)
        .run(...params.map((p) => (p instanceof Uint8Array ? Buffer.from(p) : p))).changes
    } finally {
      db.close()
    }
  }
  const driver = await openPostgresDriver({ url, migrate: false })
  try {
    return await driver.run(sql, params)
  } finally {
    await driver.close()
  }
}
