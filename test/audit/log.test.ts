import { generateKeyPairSync } from 'node:crypto'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { leafData } from '../../src/audit/event.js'
import { exportAuditLog, proveIssuance, type ExportedEvent } from '../../src/audit/export.js'
import { AuditLog, openLogKey } from '../../src/audit/log.js'
import { checkpointText, signNote } from '../../src/audit/note.js'
import { leafHash } from '../../src/audit/merkle.js'
import { verifyAuditLog, type FailedVerification } from '../../src/audit/verify.js'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { systemClock } from '../../src/clock.js'
import type { KeyEncryptionKey } from '../../src/crypto/sealing.js'
import { TestServer, type Credential } from '../helpers/server.js'
import { grant, thumbprintOf } from '../helpers/tokens.js'
import {
  inclusionVerifies,
  leafHashOf,
  mth,
  openSignedNote,
  readCheckpoint,
} from './independent-check.js'
import { rawRun } from './raw.js'

const b = (s: string) => Buffer.from(s, 'base64')

describe('the audit log: a verifiable Merkle tree of every audit event', () => {
  let s: TestServer
  let kek: KeyEncryptionKey
  let log: AuditLog
  let workload: Credential
  let renewed: Credential
  let vkey: string
  const verify = () => verifyAuditLog(s.store.auditLog, { kek })
  const failed = async () => (await verify()) as FailedVerification
  const leaf = async (i: number) =>
    (await s.query('SELECT * FROM audit_events WHERE leaf_index = ?', i))[0]

  beforeAll(async () => {
    s = await TestServer.start()
    kek = loadKeyEncryptionKey(s.dataDir)
    log = new AuditLog({ config: s.config, store: s.store, clock: systemClock, kek })
    workload = await s.enroll('spiffe://example.org/audit/a')
    await s.enroll('spiffe://example.org/audit/b')
    renewed = (await s.renew(workload)).credential!
    for (let i = 0; i < 3; i++) await grant(s, renewed)
    await log.catchUp()
    const r = await s.call('GET', '/v1/audit/key')
    expect(r.status).toBe(200)
    vkey = r.text.trim()
  })
  afterAll(() => s.close())

  it('every event is a leaf, once, in order; the log verifies', async () => {
    const events = await s.query<{ leaf_index: number | null }>(
      'SELECT leaf_index FROM audit_events ORDER BY leaf_index',
    )
    expect(events.length).toBeGreaterThanOrEqual(12)
    expect(events.map((e) => e.leaf_index)).toEqual(events.map((_, i) => i))
    const result = await verify()
    expect(result).toMatchObject({ ok: true, tree_size: events.length, pending: 0, pruned: 0 })
    expect(result.ok && result.checkpoints).toBeGreaterThanOrEqual(1)
    expect(result.ok && result.verifier_key).toBe(vkey)
  })

  it('GET /v1/audit/checkpoint is signed by the key GET /v1/audit/key names, and the tiles give its root', async () => {
    const r = await s.call('GET', '/v1/audit/checkpoint')
    expect(r.status).toBe(200)
    expect(r.headers['content-type']).toBe('text/plain; charset=utf-8')
    const c = readCheckpoint(openSignedNote(r.text, vkey))
    expect(c.origin).toBe(vkey.split('+')[0])
    expect(c.origin).toMatch(/\/v1\/audit$/)
    // A checker that trusts nothing but the key: all leaf hashes from the level-0 tile.
    const tile = await request(`${s.url}/v1/audit/tile/0/000.p/${c.size}`, {
      dispatcher: s.agent(),
    })
    expect(tile.statusCode).toBe(200)
    expect(tile.headers['content-type']).toBe('application/octet-stream')
    const bytes = Buffer.from(await tile.body.arrayBuffer())
    expect(bytes.length).toBe(32 * c.size)
    const leaves = Array.from({ length: c.size }, (_, i) => bytes.subarray(i * 32, i * 32 + 32))
    expect(mth(leaves).equals(c.root)).toBe(true)
    for (const path of ['tile/0/000', 'tile/0/000.p/0', 'tile/1/000.p/1', 'tile/0/x000/000'])
      expect((await s.call('GET', `/v1/audit/${path}`)).status, path).toBe(404)
    expect(openSignedNote.bind(null, r.text.replace(/\n(\d+)\n/, '\n999\n'), vkey)).toThrow()
  })

  it('export: every event with an inclusion proof the RFC 9162 check accepts against the signed checkpoint', async () => {
    const [header, ...lines] = await collect()
    const c = readCheckpoint(openSignedNote(header.checkpoint, vkey))
    expect(lines).toHaveLength(c.size)
    for (const line of lines as ExportedEvent[]) {
      const hash = leafHashOf(Buffer.from(line.leaf_data, 'utf8'))
      expect(hash.equals(b(line.leaf_hash))).toBe(true)
      const proof = line.inclusion_proof.map(b)
      expect(inclusionVerifies(line.leaf_index, c.size, hash, proof, c.root)).toBe(true)
      // The same proof for another place, or another event, does not verify.
      const other = (line.leaf_index + 1) % c.size
      expect(inclusionVerifies(other, c.size, hash, proof, c.root)).toBe(false)
      expect(
        inclusionVerifies(line.leaf_index, c.size, leafHashOf(Buffer.from('x')), proof, c.root),
      ).toBe(false)
    }
  })

  it("prove: a certificate's issuance event, naming its thumbprint, with a proof that verifies", async () => {
    const p = await proveIssuance(s.store.auditLog, renewed.serial.toUpperCase())
    const event = JSON.parse(p.leaf_data)
    expect(event).toMatchObject({
      action: 'certificate.renew',
      subject: renewed.serial,
      details: { renewed_from: workload.serial, thumbprint: thumbprintOf(renewed.certPem) },
    })
    const c = readCheckpoint(openSignedNote(p.checkpoint, vkey))
    const ok = inclusionVerifies(
      p.leaf_index,
      c.size,
      leafHashOf(Buffer.from(p.leaf_data)),
      p.inclusion_proof.map(b),
      c.root,
    )
    expect(ok).toBe(true)
    await expect(proveIssuance(s.store.auditLog, '01')).rejects.toMatchObject({
      code: 'ERR_NOT_FOUND',
    })
  })

  it('one changed field of one event is named: leaf and event', async () => {
    const e = await leaf(4)
    for (const [column, value] of [
      ['details', '{"spiffe_id":"spiffe://example.org/someone-else"}'],
      ['subject', 'ff00'],
      ['actor', 'admin'],
      ['at', e.at + 1],
    ] as const) {
      await rawRun(s, `UPDATE audit_events SET ${column} = ? WHERE id = ?`, value, e.id)
      expect(await failed(), column).toMatchObject({
        ok: false,
        leaf_index: 4,
        event_id: e.id,
        problem: expect.stringMatching(/does not match the leaf hash logged there/),
      })
      await rawRun(s, `UPDATE audit_events SET ${column} = ? WHERE id = ?`, e[column], e.id)
      expect((await verify()).ok).toBe(true)
    }
  })

  it('one deleted event is named', async () => {
    for (const i of [5, (await lastLeaf()).leaf_index]) {
      const e = await leaf(i)
      await rawRun(s, 'DELETE FROM audit_events WHERE id = ?', e.id)
      expect(await failed()).toMatchObject({
        ok: false,
        leaf_index: i,
        problem: expect.stringMatching(new RegExp(`leaf ${i} has no event: it was deleted`)),
      })
      await reinsert(e)
      expect((await verify()).ok).toBe(true)
    }
  })

  it('two reordered events are named (their places swapped, or their contents)', async () => {
    const [x, y] = [await leaf(2), await leaf(7)]
    await rawRun(s, 'UPDATE audit_events SET leaf_index = -1 WHERE id = ?', x.id)
    await rawRun(s, 'UPDATE audit_events SET leaf_index = 2 WHERE id = ?', y.id)
    await rawRun(s, 'UPDATE audit_events SET leaf_index = 7 WHERE id = ?', x.id)
    expect(await failed()).toMatchObject({ ok: false, leaf_index: 2, event_id: y.id })
    await rawRun(s, 'UPDATE audit_events SET leaf_index = -1 WHERE id = ?', y.id)
    await rawRun(s, 'UPDATE audit_events SET leaf_index = 2 WHERE id = ?', x.id)
    await rawRun(s, 'UPDATE audit_events SET leaf_index = 7 WHERE id = ?', y.id)
    expect((await verify()).ok).toBe(true)

    const swap = async (to: typeof x, from: typeof x) =>
      rawRun(
        s,
        'UPDATE audit_events SET at = ?, actor = ?, action = ?, subject = ?, details = ? WHERE id = ?',
        from.at,
        from.actor,
        from.action,
        from.subject,
        from.details,
        to.id,
      )
    await swap(x, y)
    await swap(y, x)
    expect(await failed()).toMatchObject({ ok: false, leaf_index: 2, event_id: x.id })
    await swap(x, x)
    await swap(y, y)
    expect((await verify()).ok).toBe(true)
  })

  it('a changed leaf hash in a tile, or a changed checkpoint, is named', async () => {
    const [tile] = await s.query(
      'SELECT hashes FROM audit_tiles WHERE level = 0 AND tile_index = 0',
    )
    const bad = Buffer.from(tile.hashes)
    bad[3 * 32] ^= 1
    await rawRun(s, 'UPDATE audit_tiles SET hashes = ? WHERE level = 0 AND tile_index = 0', bad)
    expect(await failed()).toMatchObject({ ok: false, leaf_index: 3 })
    await rawRun(
      s,
      'UPDATE audit_tiles SET hashes = ? WHERE level = 0 AND tile_index = 0',
      tile.hashes,
    )

    const [c] = await s.query('SELECT * FROM audit_checkpoints ORDER BY tree_size DESC LIMIT 1')
    const forged = c.note.replace(
      /\u2014 (\S+) (.)/,
      (_m: string, n: string, ch: string) => `\u2014 ${n} ${ch === 'A' ? 'B' : 'A'}`,
    )
    await rawRun(
      s,
      'UPDATE audit_checkpoints SET note = ? WHERE tree_size = ?',
      forged,
      c.tree_size,
    )
    expect((await failed()).problem).toMatch(
      new RegExp(`checkpoint of ${c.tree_size} leaves is not signed`),
    )
    const root = Buffer.from(c.root_hash)
    root[0] ^= 1
    await rawRun(
      s,
      'UPDATE audit_checkpoints SET note = ?, root_hash = ? WHERE tree_size = ?',
      c.note,
      root,
      c.tree_size,
    )
    expect((await failed()).problem).toMatch(/has a root hash its signed note does not/)
    await rawRun(
      s,
      'UPDATE audit_checkpoints SET root_hash = ? WHERE tree_size = ?',
      c.root_hash,
      c.tree_size,
    )
    expect((await verify()).ok).toBe(true)
  })

  it('an event changed together with its leaf hash is caught by the signed root', async () => {
    const e = await leaf(6)
    const [tile] = await s.query(
      'SELECT hashes FROM audit_tiles WHERE level = 0 AND tile_index = 0',
    )
    const changed = { ...e, details: '{"forged":true}' }
    const hashes = Buffer.from(tile.hashes)
    leafHash(leafData(changed)).copy(hashes, 6 * 32)
    await rawRun(s, 'UPDATE audit_events SET details = ? WHERE id = ?', changed.details, e.id)
    await rawRun(s, 'UPDATE audit_tiles SET hashes = ? WHERE level = 0 AND tile_index = 0', hashes)
    const f = await failed()
    expect(f.problem).toMatch(
      /the checkpoint of \d+ leaves does not match the tree of the stored events/,
    )
    expect(f.leaf_index).toBeLessThanOrEqual(6)
    // The checkpointer refuses to sign on top of tiles that no longer give the signed root.
    await s.store.audit.record(Date.now(), { actor: 'test', action: 'test.after_tamper' })
    await expect(log.catchUp()).rejects.toMatchObject({ code: 'ERR_AUDIT_LOG_INVALID' })
    await rawRun(s, 'UPDATE audit_events SET details = ? WHERE id = ?', e.details, e.id)
    await rawRun(
      s,
      'UPDATE audit_tiles SET hashes = ? WHERE level = 0 AND tile_index = 0',
      tile.hashes,
    )
    await log.catchUp()
    expect((await verify()).ok).toBe(true)
  })

  it('a replaced log key, or one that is not the operator’s, is refused', async () => {
    const [key] = await s.query('SELECT public_key FROM audit_log')
    const other = Buffer.alloc(32, 9)
    await rawRun(s, 'UPDATE audit_log SET public_key = ?', other)
    expect((await failed()).problem).toMatch(/not the one sealed for this data_dir/)
    const { parseVerifierKey } = await import('../../src/audit/note.js')
    const asGiven = await verifyAuditLog(s.store.auditLog, { verifier: parseVerifierKey(vkey) })
    expect(asGiven).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/not the given verifier key/),
    })
    await rawRun(s, 'UPDATE audit_log SET public_key = ?', key.public_key)
    expect(
      await verifyAuditLog(s.store.auditLog, { verifier: parseVerifierKey(vkey) }),
    ).toMatchObject({ ok: true })
  })

  it('checkpoints saved elsewhere: the log must still hold each (no rollback, no rewritten history)', async () => {
    const saved = (await s.call('GET', '/v1/audit/checkpoint')).text
    const size = readCheckpoint(saved).size
    const withSaved = (...checkpoints: string[]) =>
      verifyAuditLog(s.store.auditLog, { kek, checkpoints })
    expect(await withSaved(saved)).toMatchObject({ ok: true })
    // What the log's key signed before a rollback, or before its history was rewritten.
    const [row] = await s.query('SELECT * FROM audit_log')
    const privateKey = openLogKey(
      { ...row, publicKey: row.public_key, privateKeySealed: row.private_key_sealed },
      kek,
    )
    const signed = (treeSize: number, root: Buffer) =>
      signNote(
        checkpointText({ origin: row.origin, treeSize, rootHash: root }),
        row.origin,
        privateKey,
      )
    expect(await withSaved(saved, signed(size + 10, Buffer.alloc(32)))).toMatchObject({
      ok: false,
      problem: expect.stringMatching(
        /fewer than the \d+ of a checkpoint it signed: it was rolled back/,
      ),
    })
    expect(await withSaved(signed(size - 1, Buffer.alloc(32)))).toMatchObject({
      ok: false,
      problem: expect.stringMatching(/its history was rewritten/),
    })
    const stranger = signNote(
      checkpointText({ origin: row.origin, treeSize: 1, rootHash: Buffer.alloc(32) }),
      row.origin,
      generateKeyPairSync('ed25519').privateKey,
    )
    expect((await withSaved(stranger)) as FailedVerification).toMatchObject({
      problem: expect.stringMatching(/^saved checkpoint 1: the note has no signature/),
    })
  })

  it('an event given a leaf index beyond every checkpoint is named', async () => {
    const { leaf_index: last } = await lastLeaf()
    await rawRun(
      s,
      `INSERT INTO audit_events (at, actor, action, subject, details, leaf_index) VALUES (?, 'x', 'forged', NULL, NULL, ?)`,
      Date.now(),
      last + 5,
    )
    expect(await failed()).toMatchObject({ ok: false, leaf_index: last + 5 })
    await rawRun(s, `DELETE FROM audit_events WHERE action = 'forged'`)
    expect((await verify()).ok).toBe(true)
  })

  async function collect() {
    const lines: any[] = []
    for await (const l of exportAuditLog(s.store.auditLog)) lines.push(l)
    return lines
  }

  async function lastLeaf() {
    return (await s.query('SELECT * FROM audit_events ORDER BY leaf_index DESC LIMIT 1'))[0]
  }

  async function reinsert(e: Record<string, any>) {
    // PostgreSQL generates ids (GENERATED ALWAYS): put the row back under its own id.
    const overriding = s.databaseUrl ? 'OVERRIDING SYSTEM VALUE' : ''
    await rawRun(
      s,
      `INSERT INTO audit_events (id, at, actor, action, subject, details, leaf_index) ${overriding}
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
      e.id,
      e.at,
      e.actor,
      e.action,
      e.subject,
      e.details,
      e.leaf_index,
    )
  }
})

describe('audit.retention: purged events keep their leaf hashes, so the log still verifies', () => {
  let s: TestServer
  let log: AuditLog
  beforeAll(async () => {
    s = await TestServer.start({ audit: { retention: '1d' } })
    log = new AuditLog({
      config: s.config,
      store: s.store,
      clock: systemClock,
      kek: loadKeyEncryptionKey(s.dataDir),
    })
  })
  afterAll(() => s.close())

  it('events past the retention are deleted, the tree, its tiles and the newest checkpoint stay', async () => {
    const cert = await s.enroll('spiffe://example.org/audit/old')
    const before = await log.catchUp()
    const size = before?.treeSize ?? (await s.store.auditLog.latestCheckpoint())!.treeSize
    expect(await log.purge(Date.now())).toBe(0) // nothing is a day old yet
    // Two days on, every event so far is past the retention.
    expect(await log.purge(Date.now() + 2 * 86_400_000)).toBe(size)
    await log.catchUp() // the purge's own event
    const result = await verifyAuditLog(s.store.auditLog, { kek: loadKeyEncryptionKey(s.dataDir) })
    expect(result).toMatchObject({ ok: true, tree_size: size + 1, pruned: size })
    await expect(proveIssuance(s.store.auditLog, cert.serial)).rejects.toMatchObject({
      code: 'ERR_NOT_FOUND',
    })
    const lines: any[] = []
    for await (const l of exportAuditLog(s.store.auditLog)) lines.push(l)
    expect(lines.slice(1).map((l) => [l.leaf_index, JSON.parse(l.leaf_data).action])).toEqual([
      [size, 'audit_log.prune'],
    ])
    const c = readCheckpoint(lines[0].checkpoint)
    const last = lines[1] as ExportedEvent
    expect(
      inclusionVerifies(size, c.size, b(last.leaf_hash), last.inclusion_proof.map(b), c.root),
    ).toBe(true)
    // Above prunedBelow a deleted event is still a deleted event.
    await rawRun(s, 'DELETE FROM audit_events WHERE leaf_index = ?', size)
    expect(await verifyAuditLog(s.store.auditLog)).toMatchObject({ ok: false, leaf_index: size })
  })
})
