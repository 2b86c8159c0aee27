import { execFileSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { inspectDatabase, type DbInspector } from '../helpers/db-inspect.js'
import { createTestDatabase, testPostgres, type TestDatabase } from '../helpers/postgres.js'
import { ProcessServer } from '../helpers/process-server.js'
import type { ApiResponse, Credential } from '../helpers/server.js'
import { TcpProxy } from '../helpers/tcp-proxy.js'
import { makeCsr } from '../helpers/openssl.js'
import { databaseInvariants } from './invariants.js'

/*
 * Issue 14, storage faults: a database that cannot take a write answers every write with a
 * clear 503 and Retry-After (problem+json, or RFC 6749 form on /oauth), keeps serving reads,
 * loses nothing it acknowledged, and recovers by itself when the storage comes back.
 */

/** What every refused write must look like while the storage is gone. */
function expectUnavailable(r: ApiResponse, code: string): void {
  expect(r.status, r.text).toBe(503)
  expect(r.headers['retry-after']).toBe('1')
  if (r.headers['content-type']?.toString().startsWith('application/problem+json')) {
    expect(r.body.code).toBe(code)
    expect(r.body.detail).toMatch(/database/)
  } else {
    expect(r.body.error).toBe('temporarily_unavailable')
  }
}

/** Reads need no write: a certificate, and introspection of a token issued before. */
async function expectReads(s: ProcessServer, cred: Credential, accessToken: string) {
  const read = await s.call('GET', `/v1/certificates/${cred.serial}`, { as: s.admin })
  expect([read.status, read.body.status]).toEqual([200, 'valid'])
  const introspected = await s.call('POST', '/oauth/introspect', {
    as: cred,
    form: { token: accessToken },
  })
  expect([introspected.status, introspected.body.active]).toEqual([200, true])
}

const state = (db: DbInspector) =>
  db.consistent(async (q) => [
    await q('SELECT serial, status FROM certificates ORDER BY serial'),
    await q('SELECT id, used_at FROM join_tokens ORDER BY id'),
    await q('SELECT count(*) AS n FROM audit_events'),
  ])

interface Fault {
  begin(): Promise<void>
  end(): Promise<void>
  /** The error code of the 503s. */
  readonly code: string
  /** Whether reads are still answered during the fault (SQLite: yes; a gone server: no). */
  readonly readsWork: boolean
}

/**
 * One scenario for both backends: work acknowledged before the fault, writes refused during it,
 * the same writes accepted after it without a restart, and nothing lost or half-made.
 */
async function storageFault(s: ProcessServer, db: DbInspector, fault: Fault): Promise<void> {
  const before = await s.enroll('spiffe://example.org/full/before')
  const entryId = await s.createEntry('spiffe://example.org/full/during')
  const joinToken = await s.joinToken(entryId)
  const granted = await s.call('POST', '/oauth/token', {
    as: before,
    form: { grant_type: 'client_credentials' },
  })
  expect(granted.status).toBe(200)
  const acknowledged = await state(db)
  const csr = makeCsr({ san: 'URI:spiffe://example.org/full/during' }).csrPem
  const writes = () => [
    () =>
      s.call('POST', '/v1/entries', {
        as: s.admin,
        json: { spiffe_id: 'spiffe://example.org/full/x' },
      }),
    () =>
      s.call('POST', '/v1/enroll', {
        headers: { authorization: `Bearer ${joinToken}` },
        json: { csr },
      }),
    () =>
      s.call('POST', '/oauth/token', { as: before, form: { grant_type: 'client_credentials' } }),
    () => s.call('POST', `/v1/certificates/${before.serial}/revoke`, { as: s.admin, json: {} }),
  ]

  await fault.begin()
  for (const r of await sequential(writes())) expectUnavailable(r, fault.code)
  if (fault.readsWork) await expectReads(s, before, granted.body.access_token)
  expect((await s.call('GET', '/healthz')).status).toBe(200)
  await fault.end()

  expect(await state(db)).toEqual(acknowledged)
  // The very same writes succeed now (the join token was not spent by the refusal).
  const statuses = (await sequential(writes())).map((r) => r.status)
  expect(statuses).toEqual([201, 201, 200, 200])
  expect(await databaseInvariants(db)).toEqual([])
}

async function sequential(requests: (() => Promise<ApiResponse>)[]): Promise<ApiResponse[]> {
  const out: ApiResponse[] = []
  for (const send of requests) out.push(await send())
  return out
}

/** RLIMIT_FSIZE of a running process (prlimit(1)): writes past `bytes` fail with EFBIG. */
function setFileSizeLimit(pid: number, bytes: number | 'unlimited'): void {
  execFileSync('prlimit', ['--pid', String(pid), `--fsize=${bytes}:unlimited`])
}

let prlimit = true
try {
  execFileSync('prlimit', ['--version'], { stdio: 'ignore' })
} catch {
  prlimit = false
}

describe.skipIf(!prlimit)('SQLite: the file cannot grow (RLIMIT_FSIZE)', () => {
  let s: ProcessServer
  let db: DbInspector
  beforeAll(async () => {
    s = await ProcessServer.start()
    db = inspectDatabase({ dataDir: s.dataDir })
  })
  afterAll(async () => {
    await db.close()
    await s.close()
  })

  it('writes answer 503 ERR_STORAGE_FULL, reads work, nothing is lost, and it recovers', async () => {
    const pid = s.child.pid!
    await storageFault(s, db, {
      begin: async () => setFileSizeLimit(pid, 1),
      end: async () => setFileSizeLimit(pid, 'unlimited'),
      code: 'ERR_STORAGE_FULL',
      readsWork: true,
    })
    expect(s.logs()).toMatch(/database unavailable: answered 503/)
    console.info(
      s
        .logs()
        .split('\n')
        .filter((l) => l.includes('answered 503'))[0],
    )
    expect(s.logs()).not.toMatch(/unhandled error/)
    expect(await s.stop()).toBe(0)
    expect(await db.integrity()).toEqual([])
  })
})

/** A tmpfs of `size` at a fresh directory, or undefined where mounting is not allowed. */
function tmpfs(size: string): string | undefined {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-tmpfs-'))
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' })
    return dir
  } catch {
    rmSync(dir, { recursive: true, force: true })
    return undefined
  }
}

/** Fills the file system of `dir` to the last block; returns the filler's path. */
function fill(dir: string): string {
  const filler = join(dir, 'filler')
  const fd = openSync(filler, 'w')
  const chunk = Buffer.alloc(64 * 1024, 0x55)
  try {
    for (let size = chunk.length; size > 0;) {
      try {
        writeSync(fd, chunk, 0, size)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e
        size = Math.floor(size / 2)
      }
    }
  } finally {
    closeSync(fd)
  }
  return filler
}

/** Whether this process may mount a tmpfs (root, and a kernel and container that allow it). */
function canMount(): boolean {
  if (process.getuid?.() !== 0) return false
  const probe = tmpfs('1m')
  if (probe === undefined) return false
  execFileSync('umount', [probe])
  rmSync(probe, { recursive: true, force: true })
  return true
}

describe.skipIf(!canMount())('SQLite: the file system is full (a 16 MB tmpfs)', () => {
  let s: ProcessServer
  let db: DbInspector
  let mounted: string | undefined
  beforeAll(async () => {
    mounted = tmpfs('16m')
    s = await ProcessServer.start({}, { dir: mounted })
    db = inspectDatabase({ dataDir: s.dataDir })
  })
  afterAll(async () => {
    await db?.close()
    await s?.stop()
    if (mounted) {
      execFileSync('umount', [mounted])
      rmSync(mounted, { recursive: true, force: true })
    }
  })

  it('every write is either kept or refused with 503 ERR_STORAGE_FULL; space back → writes again', async () => {
    const entry = (i: number) =>
      s.call('POST', '/v1/entries', {
        as: s.admin,
        json: { spiffe_id: `spiffe://example.org/tmpfs/${i}`, dns_names: ['a.example.org'] },
      })
    const filler = fill(mounted!)
    const kept: string[] = []
    const refused: string[] = []
    // Free pages of the database and its WAL may take a few more commits; then it is full.
    // Eight at a time: they share group commits, which SQLITE_FULL rolls back whole.
    for (let i = 0; i < 2000 && refused.length < 5; i += 8) {
      const batch = Array.from({ length: 8 }, (_, k) => i + k)
      const answers = await Promise.all(batch.map((n) => entry(n)))
      answers.forEach((r, k) => {
        if (r.status === 201) kept.push(r.body.spiffe_id)
        else {
          expectUnavailable(r, 'ERR_STORAGE_FULL')
          refused.push(`spiffe://example.org/tmpfs/${batch[k]}`)
        }
      })
    }
    expect(refused.length).toBeGreaterThanOrEqual(5)
    expect(kept.length).toBeLessThan(1000)
    rmSync(filler)
    const after = await entry(10_000)
    expect(after.status, after.text).toBe(201)
    const stored = new Set(
      (await db.query<{ spiffe_id: string }>('SELECT spiffe_id FROM entries')).map(
        (e) => e.spiffe_id,
      ),
    )
    for (const id of kept) expect(stored.has(id)).toBe(true)
    for (const id of refused) expect(stored.has(id)).toBe(false)
    expect(s.logs()).not.toMatch(/unhandled error/)
    expect(await databaseInvariants(db)).toEqual([])
  })
})

const postgres = await testPostgres()
describe.skipIf(!postgres.cluster)(`PostgreSQL: the server goes away${postgres.skipped}`, () => {
  let s: ProcessServer
  let db: DbInspector
  let database: TestDatabase
  let proxy: TcpProxy
  beforeAll(async () => {
    database = await createTestDatabase(postgres.cluster!)
    proxy = new TcpProxy({ host: postgres.cluster!.host, port: postgres.cluster!.port })
    await proxy.up()
    const url = new URL(database.url)
    url.port = String(proxy.port)
    s = await ProcessServer.start({ database: { url: url.toString() } })
    db = inspectDatabase({ dataDir: s.dataDir, url: database.url })
  })
  afterAll(async () => {
    await db?.close()
    await s?.close()
    await proxy?.down()
    await database?.drop()
  })

  it('writes answer 503 with Retry-After, nothing is lost, and it recovers', async () => {
    await storageFault(s, db, {
      begin: () => proxy.down(),
      end: () => proxy.up(),
      code: 'ERR_STORAGE_UNAVAILABLE',
      readsWork: false,
    })
    expect(s.logs()).not.toMatch(/unhandled error/)
  })
})
