import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SqlExecutor } from '../../../src/db/driver.js'
import { PostgresDriver } from '../../../src/db/postgres/driver.js'
import { poolConfig } from '../../../src/db/postgres/open.js'
import { CAError } from '../../../src/errors.js'
import { createTestDatabase, testPostgres, type TestDatabase } from '../../helpers/postgres.js'

/** What a promise rejected with (the test fails if it resolved). */
async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p
  } catch (e) {
    return e as Error & { code?: string }
  }
  throw new Error('resolved, expected a rejection')
}

/** A real engine error with the given SQLSTATE, raised by the server itself. */
const raise = (state: string) =>
  `DO $$ BEGIN RAISE EXCEPTION 'raised for the test' USING ERRCODE = '${state}'; END $$`

const postgres = await testPostgres()
describe.skipIf(!postgres.cluster)(`PostgreSQL driver${postgres.skipped}`, () => {
  let db: TestDatabase
  let driver: PostgresDriver
  beforeAll(async () => {
    db = await createTestDatabase(postgres.cluster!)
    driver = new PostgresDriver(poolConfig({ url: db.url, poolSize: 10 }))
    await driver.run(`CREATE TABLE t (
      id TEXT PRIMARY KEY, ms BIGINT, n INTEGER, blob BYTEA, note TEXT, used_at BIGINT)`)
  })
  afterAll(async () => {
    await driver?.close()
    await db?.drop()
  })

  it('numbers ? placeholders, leaving a ? inside literals, identifiers and comments alone', async () => {
    const row = await driver.get<Record<string, unknown>>(
      `SELECT ?::text AS a, '?' AS b, 'it''s ?' AS c, E'\\'?' AS d, ?::int AS "e?" -- ?
       /* ? /* ? */ ? */`,
      ['x', 7],
    )
    expect(row).toEqual({ a: 'x', b: '?', c: "it's ?", d: "'?", 'e?': 7 })
  })

  it('round-trips BIGINT milliseconds, bytea, text and null; aggregates read as numbers', async () => {
    const ms = 1_760_000_000_123
    const bytes = new Uint8Array(256).map((_, i) => i)
    const note = `zürich 'quoted' "double" ? $1 \u{1F512}`
    const changed = await driver.run(
      'INSERT INTO t (id, ms, n, blob, note, used_at) VALUES (?, ?, ?, ?, ?, ?)',
      ['r1', ms, 1, bytes.subarray(16), note, null],
    )
    expect(changed).toBe(1)
    const row = await driver.get<Record<string, unknown>>('SELECT * FROM t WHERE id = ?', ['r1'])
    expect(row).toEqual({
      id: 'r1',
      ms,
      n: 1,
      blob: Buffer.from(bytes.subarray(16)),
      note,
      used_at: null,
    })
    expect(Buffer.isBuffer(row!.blob)).toBe(true)
    const agg = await driver.get<Record<string, unknown>>(
      `SELECT count(*) AS c, sum(ms) AS s, max(ms) AS m, (used_at IS NULL) AS unused
       FROM t WHERE id = ? GROUP BY used_at`,
      ['r1'],
    )
    // count is int8, sum numeric, the comparison boolean: read as SQLite reads them.
    expect(agg).toEqual({ c: 1, s: ms, m: ms, unused: 1 })
    // Past 2^53 a BIGINT stays exact, as a bigint, rather than rounded.
    const big = await driver.get<{ v: unknown }>('SELECT ?::bigint AS v', [2n ** 62n + 1n])
    expect(big!.v).toBe(2n ** 62n + 1n)
    // The parsers are this pool's own: node-postgres' global ones are untouched.
    expect(pg.types.getTypeParser(20, 'text')('5')).toBe('5')
    expect(await driver.get('SELECT * FROM t WHERE id = ?', ['none'])).toBeUndefined()
    expect(await driver.all('SELECT * FROM t WHERE id = ?', ['none'])).toEqual([])
  })

  it('a transaction sees its own writes; others see them only after COMMIT', async () => {
    let seenOutside: unknown = 'not read'
    await driver.transaction(async (tx) => {
      await tx.run('INSERT INTO t (id, n) VALUES (?, ?)', ['tx1', 5])
      expect(await tx.get('SELECT n FROM t WHERE id = ?', ['tx1'])).toEqual({ n: 5 })
      seenOutside = await driver.get('SELECT n FROM t WHERE id = ?', ['tx1'])
    })
    expect(seenOutside).toBeUndefined()
    expect(await driver.get('SELECT n FROM t WHERE id = ?', ['tx1'])).toEqual({ n: 5 })
  })

  it('a unique violation is ERR_STORAGE_CONFLICT and rolls the whole transaction back', async () => {
    await driver.run('INSERT INTO t (id) VALUES (?)', ['dup'])
    const outside = await rejection(driver.run('INSERT INTO t (id) VALUES (?)', ['dup']))
    expect(outside).toBeInstanceOf(CAError)
    expect(outside.code).toBe('ERR_STORAGE_CONFLICT')
    const inside = await rejection(
      driver.transaction(async (tx) => {
        await tx.run('INSERT INTO t (id) VALUES (?)', ['dup-partner'])
        await tx.run('INSERT INTO t (id) VALUES (?)', ['dup'])
      }),
    )
    expect(inside.code).toBe('ERR_STORAGE_CONFLICT')
    expect(await driver.get('SELECT id FROM t WHERE id = ?', ['dup-partner'])).toBeUndefined()
  })

  it('an error at COMMIT (a deferred unique constraint) is mapped too', async () => {
    await driver.run('CREATE TABLE deferred (x INTEGER UNIQUE DEFERRABLE INITIALLY DEFERRED)')
    const e = await rejection(
      driver.transaction(async (tx) => {
        await tx.run('INSERT INTO deferred (x) VALUES (?), (?)', [1, 1])
      }),
    )
    expect(e).toBeInstanceOf(CAError)
    expect(e.code).toBe('ERR_STORAGE_CONFLICT')
    expect(await driver.all('SELECT x FROM deferred')).toEqual([])
  })

  it('disk full (53100) is ERR_STORAGE_FULL; other engine errors pass through as they are', async () => {
    const full = await rejection(driver.transaction((tx) => tx.run(raise('53100'))))
    expect(full).toBeInstanceOf(CAError)
    expect(full.code).toBe('ERR_STORAGE_FULL')
    const syntax = await rejection(driver.get('SELEC 1'))
    expect(syntax).not.toBeInstanceOf(CAError)
    expect(syntax.code).toBe('42601')
    const check = await rejection(driver.run(raise('23514')))
    expect(check).not.toBeInstanceOf(CAError)
    expect(check.code).toBe('23514')
  })

  it('text PostgreSQL cannot hold (a NUL byte from a request) is ERR_BAD_REQUEST, not a 500', async () => {
    const read = await rejection(driver.get('SELECT * FROM t WHERE id = ?', ['a\u0000b']))
    expect(read).toBeInstanceOf(CAError)
    expect(read.code).toBe('ERR_BAD_REQUEST')
    const write = await rejection(
      driver.transaction((tx) => tx.run('INSERT INTO t (id) VALUES (?)', ['nul\u0000'])),
    )
    expect(write.code).toBe('ERR_BAD_REQUEST')
  })

  it('a failed statement caught inside the transaction still fails it: nothing commits', async () => {
    let afterwards: Error | undefined
    const e = await rejection(
      driver.transaction(async (tx) => {
        await tx.run('INSERT INTO t (id) VALUES (?)', ['swallow-1'])
        await tx.run('INSERT INTO t (id) VALUES (?)', ['dup']).catch(() => {})
        afterwards = await rejection(tx.get('SELECT 1 AS one'))
        return 'fn went on'
      }),
    )
    expect(e.code).toBe('ERR_STORAGE_CONFLICT')
    expect(afterwards?.message).toMatch(/PostgreSQL aborts a transaction at its first failed/)
    expect(await driver.get('SELECT id FROM t WHERE id = ?', ['swallow-1'])).toBeUndefined()
  })

  it('runs a transaction again after a serialization failure, and commits it once', async () => {
    let calls = 0
    const value = await driver.transaction(async (tx) => {
      calls++
      await tx.run('INSERT INTO t (id, n) VALUES (?, ?)', ['retried', calls])
      if (calls < 3) await tx.run(raise('40001'))
      return calls
    })
    expect(value).toBe(3)
    expect(await driver.all('SELECT n FROM t WHERE id = ?', ['retried'])).toEqual([{ n: 3 }])
  })

  it('gives up after the bounded attempts with ERR_STORAGE_UNAVAILABLE', async () => {
    let calls = 0
    const e = await rejection(
      driver.transaction(async (tx) => {
        calls++
        await tx.run(raise('40001'))
      }),
    )
    expect(e).toBeInstanceOf(CAError)
    expect(e.code).toBe('ERR_STORAGE_UNAVAILABLE')
    expect(e.message).toMatch(/gave up after 5 attempts/)
    expect(calls).toBe(5)
  })

  it('a real deadlock: the victim runs again and both transactions commit', async () => {
    await driver.run("INSERT INTO t (id, n) VALUES ('lock-a', 0), ('lock-b', 0)")
    let release!: () => void
    const bothLocked = new Promise<void>((r) => (release = r))
    let locked = 0
    let calls = 0
    const crossing = (first: string, second: string) => async (tx: SqlExecutor) => {
      const attempt = ++calls
      await tx.get(`SELECT n FROM t WHERE id = ?${driver.forUpdate}`, [first])
      // First time round, each holds its first row before asking for the other's.
      if (attempt <= 2) {
        if (++locked === 2) release()
        await bothLocked
      }
      await tx.run('UPDATE t SET n = n + 1 WHERE id = ?', [second])
      await tx.run('UPDATE t SET n = n + 1 WHERE id = ?', [first])
    }
    await Promise.all([
      driver.transaction(crossing('lock-a', 'lock-b')),
      driver.transaction(crossing('lock-b', 'lock-a')),
    ])
    expect(calls).toBe(3)
    expect(await driver.all("SELECT n FROM t WHERE id LIKE 'lock-%' ORDER BY id")).toEqual([
      { n: 2 },
      { n: 2 },
    ])
  })

  it('50 concurrent conditional updates of one row: exactly one changes it', async () => {
    await driver.run('INSERT INTO t (id) VALUES (?)', ['once'])
    const changes = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        driver.transaction((tx) =>
          tx.run('UPDATE t SET used_at = ?, n = ? WHERE id = ? AND used_at IS NULL', [
            1000 + i,
            i,
            'once',
          ]),
        ),
      ),
    )
    expect(changes.filter((c) => c === 1)).toHaveLength(1)
    expect(changes.filter((c) => c === 0)).toHaveLength(49)
    const winner = changes.indexOf(1)
    expect(await driver.get('SELECT used_at, n FROM t WHERE id = ?', ['once'])).toEqual({
      used_at: 1000 + winner,
      n: winner,
    })
  })

  it('row locks: dialect and suffixes', () => {
    expect(driver.dialect).toBe('postgres')
    expect(driver.forUpdate).toBe(' FOR UPDATE')
    expect(driver.forShare).toBe(' FOR SHARE')
  })
})
