import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { createSqlStore } from '../../src/db/sql/store.js'
import { SqliteDriver } from '../../src/db/sqlite/driver.js'
import { openSqlite } from '../../src/db/sqlite/open.js'
import { WalSync } from '../../src/db/sqlite/wal-sync.js'
import { isCAError } from '../../src/errors.js'
import { TestServer } from '../helpers/server.js'
import { expectProblem } from '../helpers/ca.js'

const dirs: string[] = []
function tempFile(): string {
  const d = mkdtempSync(join(tmpdir(), 'certbound-sqlite-'))
  dirs.push(d)
  return join(d, 'certbound.db')
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const NOW = Date.now()
const entry = (n: number) => ({
  id: `e-${n}`,
  spiffeId: `spiffe://example.org/driver/${n}`,
  dnsNames: [],
  maxTtl: null,
  scopes: null,
  oidc: null,
  enabled: true,
  createdAt: NOW,
  updatedAt: NOW,
})
const event = { actor: 'test', action: 'entry.create' }

/** Another process's write lock on the same file, held for `ms`. */
function holdWriteLock(file: string, ms: number): Promise<void> {
  const other = new Database(file)
  other.exec('BEGIN IMMEDIATE')
  return new Promise((resolve) =>
    setTimeout(() => {
      other.exec('COMMIT')
      other.close()
      resolve()
    }, ms),
  )
}

/** A WAL flush that counts its calls and completes only when the test says so. */
function heldFlush() {
  const waiting: (() => void)[] = []
  let calls = 0
  return {
    get calls() {
      return calls
    },
    release: () => waiting.splice(0).forEach((r) => r()),
    factory: (file: string) => {
      const real = new WalSync(file)
      return {
        sync: async () => {
          calls++
          await new Promise<void>((r) => waiting.push(r))
          await real.sync()
        },
        close: () => real.close(),
      }
    },
  }
}

const settledYet = async (p: Promise<unknown>): Promise<boolean> => {
  let done = false
  void p.then(
    () => (done = true),
    () => (done = true),
  )
  await new Promise((r) => setTimeout(r, 50))
  return done
}

describe('SQLite driver: durability of a group commit (synchronous FULL)', () => {
  it('no transaction of a batch resolves before the WAL flush after its COMMIT', async () => {
    const flush = heldFlush()
    const store = createSqlStore(openSqlite(tempFile(), { walSync: flush.factory }))
    try {
      const creates = Array.from({ length: 20 }, (_, i) => store.entries.create(entry(i), event))
      const all = Promise.all(creates)
      expect(await settledYet(all)).toBe(false)
      // Committed (a reader sees it) but not yet durable: nobody has been answered.
      expect(flush.calls).toBe(1)
      expect(await settledYet(store.settled())).toBe(false)
      flush.release()
      await all
      await store.settled()
      // One flush served the whole batch.
      expect(flush.calls).toBe(1)
      expect((await store.entries.list({ limit: 100 })).items).toHaveLength(20)
    } finally {
      flush.release()
      await store.close()
    }
  })

  it('transactions that arrive during a flush wait for the next one, which covers them', async () => {
    const flush = heldFlush()
    const store = createSqlStore(openSqlite(tempFile(), { walSync: flush.factory }))
    try {
      const first = store.entries.create(entry(1), event)
      await new Promise((r) => setTimeout(r, 20))
      const second = store.entries.create(entry(2), event)
      expect(await settledYet(second)).toBe(false)
      flush.release()
      await first
      expect(await settledYet(second)).toBe(false)
      expect(flush.calls).toBe(2)
      flush.release()
      await second
    } finally {
      flush.release()
      await store.close()
    }
  })

  it('a refused transaction (rolled back alone) needs no flush; NORMAL never flushes', async () => {
    const flush = heldFlush()
    const store = createSqlStore(openSqlite(tempFile(), { walSync: flush.factory }))
    const normal = createSqlStore(
      openSqlite(tempFile(), { synchronous: 'NORMAL', walSync: flush.factory }),
    )
    try {
      const created = store.entries.create(entry(1), event)
      await new Promise((r) => setTimeout(r, 20))
      flush.release()
      await created
      expect(flush.calls).toBe(1)
      // The same id again: a unique violation, rolled back alone, answered without a flush.
      const duplicate = await store.entries.create(entry(1), event).catch((e: unknown) => e)
      expect(isCAError(duplicate, 'ERR_STORAGE_CONFLICT')).toBe(true)
      expect(flush.calls).toBe(1)
      await normal.entries.create(entry(1), event)
      expect(flush.calls).toBe(1)
    } finally {
      flush.release()
      await store.close()
      await normal.close()
    }
  })

  it('the real flush: fdatasync of the WAL file resolves, and the rows are there', async () => {
    const file = tempFile()
    const store = createSqlStore(openSqlite(file))
    try {
      await Promise.all(Array.from({ length: 5 }, (_, i) => store.entries.create(entry(i), event)))
      await store.settled()
      expect(existsSync(`${file}-wal`)).toBe(true)
      const other = new Database(file, { readonly: true })
      expect(other.prepare('SELECT count(*) AS n FROM entries').get()).toEqual({ n: 5 })
      other.close()
    } finally {
      await store.close()
    }
  })
})

describe('SQLite driver: several processes on one file', () => {
  it('a write waits for another writer without blocking the event loop, then commits', async () => {
    const file = tempFile()
    const store = createSqlStore(openSqlite(file, { busyTimeoutMs: 5000 }))
    try {
      const released = holdWriteLock(file, 600)
      let ticks = 0
      const ticker = setInterval(() => ticks++, 20)
      const started = Date.now()
      await store.entries.create(entry(1), event)
      clearInterval(ticker)
      await released
      expect(Date.now() - started).toBeGreaterThanOrEqual(500)
      // The loop kept running while the write waited (a synchronous busy handler would not).
      expect(ticks).toBeGreaterThanOrEqual(10)
      expect(await store.entries.get('e-1')).toBeDefined()
    } finally {
      await store.close()
    }
  })

  it('past database.busy_timeout the write fails with ERR_STORAGE_UNAVAILABLE and changes nothing', async () => {
    const file = tempFile()
    const store = createSqlStore(openSqlite(file, { busyTimeoutMs: 200 }))
    try {
      const released = holdWriteLock(file, 1200)
      const error = await store.entries.create(entry(2), event).catch((e: unknown) => e)
      expect(isCAError(error, 'ERR_STORAGE_UNAVAILABLE')).toBe(true)
      await released
      expect(await store.entries.get('e-2')).toBeUndefined()
    } finally {
      await store.close()
    }
  })

  it('transactions arriving together commit together, each on its own: one failure undoes only itself', async () => {
    const file = tempFile()
    const store = createSqlStore(openSqlite(file))
    try {
      await store.entries.create(entry(0), event)
      // 20 creates in one burst; the duplicate of e-0 must fail alone.
      const results = await Promise.allSettled(
        [0, ...Array.from({ length: 19 }, (_, i) => i + 10)].map((n) =>
          store.entries.create(entry(n), event),
        ),
      )
      expect(results.filter((r) => r.status === 'rejected')).toHaveLength(1)
      const failed = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
      expect(isCAError(failed.reason, 'ERR_STORAGE_CONFLICT')).toBe(true)
      const page = await store.entries.list({ limit: 100 })
      expect(page.items).toHaveLength(20)
      // Every successful change has its audit event, the failed one has none.
      expect(await store.audit.list({ action: 'entry.create' })).toHaveLength(20)
    } finally {
      await store.close()
    }
  })

  it("a group commit's savepoint journals stay in memory, not in temporary files", async () => {
    const driver = new SqliteDriver(tempFile())
    try {
      // 2 = MEMORY: the original of every page a savepoint changes is copied, not written out.
      expect(driver.connection.pragma('temp_store', { simple: true })).toBe(2)
    } finally {
      await driver.close()
    }
  })

  it('over HTTP: a database busy past its timeout is a 503 with Retry-After, never a 500', async () => {
    const s = await TestServer.start({ database: { busy_timeout: '1s' } })
    try {
      const released = holdWriteLock(join(s.dataDir, 'certbound.db'), 2500)
      const r = await s.call('POST', '/v1/entries', {
        as: s.admin,
        json: { spiffe_id: 'spiffe://example.org/driver/busy' },
      })
      expectProblem(r, 503)
      expect(r.headers['retry-after']).toBe('1')
      expect(r.body.code).toBe('ERR_STORAGE_UNAVAILABLE')
      await released
      const again = await s.call('POST', '/v1/entries', {
        as: s.admin,
        json: { spiffe_id: 'spiffe://example.org/driver/busy' },
      })
      expect(again.status, again.text).toBe(201)
    } finally {
      await s.close()
    }
  })
})

describe('SQLite driver: WAL checkpoints on their own thread', () => {
  const write = (driver: SqliteDriver, n: number) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        driver.transaction((tx) =>
          tx.run('INSERT INTO t (k, v) VALUES (?, ?)', [
            `${Math.random()}-${i}`,
            Buffer.alloc(900),
          ]),
        ),
      ),
    )

  it('no checkpoint inside a COMMIT: the thread checkpoints the log into the file, every row there', async () => {
    const file = tempFile()
    const driver = new SqliteDriver(file)
    driver.connection.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)')
    expect(driver.connection.pragma('wal_autocheckpoint', { simple: true })).toBe(0)
    // Far past SQLite's own 1000-page threshold, in group commits of 16.
    for (let b = 0; b < 120; b++) await write(driver, 16)
    await new Promise((r) => setTimeout(r, 150))
    await write(driver, 16)
    await new Promise((r) => setTimeout(r, 200))
    expect(driver.checkpoints).toBeGreaterThan(0)
    // What the thread backfilled is in the database file itself: a copy of the file alone,
    // without its log, holds the rows written before its last checkpoint.
    const copy = `${file}.copy`
    copyFileSync(file, copy)
    const inFile = new Database(copy, { readonly: true })
    const { n } = inFile.prepare('SELECT count(*) AS n FROM t').get() as { n: number }
    inFile.close()
    expect(n).toBeGreaterThan(0)
    const check = new Database(file, { readonly: true })
    expect(check.prepare('SELECT count(*) AS n FROM t').get()).toEqual({ n: 121 * 16 })
    check.close()
    await driver.close()
  })

  it('a process whose only work is writes waiting for a checkpoint in flight goes on, not exits early (a real process)', () => {
    const file = tempFile()
    // Nothing but the driver keeps this process's event loop alive: an idle (unref'd) thread
    // must not hold it open, a checkpoint or close awaited on it must.
    const script = `
      import { SqliteDriver } from ${JSON.stringify(join(process.cwd(), 'src/db/sqlite/driver.ts'))}
      const driver = new SqliteDriver(${JSON.stringify(file)})
      driver.connection.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)')
      const batch = () => Promise.all(Array.from({ length: 16 }, () =>
        driver.transaction((tx) => tx.run('INSERT INTO t (v) VALUES (?)', [Buffer.alloc(900)]))))
      for (let b = 0; b < 40; b++) await batch()
      await new Promise((r) => setTimeout(r, 150))
      await batch() // a checkpoint is due: it starts
      await batch() // these writes wait for it
      await driver.close()
      console.log('closed', driver.checkpoints)
    `
    const scriptFile = join(dirname(file), 'writer.mts')
    writeFileSync(scriptFile, script)
    const r = spawnSync(process.execPath, ['--import', 'tsx', scriptFile], {
      encoding: 'utf8',
      timeout: 60_000,
    })
    expect(r.status, r.stderr).toBe(0)
    expect(r.stdout).toMatch(/^closed [1-9]\d*$/m)
  })

  it('without the thread (checkpointThread: false), SQLite checkpoints as usual', async () => {
    const driver = new SqliteDriver(tempFile(), { checkpointThread: false })
    expect(driver.connection.pragma('wal_autocheckpoint', { simple: true })).toBe(1000)
    driver.connection.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE, v BLOB)')
    await write(driver, 16)
    expect(driver.checkpoints).toBe(0)
    await driver.close()
  })
})
