import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Store } from '../../../src/db/port.js'
import { createSqlStore } from '../../../src/db/sql/store.js'
import { openSqlite } from '../../../src/db/sqlite/open.js'

/**
 * The backends the contract suite runs against. Each opens two stores on one fresh database —
 * as two processes or replicas would have — and can make audit writes fail, to prove that a
 * change and its audit event commit together or not at all.
 */
export interface BackendUnderTest {
  readonly name: string
  /** Why the backend is skipped here (no server binaries), or undefined when it runs. */
  readonly skip?: string
  open(): Promise<OpenBackend>
}

export interface OpenBackend {
  readonly a: Store
  readonly b: Store
  /** Makes every audit insert fail until the returned function is called. */
  breakAudit(): Promise<() => Promise<void>>
  close(): Promise<void>
}

const sqlite: BackendUnderTest = {
  name: 'sqlite',
  async open() {
    const dir = mkdtempSync(join(tmpdir(), 'certbound-contract-'))
    const file = join(dir, 'certbound.db')
    const driverA = openSqlite(file)
    const driverB = openSqlite(file)
    const a = createSqlStore(driverA)
    const b = createSqlStore(driverB)
    const trigger = `CREATE TEMP TRIGGER audit_down BEFORE INSERT ON audit_events
      BEGIN SELECT RAISE(ABORT, 'audit down'); END`
    return {
      a,
      b,
      async breakAudit() {
        // Temp triggers live on one connection: break both stores' writers.
        driverA.connection.exec(trigger)
        driverB.connection.exec(trigger)
        return async () => {
          driverA.connection.exec('DROP TRIGGER audit_down')
          driverB.connection.exec('DROP TRIGGER audit_down')
        }
      },
      async close() {
        await a.close()
        await b.close()
        rmSync(dir, { recursive: true, force: true })
      },
    }
  },
}

export const BACKENDS: readonly BackendUnderTest[] = [sqlite]
