import { createHash } from 'node:crypto'
import { afterAll, beforeEach, expect, it } from 'vitest'
import type { Store } from '../../../src/db/port.js'
import type { AuditLogKey, LogAppender, LogAppendInput } from '../../../src/db/types.js'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { NOW } from './fixtures.js'

const sha = (s: string) => createHash('sha256').update(s).digest()

const logKey = (origin: string): AuditLogKey => ({
  origin,
  publicKey: new Uint8Array(32).fill(7),
  privateKeySealed: new Uint8Array([1, 2, 3]),
  createdAt: NOW,
  prunedBelow: 0,
})

/**
 * A stand-in for the tree logic: one level-0 tile holding sha256(event id) per leaf, and a
 * "root" hashing that tile. Enough to see what the store hands over and what it keeps.
 */
function fakeAppender(calls: LogAppendInput[], fail = false): LogAppender {
  return {
    edgeTiles: (size) => [{ level: 0, index: Math.floor(size / 256) }],
    extend(input) {
      calls.push(input)
      if (fail) throw new Error('appender failed')
      const old = input.tiles.find((t) => t.level === 0)
      const hashes = Buffer.concat([
        Buffer.from(old?.hashes ?? []),
        ...input.events.map((e) => sha(`event ${e.id}`)),
      ])
      const treeSize = input.treeSize + input.events.length
      const tile = { level: 0, index: 0, width: treeSize, hashes }
      const rootHash = createHash('sha256').update(hashes).digest()
      return {
        tiles: [tile],
        checkpoint: { treeSize, rootHash, createdAt: NOW, note: `size ${treeSize}\n` },
      }
    },
  }
}

const record = (store: Store, n: number, subject = 'contract') =>
  store.audit.record(NOW + n, { actor: 'test', action: 'contract.event', subject, details: { n } })

describeEachBackend('storage contract ($name): the audit log', (backend) => {
  let db: OpenBackend
  beforeEach(async () => {
    await db?.close()
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('the log key: of processes creating it at once one wins, with one audit event', async () => {
    const { a, b } = db
    expect(await a.auditLog.key()).toBeUndefined()
    const made = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? a : b).auditLog.createKey(logKey(`log-${i}.example/audit`), {
          actor: 'system',
          action: 'audit_log.create',
        }),
      ),
    )
    expect(new Set(made.map((k) => k.origin)).size).toBe(1)
    expect(await b.auditLog.key()).toEqual(made[0])
    expect(Buffer.from(made[0]!.publicKey)).toEqual(Buffer.alloc(32, 7))
    expect(await a.audit.list({ action: 'audit_log.create' })).toHaveLength(1)
  })

  it('append: committed events become leaves in id order, with their tiles and checkpoint', async () => {
    const { a, b } = db
    const calls: LogAppendInput[] = []
    expect(await a.auditLog.append(10, fakeAppender(calls))).toBeUndefined()
    expect(calls).toEqual([])
    for (let n = 0; n < 3; n++) await record(a, n)
    expect(await b.auditLog.pending()).toEqual({ count: 3, oldestAt: NOW })
    expect((await a.auditLog.append(2, fakeAppender(calls)))?.appended).toBe(2)
    const second = await b.auditLog.append(10, fakeAppender(calls))
    expect(second?.appended).toBe(1)
    expect(calls.map((c) => [c.treeSize, c.events.length, c.previous?.treeSize])).toEqual([
      [0, 2, undefined],
      [2, 1, 2],
    ])
    // The edge tile reached the appender as stored.
    expect(calls[1]!.tiles).toEqual([
      { level: 0, index: 0, width: 2, hashes: expect.any(Uint8Array) },
    ])
    const events = await a.auditLog.eventsByLeaf(0, 10)
    expect(events.map((e) => e.leafIndex)).toEqual([0, 1, 2])
    expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort((x, y) => x - y))
    expect(events[0]).toMatchObject({ action: 'contract.event', details: '{"n":0}' })
    expect(await b.auditLog.pending()).toEqual({ count: 0, oldestAt: null })
    expect((await a.auditLog.latestCheckpoint())?.note).toBe('size 3\n')
    expect((await a.auditLog.checkpoints(0, 10)).map((c) => c.treeSize)).toEqual([2, 3])
    expect((await a.auditLog.checkpoints(2, 10)).map((c) => c.treeSize)).toEqual([3])
    const [tile] = await b.auditLog.tiles([
      { level: 0, index: 0 },
      { level: 1, index: 0 },
    ])
    expect(tile?.width).toBe(3)
    expect(Buffer.from(tile!.hashes.subarray(64))).toEqual(sha(`event ${events[2]!.id}`))
    expect(await b.auditLog.tileRange(0, 0, 5)).toEqual([tile])
    expect(await b.auditLog.eventsByLeaf(2, 10)).toEqual([events[2]])
  })

  it('append: a failing appender commits nothing', async () => {
    const { a } = db
    await record(a, 1)
    await expect(a.auditLog.append(10, fakeAppender([], true))).rejects.toThrow('appender failed')
    expect(await a.auditLog.pending()).toMatchObject({ count: 1 })
    expect(await a.auditLog.latestCheckpoint()).toBeUndefined()
    expect(await a.auditLog.tileRange(0, 0, 10)).toEqual([])
  })

  it('append: racing appenders while events are written append each event once, contiguously', async () => {
    const { a, b } = db
    const calls: LogAppendInput[] = []
    const writers = Array.from({ length: 60 }, (_, n) => record(n % 2 ? a : b, n))
    const appenders = Array.from({ length: 12 }, (_, i) =>
      (i % 2 ? a : b).auditLog.append(7, fakeAppender(calls)),
    )
    await Promise.all([...writers, ...appenders])
    while (await a.auditLog.append(7, fakeAppender(calls)));
    const leaves = await b.auditLog.eventsByLeaf(0, 100)
    expect(leaves.map((e) => e.leafIndex)).toEqual(Array.from({ length: 60 }, (_, i) => i))
    expect(new Set(leaves.map((e) => e.id)).size).toBe(60)
    // Each batch started where the previous one ended.
    const sizes = calls.map((c) => c.treeSize)
    expect(sizes).toEqual([...sizes].sort((x, y) => x - y))
    for (const [i, c] of calls.entries())
      expect(c.treeSize).toBe(i === 0 ? 0 : calls[i - 1]!.treeSize + calls[i - 1]!.events.length)
    expect((await a.auditLog.latestCheckpoint())?.treeSize).toBe(60)
    expect((await a.auditLog.tiles([{ level: 0, index: 0 }]))[0]?.width).toBe(60)
  })

  it('prune: deletes old leaves from prunedBelow on, keeps their tiles, the newest checkpoint and pending events', async () => {
    const { a, b } = db
    for (let n = 0; n < 6; n++) await record(a, n * 1000) // at NOW + n s
    await a.auditLog.append(3, fakeAppender([]))
    await a.auditLog.append(10, fakeAppender([]))
    await a.auditLog.createKey(logKey('prune.example/audit'), { actor: 't', action: 'key' })
    const tiles = await a.auditLog.tileRange(0, 0, 10)
    expect(await b.auditLog.prune(NOW + 2500, 100, NOW + 9000)).toEqual({
      events: 3,
      checkpoints: 1, // the one of 3 leaves (signed at NOW); the newest stays
      prunedBelow: 3,
    })
    expect((await a.auditLog.key())?.prunedBelow).toBe(3)
    expect((await a.auditLog.eventsByLeaf(0, 10)).map((e) => e.leafIndex)).toEqual([3, 4, 5])
    expect((await a.auditLog.checkpoints(0, 10)).map((c) => c.treeSize)).toEqual([6])
    expect(await a.auditLog.tileRange(0, 0, 10)).toEqual(tiles)
    // Its own event, and the key's, wait to be appended; nothing pending was touched.
    expect((await a.auditLog.pending()).count).toBe(2)
    const [pruneEvent] = await a.audit.list({ action: 'audit_log.prune' })
    expect(pruneEvent?.details).toMatchObject({ pruned_below: 3, events: 3, checkpoints: 1 })
    // Again: nothing more is old enough. A limit bounds one call.
    expect(await b.auditLog.prune(NOW + 2500, 100, NOW)).toMatchObject({
      events: 0,
      prunedBelow: 3,
    })
    expect(await b.auditLog.prune(NOW + 60_000, 1, NOW)).toMatchObject({
      events: 1,
      prunedBelow: 4,
    })
  })

  it('eventsBySubject: the events about a subject with the given actions, in id order', async () => {
    const { a } = db
    await record(a, 1, 'serial-1')
    await a.audit.record(NOW, { actor: 't', action: 'other', subject: 'serial-1' })
    await record(a, 2, 'serial-1')
    await record(a, 3, 'serial-2')
    const found = await a.auditLog.eventsBySubject('serial-1', ['contract.event', 'nothing'])
    expect(found.map((e) => [e.details, e.leafIndex])).toEqual([
      ['{"n":1}', null],
      ['{"n":2}', null],
    ])
    expect(await a.auditLog.eventsBySubject('serial-1', [])).toEqual([])
  })

  it('append: an event whose transaction commits after a later one is appended by a later batch', async () => {
    const { a, drivers } = db
    if (backend.name === 'sqlite') {
      // One writer at a time: SQLite commits in id order, so there is nothing to reorder.
      return
    }
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let inserted!: () => void
    const insertedYet = new Promise<void>((r) => (inserted = r))
    const slow = drivers.b.transaction(async (tx) => {
      await tx.run(
        `INSERT INTO audit_events (at, actor, action, subject, details) VALUES (?, 'test', 'slow', NULL, NULL)`,
        [NOW],
      )
      inserted()
      await gate
    })
    await insertedYet
    await record(a, 2) // a higher id, committed first
    expect((await a.auditLog.append(10, fakeAppender([])))?.appended).toBe(1)
    release()
    await slow
    expect((await a.auditLog.append(10, fakeAppender([])))?.appended).toBe(1)
    const leaves = await a.auditLog.eventsByLeaf(0, 10)
    expect(leaves.map((e) => [e.action, e.leafIndex])).toEqual([
      ['contract.event', 0],
      ['slow', 1],
    ])
    expect(leaves[1]!.id).toBeLessThan(leaves[0]!.id)
  })
})
