import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe } from 'vitest'
import type { SqlDriver } from '../../../src/db/driver.js'
import type { Store } from '../../../src/db/port.js'
import { openPostgresDriver } from '../../../src/db/postgres/open.js'
import { createSqlStore } from '../../../src/db/sql/store.js'
import { openSqlite } from '../../../src/db/sqlite/open.js'
import { createTestDatabase, testPostgres } from '../../helpers/postgres.js'

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
  /** The drivers under `a` and `b`, for tests that must hold a transaction open. */
  readonly drivers: { readonly a: SqlDriver; readonly b: SqlDriver }
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
    const drivers = { a: driverA, b: driverB }
    const trigger = `CREATE TEMP TRIGGER audit_down BEFORE INSERT ON audit_events
      BEGIN SELECT RAISE(ABORT, 'audit down'); END`
    return {
      a,
      b,
      drivers,
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

const available = await testPostgres()

const postgres: BackendUnderTest = {
  name: 'postgres',
  skip: available.cluster ? undefined : available.skipped,
  async open() {
    // A fresh database of the run's throwaway cluster; two pools, as two replicas would have.
    const db = await createTestDatabase(available.cluster!)
    const driverA = await openPostgresDriver({ url: db.url })
    const driverB = await openPostgresDriver({ url: db.url })
    const a = createSqlStore(driverA)
    const b = createSqlStore(driverB)
    return {
      a,
      b,
      drivers: { a: driverA, b: driverB },
      async breakAudit() {
        // A trigger is the database's, so one breaks both stores.
        await driverA.run(`CREATE FUNCTION audit_down() RETURNS trigger LANGUAGE plpgsql
          AS $$ BEGIN RAISE EXCEPTION 'audit down'; END $$`)
        await driverA.run(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_events
          FOR EACH ROW EXECUTE FUNCTION audit_down()`)
        return async () => {
          await driverA.run('DROP TRIGGER audit_down ON audit_events')
          await driverA.run('DROP FUNCTION audit_down()')
        }
      },
      async close() {
        await a.close()
        await b.close()
        await db.drop()
      },
    }
  },
}

export const BACKENDS: readonly BackendUnderTest[] = [sqlite, postgres]

/**
 * One suite per backend, named `$name` → the backend's name; a backend whose server is
 * absent is reported as skipped, with the reason in the suite's name.
 */
export function describeEachBackend(name: string, suite: (backend: BackendUnderTest) => void) {
  for (const backend of BACKENDS) {
    const title = name.replace('$name', `${backend.name}${backend.skip ?? ''}`)
    describe.skipIf(backend.skip !== undefined)(title, () => suite(backend))
  }
}
