import { afterAll, beforeAll, expect, it } from 'vitest'
import type { IssuingCaRecord, OcspSignerRecord } from '../../../src/db/types.js'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { cert, event, NOW, storedCert } from './fixtures.js'

const ca = (keyId: string, extra: Partial<IssuingCaRecord> = {}): IssuingCaRecord => ({
  keyId,
  kind: 'intermediate',
  serial: `5${keyId}`,
  der: new Uint8Array([0x30, 0x00]),
  parentKeyId: 'r00t',
  keyFile: null,
  keySealed: new Uint8Array([9, 9]),
  notBefore: NOW - 1000,
  notAfter: NOW + 86_400_000,
  activatedAt: null,
  revokedAt: null,
  revocationReason: null,
  createdAt: NOW,
  ...extra,
})

describeEachBackend('storage contract ($name): CAs, rotation and OCSP', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('issuing CAs: recorded once; of N rotations racing from the same current one, one wins', async () => {
    const { a, b } = db
    expect(
      await a.issuingCas.add(
        ca('r00t', {
          kind: 'root',
          parentKeyId: null,
          keySealed: null,
          keyFile: 'ca/root-key.pem',
        }),
        null,
        event('ca.record_root'),
      ),
    ).toBe(true)
    expect(
      await a.issuingCas.add(ca('c1', { activatedAt: NOW }), null, event('ca.record_intermediate')),
    ).toBe(true)
    expect(await b.issuingCas.add(ca('c1', { activatedAt: NOW }), null, event('again'))).toBe(false)
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        (i % 2 ? a : b).issuingCas.add(
          ca(`c2-${i}`, { activatedAt: NOW + 10 }),
          'c1',
          event('ca.rotate'),
        ),
      ),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    const list = await b.issuingCas.list()
    expect(list.map((r) => r.keyId).filter((k) => !k.startsWith('c2-'))).toEqual(['c1', 'r00t'])
    expect(list).toHaveLength(3)
    const byId = (id: string) => list.find((r) => r.keyId === id)
    expect(byId('r00t')).toMatchObject({
      kind: 'root',
      keyFile: 'ca/root-key.pem',
      keySealed: null,
      parentKeyId: null,
    })
    expect(Buffer.from(list.find((r) => r.keyId.startsWith('c2-'))!.keySealed!)).toEqual(
      Buffer.from([9, 9]),
    )
    // A stale expectation: nothing added, no audit event.
    const audits = (await a.audit.list({ action: 'ca.rotate' })).length
    expect(
      await a.issuingCas.add(ca('c3', { activatedAt: NOW + 20 }), 'c1', event('ca.rotate')),
    ).toBe(false)
    expect(await a.audit.list({ action: 'ca.rotate' })).toHaveLength(audits)
  })

  it('the CA of data_dir: recorded in one transaction by one of N racing processes, a partial record completed, nothing without its events', async () => {
    const initial = (suffix: string) => [
      {
        ca: ca(`root-${suffix}`, { kind: 'root', parentKeyId: null, keySealed: null }),
        event: event('ca.record_root'),
      },
      {
        ca: ca(`inter-${suffix}`, { parentKeyId: `root-${suffix}`, activatedAt: NOW }),
        event: event('ca.record_intermediate'),
      },
    ]
    const recorded = async (s: typeof db.a) => ({
      rows: (await s.issuingCas.list()).map((r) => r.keyId).sort(),
      events: [
        ...(await s.audit.list({ action: 'ca.record_root' })),
        ...(await s.audit.list({ action: 'ca.record_intermediate' })),
      ].length,
    })
    const race = await backend.open()
    try {
      // Every process reads an empty table, then records; each reader afterwards sees both rows.
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          (i % 2 ? race.a : race.b).issuingCas
            .recordInitial(initial('x'))
            .then(async (added) => ({ added, seen: await race.a.issuingCas.list() })),
        ),
      )
      expect(results.filter((r) => r.added)).toHaveLength(1)
      for (const r of results)
        expect(r.seen.map((c) => c.keyId).sort()).toEqual(['inter-x', 'root-x'])
      expect(await recorded(race.b)).toEqual({ rows: ['inter-x', 'root-x'], events: 2 })
      // A current issuer is recorded: another data_dir's CA is not added.
      expect(await race.a.issuingCas.recordInitial(initial('y'))).toBe(false)
      expect(await recorded(race.a)).toEqual({ rows: ['inter-x', 'root-x'], events: 2 })
    } finally {
      await race.close()
    }
    const partial = await backend.open()
    try {
      // An earlier version stopped between its two writes: the missing row is added, once.
      await partial.a.issuingCas.add(initial('p')[0]!.ca, null, event('ca.record_root'))
      expect(await partial.b.issuingCas.recordInitial(initial('p'))).toBe(true)
      expect(await recorded(partial.a)).toEqual({ rows: ['inter-p', 'root-p'], events: 2 })
    } finally {
      await partial.close()
    }
    const broken = await backend.open()
    try {
      // The audit write fails: neither row is recorded.
      const restore = await broken.breakAudit()
      await expect(broken.a.issuingCas.recordInitial(initial('b'))).rejects.toThrow()
      await restore()
      expect(await recorded(broken.b)).toEqual({ rows: [], events: 0 })
      expect(await broken.b.issuingCas.recordInitial(initial('b'))).toBe(true)
      expect(await recorded(broken.a)).toEqual({ rows: ['inter-b', 'root-b'], events: 2 })
    } finally {
      await broken.close()
    }
  })

  it('pending issuer keys: saved with an event, found by id, removed when their CA is added', async () => {
    const { a, b } = db
    await a.issuingCas.savePending(
      { keyId: 'p1', keySealed: new Uint8Array([1]), csr: new Uint8Array([2]), createdAt: NOW },
      event('ca.intermediate_csr'),
    )
    expect(await b.issuingCas.pending('p1')).toMatchObject({ keyId: 'p1', createdAt: NOW })
    expect(await b.issuingCas.pending('none')).toBeUndefined()
    await a.issuingCas.add(ca('p1'), null, event('ca.import_intermediate'))
    expect(await b.issuingCas.pending('p1')).toBeUndefined()
  })

  it('certificates before v6 are attributed to an issuer; CRL snapshots are per issuer and keep expired entries until told', async () => {
    const { a, b } = db
    const { entry, cert: old } = await storedCert(a)
    const attributed = await a.issuingCas.attributeUnassigned('c1')
    expect(attributed).toBeGreaterThanOrEqual(1)
    expect((await b.certificates.get(old.serial))!.issuerKeyId).toBe('c1')
    const other = cert(entry, { issuerKeyId: 'c9' })
    const expired = cert(entry, { issuerKeyId: 'c1', notAfter: NOW - 10_000 })
    await a.certificates.insert(other, event('issue'))
    await a.certificates.insert(expired, event('issue'))
    for (const c of [old, other, expired])
      await a.certificates.revoke(c.serial, 'superseded', NOW, 't')
    const byC1 = (await b.crls.snapshot(NOW - 60_000, 'c1')).revoked.map((r) => r.serial)
    expect(byC1).toContain(old.serial)
    expect(byC1).toContain(expired.serial) // expired 10 s ago: still listed for a while
    expect(byC1).not.toContain(other.serial)
    expect((await b.crls.snapshot(NOW, 'c1')).revoked.map((r) => r.serial)).not.toContain(
      expired.serial,
    )
    expect((await b.crls.snapshot(NOW, 'c9')).revoked.map((r) => r.serial)).toEqual([other.serial])
  })

  it('OCSP: the lookup reads the certificate now and the stored answer in one statement; answers are replaced', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a, { issuerKeyId: 'c1' })
    expect(await b.ocsp.lookup('c1', c.serial)).toEqual({
      certificate: {
        status: 'valid',
        revokedAt: null,
        revocationReason: null,
        notAfter: c.notAfter,
      },
      response: undefined,
    })
    expect(await b.ocsp.lookup('c9', c.serial)).toEqual({
      certificate: undefined,
      response: undefined,
    })
    const answer = {
      issuerKeyId: 'c1',
      serial: c.serial,
      status: 'good' as const,
      revokedAt: null,
      thisUpdate: NOW,
      nextUpdate: NOW + 1000,
      der: new Uint8Array([1, 2, 3]),
    }
    await a.ocsp.saveResponse(answer)
    await a.certificates.revoke(c.serial, 'keyCompromise', NOW + 5, 't')
    const after = await b.ocsp.lookup('c1', c.serial)
    expect(after.certificate).toMatchObject({
      status: 'revoked',
      revokedAt: NOW + 5,
      revocationReason: 'keyCompromise',
    })
    expect(after.response).toMatchObject({ status: 'good', thisUpdate: NOW })
    await b.ocsp.saveResponse({
      ...answer,
      status: 'revoked',
      revokedAt: NOW + 5,
      der: new Uint8Array([4]),
    })
    const replaced = await a.ocsp.lookup('c1', c.serial)
    expect(replaced.response).toMatchObject({ status: 'revoked', revokedAt: NOW + 5 })
    expect(Buffer.from(replaced.response!.der)).toEqual(Buffer.from([4]))
    // A root's certificates are the issuing CAs it signed.
    expect((await a.ocsp.lookup('r00t', '5c1')).certificate).toMatchObject({ status: 'valid' })
  })

  it('OCSP responders: unexpired ones of an issuer, newest first; adding one drops the expired', async () => {
    const { a, b } = db
    const signer = (serial: string, notAfter: number, createdAt = NOW): OcspSignerRecord => ({
      serial,
      issuerKeyId: 'c1',
      der: new Uint8Array([1]),
      keySealed: new Uint8Array([2]),
      notBefore: NOW - 1,
      notAfter,
      createdAt,
    })
    await a.ocsp.addSigner(signer('s-old', NOW + 10), event('ocsp.signer_issue'))
    await a.ocsp.addSigner(signer('s-new', NOW + 1000), event('ocsp.signer_issue'))
    expect((await b.ocsp.signers('c1', NOW)).map((s) => s.serial)).toEqual(['s-new', 's-old'])
    expect((await b.ocsp.signers('c1', NOW + 100)).map((s) => s.serial)).toEqual(['s-new'])
    await b.ocsp.addSigner(signer('s-next', NOW + 5000, NOW + 100), event('ocsp.signer_issue'))
    expect((await a.ocsp.signers('c1', 0)).map((s) => s.serial)).toEqual(['s-next', 's-new'])
    expect(await a.ocsp.signers('c2', NOW)).toEqual([])
  })
})
