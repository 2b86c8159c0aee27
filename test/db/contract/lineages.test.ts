import { randomBytes, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { Store } from '../../../src/db/port.js'
import type { EntryRecord, NewCertificate } from '../../../src/db/types.js'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { cert, entryWithToken, event, family, NOW, renewal, storedCert } from './fixtures.js'

/** A lineage of `n` generations: each renewed from the one before and used (so current). */
async function lineageOf(store: Store, n: number) {
  const { entry, cert: first } = await storedCert(store)
  const certs: NewCertificate[] = [first]
  for (let i = 1; i < n; i++) {
    const next = renewal(entry, certs.at(-1)!)
    expect(await store.certificates.commitRenewal(next, event('renew'), NOW)).toBeUndefined()
    expect(await store.lineages.promote(next.serial, NOW + i, `10.0.0.${i}`)).toBe('current')
    certs.push(next)
  }
  return { entry, certs, lineageId: first.lineageId! }
}

const states = async (store: Store, id: string) =>
  (await store.lineages.get(id))!.generations.map((g) => [g.serial, g.lineageState, g.status])

describeEachBackend('storage contract ($name): lineages', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('an enrolment starts a lineage: generation 1, current; the key is certified for its identity', async () => {
    const { a, b } = db
    const { entry, cert: c } = await storedCert(a, {})
    const lineage = (await b.lineages.get(c.lineageId!))!
    expect(lineage).toMatchObject({
      id: c.lineageId,
      spiffeId: entry.spiffeId,
      entryId: entry.id,
      status: 'active',
      currentSerial: c.serial,
      nextSerial: null,
    })
    expect(lineage.generations.map((g) => [g.generation, g.lineageState])).toEqual([[1, 'current']])
    expect((await b.lineages.find(c.lineageId!))!.createdAt).toBe(c.issuedAt)
    expect(await b.certificates.keyIdentity(c.spkiSha256)).toBe(entry.spiffeId)
    expect(await b.lineages.get('no-such-lineage')).toBeUndefined()
  })

  it('a renewal issues the next generation; the first use makes it current and retires the one before', async () => {
    const { a, b } = db
    const { entry, cert: first } = await storedCert(a)
    const next = renewal(entry, first)
    expect(
      await a.certificates.commitRenewal(next, event('renew'), NOW, { peer: '10.1.1.1' }),
    ).toBeUndefined()
    expect(await states(b, first.lineageId!)).toEqual([
      [first.serial, 'current', 'valid'],
      [next.serial, 'next', 'valid'],
    ])
    expect((await b.certificates.get(first.serial))!.lastPeer).toBe('10.1.1.1')
    // Racing first uses from two stores (two processes): one promotes, all see it current.
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).lineages.promote(next.serial, NOW + 5, '10.2.2.2'),
      ),
    )
    expect(new Set(results)).toEqual(new Set(['current']))
    expect(
      await a.audit.list({ subject: next.serial, action: 'lineage.generation_current' }),
    ).toHaveLength(1)
    const lineage = (await b.lineages.get(first.lineageId!))!
    expect([lineage.currentSerial, lineage.nextSerial]).toEqual([next.serial, null])
    const [old, now] = lineage.generations
    expect([old!.lineageState, old!.retiredAt, old!.status]).toEqual(['retired', NOW + 5, 'valid'])
    expect([now!.lineageState, now!.generation, now!.lastPeer]).toEqual(['current', 2, '10.2.2.2'])
    // A renewal from a next generation is its first use: promoted in the renewal's transaction.
    const third = renewal(entry, next)
    const fourth = renewal(entry, third)
    expect(await a.certificates.commitRenewal(third, event('renew'), NOW)).toBeUndefined()
    expect(await a.certificates.commitRenewal(fourth, event('renew'), NOW)).toBeUndefined()
    expect((await b.lineages.find(first.lineageId!))!.currentSerial).toBe(third.serial)
  })

  it('renewals racing from the current generation: at most one next generation survives', async () => {
    const { a, b } = db
    const { entry, cert: first } = await storedCert(a)
    const revisionBefore = (await a.crls.current('x')).revision
    const copies = Array.from({ length: 8 }, () => renewal(entry, first))
    const results = await Promise.all(
      copies.map((c, i) => (i % 2 ? a : b).certificates.commitRenewal(c, event('renew'), NOW)),
    )
    expect(results.every((r) => r === undefined)).toBe(true)
    const lineage = (await a.lineages.get(first.lineageId!))!
    const nexts = lineage.generations.filter((g) => g.lineageState === 'next')
    expect(nexts).toHaveLength(1)
    expect(nexts[0]!.serial).toBe(lineage.nextSerial)
    const replaced = lineage.generations.filter((g) => g.generation === 2 && g !== nexts[0])
    expect(replaced).toHaveLength(7)
    for (const r of replaced)
      expect([r.lineageState, r.status, r.revocationReason]).toEqual([
        'retired',
        'revoked',
        'superseded',
      ])
    expect((await b.crls.current('x')).revision).toBeGreaterThan(revisionBefore)
    // The replaced ones are never promoted.
    expect(await b.lineages.promote(replaced[0]!.serial, NOW, null)).toBe('retired')
  })

  it('a renewal from a retired generation contains the lineage in the transaction that refuses it', async () => {
    const { a, b } = db
    const { entry, certs, lineageId } = await lineageOf(a, 3)
    const [g1, g2, g3] = certs as [NewCertificate, NewCertificate, NewCertificate]
    const f2 = await family(a, g2)
    const f3 = await family(b, g3, NOW)
    expect([f2.ok, f3.ok]).toEqual([false, true]) // g2 is retired: no new family for it
    const f3again = await family(a, g3)
    const other = await storedCert(a)
    const otherFamily = await family(a, other.cert)
    const revisionBefore = (await a.crls.current('x')).revision
    const refused = await b.certificates.commitRenewal(renewal(entry, g1), event('renew'), NOW, {
      peer: '192.0.2.66',
    })
    expect(refused).toBe('clone_suspected')
    expect((await a.lineages.find(lineageId))!.status).toBe('revoked')
    for (const c of certs) {
      const row = (await a.certificates.get(c.serial))!
      expect([row.status, row.revocationReason]).toEqual(['revoked', 'keyCompromise'])
      expect(await a.certificates.isKeyCompromised(c.spkiSha256)).toBe(true)
    }
    for (const f of [f3, f3again]) expect((await a.tokens.getFamily(f.id))!.status).toBe('revoked')
    expect((await a.tokens.findAccessToken(f3.access.jti))!.revokedAt).toBe(NOW)
    expect((await a.tokens.getFamily(otherFamily.id))!.status).toBe('active')
    expect((await a.crls.current('x')).revision).toBeGreaterThan(revisionBefore)
    const [alarm, ...more] = await a.audit.list({
      subject: lineageId,
      action: 'lineage.clone_detected',
    })
    expect(more).toHaveLength(0)
    expect(alarm!.details).toMatchObject({
      lineage_id: lineageId,
      spiffe_id: entry.spiffeId,
      request: 'renew',
      presented: {
        serial: g1.serial,
        generation: 1,
        state: 'retired',
        request_peer: '192.0.2.66',
        last_peer: null,
      },
      current: { serial: g3.serial, generation: 3, last_peer: '10.0.0.2' },
    })
    // Nothing issued; a second signal changes nothing more.
    expect((await a.lineages.get(lineageId))!.generations).toHaveLength(3)
    const again = await a.lineages.contain({
      serial: g1.serial,
      request: 'token',
      peer: null,
      now: NOW,
    })
    expect(again).toMatchObject({ changed: false, serials: [] })
    expect(
      await a.audit.list({ subject: lineageId, action: 'lineage.clone_detected' }),
    ).toHaveLength(1)
  })

  it('contain: a superseded next generation, with the branch it came from; undefined for no lineage', async () => {
    const { a, b } = db
    const { entry, cert: first } = await storedCert(a)
    const stolen = renewal(entry, first)
    const owner = renewal(entry, first)
    await a.certificates.commitRenewal(stolen, event('renew'), NOW)
    await b.certificates.commitRenewal(owner, event('renew'), NOW)
    const result = (await a.lineages.contain({
      serial: stolen.serial,
      request: 'token',
      peer: '198.51.100.7',
      now: NOW,
      branchSerial: first.serial,
    }))!
    expect(result.changed).toBe(true)
    expect(new Set(result.serials)).toEqual(new Set([first.serial, owner.serial]))
    const [alarm] = await b.audit.list({
      subject: first.lineageId!,
      action: 'lineage.clone_detected',
    })
    expect(alarm!.details).toMatchObject({
      request: 'token',
      presented: { serial: stolen.serial, state: 'superseded', request_peer: '198.51.100.7' },
      current: { serial: first.serial },
      next: { serial: owner.serial },
      branch: { serial: first.serial },
    })
    // Its key too is refused from now on.
    expect(await a.certificates.isKeyCompromised(stolen.spkiSha256)).toBe(true)
    const admin = cert(null, { kind: 'admin' })
    await a.certificates.insert(admin, event('issue'))
    expect(
      await a.lineages.contain({ serial: admin.serial, request: 'renew', peer: null, now: NOW }),
    ).toBeUndefined()
  })

  it('revoke (admin): the lineage, its certificates and token families; idempotent; unknown is undefined', async () => {
    const { a, b } = db
    const { certs, lineageId } = await lineageOf(a, 2)
    const f = await family(a, certs[1]!)
    const result = (await b.lineages.revoke(lineageId, 'cessationOfOperation', NOW, 'admin'))!
    expect(result).toMatchObject({ changed: true, familiesRevoked: 1 })
    expect(new Set(result.serials)).toEqual(new Set(certs.map((c) => c.serial)))
    expect((await a.certificates.get(certs[0]!.serial))!.revocationReason).toBe(
      'cessationOfOperation',
    )
    expect(await a.certificates.isKeyCompromised(certs[0]!.spkiSha256)).toBe(false)
    expect((await a.tokens.getFamily(f.id))!.status).toBe('revoked')
    expect(await a.audit.list({ subject: lineageId, action: 'lineage.revoke' })).toHaveLength(1)
    expect((await a.lineages.revoke(lineageId, 'keyCompromise', NOW, 'admin'))!.changed).toBe(false)
    expect(await a.lineages.revoke('nope', 'unspecified', NOW, 'admin')).toBeUndefined()
    expect(await a.lineages.promote(certs[1]!.serial, NOW, null)).toBe('revoked')
  })

  it('a public key is certified for one SPIFFE ID: racing enrolments of one key for two identities', async () => {
    const { a, b } = db
    const one = await entryWithToken(a)
    const two = await entryWithToken(b)
    const spki = randomUUID()
    const enrol = (s: Store, t: { entry: EntryRecord; tokenId: string }) =>
      s.certificates.commitEnrollment(
        { joinTokenId: t.tokenId },
        cert(t.entry, { spkiSha256: spki, lineageId: randomUUID(), generation: 1 }),
        event('enroll'),
        NOW,
      )
    const results = await Promise.all([
      enrol(a, one).catch((e: Error) => e.message),
      enrol(b, two).catch((e: Error) => e.message),
    ])
    expect(results.filter((r) => r === undefined)).toHaveLength(1)
    const winner = results[0] === undefined ? one : two
    const loser = winner === one ? two : one
    expect(await a.certificates.keyIdentity(spki)).toBe(winner.entry.spiffeId)
    // The refused enrolment spent nothing.
    expect(await a.entries.findJoinToken(loser.tokenId, NOW)).toBeDefined()
    expect(await enrol(a, loser)).toBe('key_other_identity')
    // A renewal onto a key certified for another identity is refused the same way.
    const { entry, cert: c } = await storedCert(a)
    expect(
      await a.certificates.commitRenewal(renewal(entry, c, { spkiSha256: spki }), event('r'), NOW),
    ).toBe('key_other_identity')
  })

  it('the peer of an enrolment is stored with the certificate; a renewal records a new peer on its parent', async () => {
    const { a, b } = db
    const { entry: e, tokenId } = await entryWithToken(a)
    const c = cert(e, { lineageId: randomUUID(), generation: 1 })
    expect(
      await a.certificates.commitEnrollment(
        { joinTokenId: tokenId },
        c,
        event('enroll'),
        NOW,
        '198.51.100.7',
      ),
    ).toBeUndefined()
    expect((await b.certificates.get(c.serial))!.lastPeer).toBe('198.51.100.7')
    // The same key again for the same identity: its key_identities row already exists.
    const again = renewal(e, c, { spkiSha256: c.spkiSha256 })
    expect(
      await a.certificates.commitRenewal(again, event('renew'), NOW, { peer: '198.51.100.7' }),
    ).toBeUndefined()
    expect(await b.certificates.keyIdentity(c.spkiSha256)).toBe(e.spiffeId)
    expect((await b.certificates.get(c.serial))!.lastPeer).toBe('198.51.100.7')
    expect((await b.certificates.get(again.serial))!.lastPeer).toBeNull()
    const third = renewal(e, c)
    expect(
      await b.certificates.commitRenewal(third, event('renew'), NOW, { peer: '198.51.100.8' }),
    ).toBeUndefined()
    expect((await a.certificates.get(c.serial))!.lastPeer).toBe('198.51.100.8')
    expect(await a.certificates.keyIdentity(third.spkiSha256)).toBe(e.spiffeId)
  })

  it('renewal after expiry: within the grace once per proof jti, never outside it', async () => {
    const { a, b } = db
    const { entry, cert: c } = await storedCert(a, { notAfter: NOW - 10_000 })
    const proof = (jti: string, graceMs: number) => ({
      afterExpiry: { jti, proofExpiresAt: NOW + 60_000, graceMs },
    })
    expect(
      await a.certificates.commitRenewal(renewal(entry, c), event('r'), NOW, proof('j1', 5_000)),
    ).toBe('parent_not_valid')
    expect(
      await a.certificates.commitRenewal(renewal(entry, c), event('r'), NOW, proof('j1', 60_000)),
    ).toBeUndefined()
    expect(
      await b.certificates.commitRenewal(renewal(entry, c), event('r'), NOW, proof('j1', 60_000)),
    ).toBe('proof_replayed')
    expect(
      await b.certificates.commitRenewal(renewal(entry, c), event('r'), NOW, proof('j2', 60_000)),
    ).toBeUndefined()
    expect(await a.certificates.commitRenewal(renewal(entry, c), event('r'), NOW)).toBe(
      'parent_not_valid',
    )
  })

  it('token families follow the lineage; the last peer is written only when it changes', async () => {
    const { a, b } = db
    const { entry, certs } = await lineageOf(a, 1)
    const f = await family(a, certs[0]!)
    expect((await b.tokens.getFamily(f.id))!.lineageId).toBe(certs[0]!.lineageId)
    const ok = await b.tokens.createFamily(
      {
        id: randomUUID(),
        spiffeId: entry.spiffeId,
        entryId: entry.id,
        certSerial: certs[0]!.serial,
        scope: null,
        createdAt: NOW,
        peer: '203.0.113.9',
      },
      { id: `r-${randomUUID()}`, hash: 'h', issuedAt: NOW, expiresAt: NOW + 60_000 },
      {
        jti: randomUUID(),
        certSerial: certs[0]!.serial,
        spiffeId: entry.spiffeId,
        kid: 'k',
        issuedAt: NOW,
        expiresAt: NOW + 60_000,
        sha256: randomBytes(32),
      },
      event('token.issue'),
    )
    expect(ok).toBe(true)
    expect((await a.certificates.get(certs[0]!.serial))!.lastPeer).toBe('203.0.113.9')
    const page = await a.certificates.list({ lineageId: certs[0]!.lineageId!, limit: 10, now: NOW })
    expect(page.items.map((i) => i.serial)).toEqual([certs[0]!.serial])
  })

  it('renewal re-checks the entry scopes of the lineage’s families: those outside them end', async () => {
    const { a, b } = db
    const { entry, cert: c } = await storedCert(a)
    const wide = await family(a, c)
    await a.tokens.revokeFamily(wide.id, 'test', NOW, event('x'))
    const mk = async (scope: string) => {
      const id = randomUUID()
      await a.tokens.createFamily(
        {
          id,
          spiffeId: entry.spiffeId,
          entryId: entry.id,
          certSerial: c.serial,
          scope,
          createdAt: NOW,
        },
        { id: `r-${randomUUID()}`, hash: 'h', issuedAt: NOW, expiresAt: NOW + 60_000 },
        {
          jti: randomUUID(),
          certSerial: c.serial,
          spiffeId: entry.spiffeId,
          kid: 'k',
          issuedAt: NOW,
          expiresAt: NOW + 60_000,
          sha256: randomBytes(32),
        },
        event('token.issue'),
      )
      return id
    }
    const read = await mk('read')
    const write = await mk('read write')
    await b.entries.update(entry.id, { scopes: ['read'] }, NOW, event('entry.update'))
    expect(await a.certificates.commitRenewal(renewal(entry, c), event('r'), NOW)).toBeUndefined()
    expect((await a.tokens.getFamily(read))!.status).toBe('active')
    expect((await a.tokens.getFamily(write))!).toMatchObject({
      status: 'revoked',
      revokedReason: 'scope_withdrawn',
    })
  })

  it('containment and its audit event commit together or not at all', async () => {
    const { a } = db
    const { entry, certs, lineageId } = await lineageOf(a, 2)
    const restore = await db.breakAudit()
    try {
      await expect(
        a.certificates.commitRenewal(renewal(entry, certs[0]!), event('r'), NOW),
      ).rejects.toThrow()
      await expect(
        a.lineages.contain({ serial: certs[0]!.serial, request: 'token', peer: null, now: NOW }),
      ).rejects.toThrow()
    } finally {
      await restore()
    }
    expect((await a.lineages.find(lineageId))!.status).toBe('active')
    expect((await a.certificates.get(certs[1]!.serial))!.status).toBe('valid')
    expect(await a.certificates.isKeyCompromised(certs[0]!.spkiSha256)).toBe(false)
  })
})
