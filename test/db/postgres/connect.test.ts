import { writeFileSync } from 'node:fs'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { DriverLogger } from '../../../src/db/postgres/driver.js'
import { PostgresDriver } from '../../../src/db/postgres/driver.js'
import { openPostgresDriver, poolConfig } from '../../../src/db/postgres/open.js'
import { CAError } from '../../../src/errors.js'
import {
  adminClient,
  createTestDatabase,
  testPostgres,
  type TestDatabase,
} from '../../helpers/postgres.js'
import { TcpProxy } from '../../helpers/tcp-proxy.js'

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (e) {
    return e as Error & { code?: string }
  }
  throw new Error('resolved, expected a rejection')
}

function capture(): DriverLogger & { lines: { level: string; msg: string; fields: object }[] } {
  const lines: { level: string; msg: string; fields: object }[] = []
  return {
    lines,
    warn: (fields, msg) => lines.push({ level: 'warn', msg, fields }),
    info: (fields, msg) => lines.push({ level: 'info', msg, fields }),
  }
}

const postgres = await testPostgres()
describe.skipIf(!postgres.cluster)(`PostgreSQL connections${postgres.skipped}`, () => {
  let db: TestDatabase
  let dir: string
  const password = () => postgres.cluster!.password
  /** The database's URL through `proxy` (same user and password). */
  const via = (proxy: TcpProxy, withPassword = true) =>
    (withPassword ? db.url : db.urlWithoutPassword).replace(
      `:${postgres.cluster!.port}/`,
      `:${proxy.port}/`,
    )
  beforeAll(async () => {
    db = await createTestDatabase(postgres.cluster!)
    dir = mkdtempSync(join(tmpdir(), 'certbound-pgconn-'))
  })
  afterAll(async () => {
    await db?.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('takes the password from the URL, database.password_file, or PGPASSWORD', async () => {
    const file = join(dir, 'db-password')
    writeFileSync(file, `${password()}\n`, { mode: 0o600 })
    const opens = [
      { url: db.url, env: {} },
      { url: db.urlWithoutPassword, passwordFile: file, env: { PGPASSWORD: 'not-this-one' } },
      { url: db.urlWithoutPassword, env: { PGPASSWORD: password() } },
    ]
    for (const options of opens) {
      const driver = await openPostgresDriver({ ...options, migrate: false })
      expect(await driver.get('SELECT current_user AS u')).toEqual({ u: 'postgres' })
      await driver.close()
    }
  })

  it('a wrong password fails at once, without waiting and without the password', async () => {
    const logger = capture()
    const e = await rejection(
      openPostgresDriver({
        url: db.urlWithoutPassword,
        env: { PGPASSWORD: 'wrong-secret-123' },
        logger,
        migrate: false,
      }),
    )
    expect(e.message).toMatch(/password authentication failed/)
    expect(e.message).toContain(db.name)
    expect(e.message).not.toContain('wrong-secret-123')
    expect(logger.lines).toEqual([])
  })

  it('TLS when the URL asks: verify-full against sslrootcert, require; none with disable', async () => {
    const ssl = `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`
    const cases: [string, number][] = [
      [`${db.url}?sslmode=verify-full&sslrootcert=${postgres.cluster!.caFile}`, 1],
      [`${db.url}?sslmode=verify-ca&sslrootcert=${postgres.cluster!.caFile}`, 1],
      [`${db.url}?sslmode=require`, 1],
      [`${db.url}?sslmode=disable`, 0],
    ]
    for (const [url, expected] of cases) {
      const driver = await openPostgresDriver({ url, migrate: false })
      expect(await driver.get(ssl), url).toEqual({ ssl: expected })
      await driver.close()
    }
    // verify-full without the server's CA: the system roots do not know it.
    const e = await rejection(
      openPostgresDriver({ url: `${db.url}?sslmode=verify-full`, migrate: false }),
    )
    expect(e.message).toMatch(/certificate/i)
  })

  it('a server that is not up yet: the open logs "waiting for the database", then succeeds', async () => {
    const proxy = new TcpProxy(postgres.cluster!)
    await proxy.reserve()
    const logger = capture()
    const opening = openPostgresDriver({ url: via(proxy), startupTimeoutMs: 30_000, logger })
    for (let i = 0; i < 200 && logger.lines.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 25))
    }
    expect(logger.lines[0]).toMatchObject({ level: 'warn', msg: 'waiting for the database' })
    await proxy.up()
    const driver = await opening
    try {
      expect(await driver.get('SELECT max(version) AS v FROM schema_migrations')).toEqual({
        v: expect.any(Number),
      })
      expect(logger.lines.map((l) => l.msg)).toContain('the database is up')
      expect(JSON.stringify(logger.lines)).not.toContain(password())
    } finally {
      await driver.close()
      await proxy.down()
    }
  })

  it('gives up waiting after database.startup_timeout with ERR_STORAGE_UNAVAILABLE', async () => {
    const proxy = new TcpProxy(postgres.cluster!)
    await proxy.reserve()
    const e = await rejection(openPostgresDriver({ url: via(proxy), startupTimeoutMs: 500 }))
    expect(e).toBeInstanceOf(CAError)
    expect(e.code).toBe('ERR_STORAGE_UNAVAILABLE')
    expect(e.message).toMatch(/did not accept connections within .*database\.startup_timeout/)
    expect(e.message).not.toContain(password())
  })

  it('a server that goes away: ERR_STORAGE_UNAVAILABLE, and back to work when it returns', async () => {
    const proxy = new TcpProxy(postgres.cluster!)
    await proxy.up()
    const driver = new PostgresDriver(poolConfig({ url: via(proxy) }), { maxAttempts: 2 })
    try {
      expect(await driver.get('SELECT 1 AS one')).toEqual({ one: 1 })
      await proxy.down()
      for (const op of [
        () => driver.get('SELECT 1 AS one'),
        () => driver.run('SELECT 1'),
        () => driver.transaction((tx) => tx.get('SELECT 1 AS one')),
      ]) {
        const e = await rejection(op())
        expect(e).toBeInstanceOf(CAError)
        expect(e.code).toBe('ERR_STORAGE_UNAVAILABLE')
      }
      await proxy.up()
      expect(await driver.get('SELECT 1 AS one')).toEqual({ one: 1 })
    } finally {
      await driver.close()
      await proxy.down()
    }
  })

  it('a backend terminated mid-transaction (57P01): the transaction runs again on a new one', async () => {
    const driver = new PostgresDriver(poolConfig({ url: db.url }))
    const admin = await adminClient(postgres.cluster!, db.name)
    try {
      await driver.run('CREATE TABLE IF NOT EXISTS k (id TEXT PRIMARY KEY)')
      let calls = 0
      await driver.transaction(async (tx) => {
        calls++
        await tx.run('INSERT INTO k (id) VALUES (?)', [`row-${calls}`])
        if (calls === 1) {
          const { pid } = (await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!
          await admin.query('SELECT pg_terminate_backend($1)', [pid])
        }
        await tx.get('SELECT 1')
      })
      expect(calls).toBe(2)
      expect(await driver.all('SELECT id FROM k')).toEqual([{ id: 'row-2' }])
      // With no attempts to spare, the same failure is ERR_STORAGE_UNAVAILABLE.
      const once = new PostgresDriver(poolConfig({ url: db.url }), { maxAttempts: 1 })
      const e = await rejection(
        once.transaction(async (tx) => {
          const { pid } = (await tx.get<{ pid: number }>('SELECT pg_backend_pid() AS pid'))!
          await admin.query('SELECT pg_terminate_backend($1)', [pid])
          await tx.get('SELECT 1')
        }),
      )
      await once.close()
      expect(e).toBeInstanceOf(CAError)
      expect(e.code).toBe('ERR_STORAGE_UNAVAILABLE')
    } finally {
      await admin.end()
      await driver.close()
    }
  })

  it('no free connection within database.busy_timeout: ERR_STORAGE_UNAVAILABLE', async () => {
    const driver = new PostgresDriver(poolConfig({ url: db.url, poolSize: 1, busyTimeoutMs: 200 }))
    try {
      let release!: () => void
      const held = new Promise<void>((r) => (release = r))
      let inside!: () => void
      const entered = new Promise<void>((r) => (inside = r))
      const holder = driver.transaction(async (tx) => {
        await tx.get('SELECT 1')
        inside()
        await held
        return 'held'
      })
      await entered
      const e = await rejection(driver.get('SELECT 1'))
      expect(e).toBeInstanceOf(CAError)
      expect(e.code).toBe('ERR_STORAGE_UNAVAILABLE')
      release()
      expect(await holder).toBe('held')
    } finally {
      await driver.close()
    }
    expect((await rejection(driver.get('SELECT 1'))).message).toMatch(/closed/)
  })
})
