import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { NOW, storedCert } from './fixtures.js'

const WINDOW = 60_000

describeEachBackend('storage contract ($name): failed-authentication counters', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('counts failures per peer inside one window that starts at the first failure', async () => {
    const { a } = db
    expect(await a.authFailures.current('192.0.2.1', NOW, WINDOW)).toBeUndefined()
    expect(await a.authFailures.record('192.0.2.1', NOW, WINDOW)).toEqual({
      failures: 1,
      windowStart: NOW,
    })
    expect(await a.authFailures.record('192.0.2.1', NOW + 10, WINDOW)).toEqual({
      failures: 2,
      windowStart: NOW,
    })
    // Another peer has its own window.
    expect((await a.authFailures.record('192.0.2.2', NOW + 20, WINDOW)).failures).toBe(1)
    expect(await a.authFailures.current('192.0.2.1', NOW + 30, WINDOW)).toEqual({
      failures: 2,
      windowStart: NOW,
    })
  })

  it('a failure after the window ended starts the next window at 1', async () => {
    const { a } = db
    await a.authFailures.record('192.0.2.3', NOW, WINDOW)
    await a.authFailures.record('192.0.2.3', NOW + 1, WINDOW)
    expect(await a.authFailures.current('192.0.2.3', NOW + WINDOW, WINDOW)).toBeUndefined()
    expect(await a.authFailures.record('192.0.2.3', NOW + WINDOW, WINDOW)).toEqual({
      failures: 1,
      windowStart: NOW + WINDOW,
    })
  })

  it('N processes counting one peer at once lose no count', async () => {
    const { a, b } = db
    const results = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? a : b).authFailures.record('192.0.2.4', NOW + i, WINDOW),
      ),
    )
    expect(results.map((r) => r.failures).sort((x, y) => x - y)).toEqual(
      Array.from({ length: 40 }, (_, i) => i + 1),
    )
    expect((await b.authFailures.current('192.0.2.4', NOW + 50, WINDOW))!.failures).toBe(40)
  })

  it('purge forgets ended windows only', async () => {
    const { a } = db
    await a.authFailures.record('192.0.2.5', NOW - 2 * WINDOW, WINDOW)
    await a.authFailures.record('192.0.2.6', NOW, WINDOW)
    expect(await a.authFailures.purge(NOW, WINDOW)).toBeGreaterThanOrEqual(1)
    expect(await a.authFailures.current('192.0.2.6', NOW, WINDOW)).toBeDefined()
    // The ended one starts afresh.
    expect((await a.authFailures.record('192.0.2.5', NOW, WINDOW)).failures).toBe(1)
  })
})

describeEachBackend('storage contract ($name): operators’ reads', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('schema version, size, clock and integrity', async () => {
    const { a } = db
    expect(await a.ops.schemaVersion()).toBeGreaterThanOrEqual(9)
    expect(await a.ops.databaseBytes()).toBeGreaterThan(4096)
    const before = Date.now()
    const t = await a.ops.databaseTime()
    // Same machine: the database clock is this one (a generous bound, not a timing).
    expect(Math.abs(t - before)).toBeLessThan(60_000)
    expect(await a.ops.integrityProblems()).toEqual([])
    expect(a.ops.busyRetries()).toBeGreaterThanOrEqual(0)
  })

  it('counts valid certificates expiring within a horizon', async () => {
    const { a } = db
    const base = await a.ops.expiringCertificates(NOW, NOW + 86_400_000)
    await storedCert(a, { notAfter: NOW + 3_600_000 })
    await storedCert(a, { notAfter: NOW + 2 * 86_400_000 }) // beyond the horizon
    const revoked = await storedCert(a, { notAfter: NOW + 3_600_000 })
    await a.certificates.revoke(revoked.cert.serial, 'unspecified', NOW, 'test')
    expect(await a.ops.expiringCertificates(NOW, NOW + 86_400_000)).toBe(base + 1)
  })
})
