/**
 * One "replica" of the concurrent-migration test: connects, says "ready", waits for "go" on
 * stdin (so every replica migrates at the same moment), migrates, prints what it applied.
 */
import { createInterface } from 'node:readline'
import { PostgresDriver } from '../../../src/db/postgres/driver.js'
import { migratePostgres } from '../../../src/db/postgres/migrate.js'
import { poolConfig } from '../../../src/db/postgres/open.js'

const driver = new PostgresDriver(poolConfig({ url: process.argv[2]! }))
await driver.withClient((c) => c.query('SELECT 1'))
process.stdout.write('ready\n')
const lines = createInterface({ input: process.stdin })
for await (const line of lines) if (line === 'go') break
lines.close()
try {
  const applied = await migratePostgres(driver)
  process.stdout.write(`${JSON.stringify({ applied })}\n`)
} finally {
  await driver.close()
}
