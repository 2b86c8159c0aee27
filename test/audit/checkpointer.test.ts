import { setTimeout as sleep } from 'node:timers/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyAuditLog } from '../../src/audit/verify.js'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import type { Store } from '../../src/db/port.js'
import { openStore } from '../../src/db/store.js'
import { ProcessServer } from '../helpers/process-server.js'
import { createTestDatabase, testPostgres, type TestDatabase } from '../helpers/postgres.js'

const postgres = await testPostgres()

/**
 * The checkpointers of two worker processes (one holds the lease; the row lock keeps any two
 * from appending one event twice) keep up with events written by both workers at once.
 */
for (const backend of ['sqlite', 'postgres'] as const) {
  const skip = backend === 'postgres' && !postgres.cluster
  describe.skipIf(skip)(
    `the checkpointer of two workers (${backend}${skip ? postgres.skipped : ''})`,
    () => {
      let s: ProcessServer
      let db: TestDatabase | undefined
      let store: Store
      beforeAll(async () => {
        db = backend === 'postgres' ? await createTestDatabase(postgres.cluster!) : undefined
        s = await ProcessServer.start(
          {
            server: { workers: 2 },
            audit: { checkpoint_interval: '1s' },
            ...(db ? { database: { url: db.url } } : {}),
          },
          { workers: 2 },
        )
        store = await openStore(s.dataDir, db ? { url: db.url } : {})
      })
      afterAll(async () => {
        await store?.close()
        await s?.close()
        await db?.drop()
      })

      it('appends every event of a concurrent load once, in a tree that verifies', async () => {
        const creds = await Promise.all(
          Array.from({ length: 6 }, (_, i) => s.enroll(`spiffe://example.org/audit/load-${i}`)),
        )
        const grants = await Promise.all(
          creds.flatMap((c) =>
            Array.from({ length: 5 }, () =>
              s.call('POST', '/oauth/token', { as: c, form: { grant_type: 'client_credentials' } }),
            ),
          ),
        )
        expect(grants.map((g) => g.status)).toEqual(grants.map(() => 200))
        const written = (await store.audit.list({ limit: 100_000 })).length
        // The servers' own checkpointers append them (no test code appends here).
        const deadline = Date.now() + 30_000
        while ((await store.auditLog.pending()).count > 0 && Date.now() < deadline) await sleep(100)
        expect(await store.auditLog.pending()).toEqual({ count: 0, oldestAt: null })
        const result = await verifyAuditLog(store.auditLog, {
          kek: loadKeyEncryptionKey(s.dataDir),
        })
        expect(result).toMatchObject({ ok: true })
        expect(result.ok && result.tree_size).toBeGreaterThanOrEqual(written)
        const leaves = await store.auditLog.eventsByLeaf(0, 100_000)
        expect(leaves.map((e) => e.leafIndex)).toEqual(leaves.map((_, i) => i))
        expect(result.ok && result.checkpoints).toBeGreaterThan(1)
      })
    },
  )
}
