import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestDatabase, testPostgres, type TestDatabase } from '../../helpers/postgres.js'
import pg from 'pg'

const postgres = await testPostgres()
describe.skipIf(!postgres.cluster)(`harness${postgres.skipped}`, () => {
  let db: TestDatabase
  beforeAll(async () => {
    db = await createTestDatabase(postgres.cluster!)
  })
  afterAll(() => db.drop())
  it('connects', async () => {
    const c = new pg.Client({ connectionString: db.url })
    await c.connect()
    expect((await c.query('SELECT 1 AS x')).rows).toEqual([{ x: 1 }])
    await c.end()
  })
})
