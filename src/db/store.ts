import { join } from 'node:path'
import type { Store } from './port.js'
import { createSqlStore } from './sql/store.js'
import { openSqlite } from './sqlite/open.js'

export type { Store } from './port.js'

export interface DatabaseOptions {
  readonly synchronous?: 'FULL' | 'NORMAL'
  readonly busyTimeoutMs?: number
}

/** Opens the configured backend: the embedded SQLite file `data_dir/certbound.db`. */
export async function openStore(dataDir: string, options: DatabaseOptions = {}): Promise<Store> {
  return createSqlStore(openSqlite(join(dataDir, 'certbound.db'), options))
}
