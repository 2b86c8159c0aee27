import { join } from 'node:path'
import type { Store } from './port.js'
import type { DriverLogger } from './postgres/driver.js'
import { openPostgresDriver } from './postgres/open.js'
import { createSqlStore } from './sql/store.js'
import { openSqlite } from './sqlite/open.js'

export type { Store } from './port.js'

/** `database.*` of the config, as far as opening a backend needs it. */
export interface DatabaseOptions {
  /** Absent: the embedded SQLite file `data_dir/certbound.db`; `postgres://…`: PostgreSQL. */
  readonly url?: string | undefined
  readonly passwordFile?: string | undefined
  readonly poolSize?: number | undefined
  readonly startupTimeoutMs?: number | undefined
  readonly synchronous?: 'FULL' | 'NORMAL'
  readonly busyTimeoutMs?: number
}

/** Opens the configured backend and brings its schema up to date. */
export async function openStore(
  dataDir: string,
  options: DatabaseOptions = {},
  logger?: DriverLogger,
): Promise<Store> {
  if (options.url !== undefined)
    return createSqlStore(await openPostgresDriver({ ...options, url: options.url, logger }))
  return createSqlStore(openSqlite(join(dataDir, 'certbound.db'), options))
}
