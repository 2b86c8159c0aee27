import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { SigningKeyRecord } from '../../../src/db/types.js'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { cert, event, NOW, storedCert } from './fixtures.js'

const key = (kid: string, createdAt: number): SigningKeyRecord => ({
  kid,
  alg: 'ES256',
  publicJwk: { kty: 'EC', crv: 'P-256', x: 'x', y: 'y' },
  privateKeySealed: new Uint8Array([1, 2, 3, 4]),
  createdAt,
  publishAt: createdAt,
  activateAt: createdAt,
  retireAt: null,
  withdrawAt: null,
})

describeEachBackend('storage contract ($name): state shared by every process', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('signing keys: of N processes rotating at once from the same newest key, one adds a key', async () => {
    const { a, b } = db
    expect(
      await a.signingKeys.rotate(key('k0', NOW), [], null, NOW, event('signing_key.rotate')),
    ).toBe(true)
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? a : b).signingKeys.rotate(
          key(`k1-${i}`, NOW + 1000),
          [{ kid: 'k0', retireAt: NOW + 2000, withdrawAt: NOW + 3000 }],
          'k0',
          NOW + 1000,
          event('signing_key.rotate'),
        ),
      ),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    const keys = await b.signingKeys.list()
    expect(keys.map((k) => k.kid)).toHaveLength(2)
    expect(keys[0]).toMatchObject({ kid: 'k0', retireAt: NOW + 2000, withdrawAt: NOW + 3000 })
    expect(Buffer.from(keys[1]!.privateKeySealed!)).toEqual(Buffer.from([1, 2, 3, 4]))
    // A retirement only ever moves earlier.
    const newest = keys[1]!.kid
    await a.signingKeys.rotate(
      key('k2', NOW + 5000),
      [{ kid: 'k0', retireAt: NOW + 9000, withdrawAt: NOW + 9000 }],
      newest,
      NOW + 5000,
      event('signing_key.rotate'),
    )
    expect((await a.signingKeys.list())[0]).toMatchObject({ retireAt: NOW + 2000 })
  })

  it('signing keys: a list read (and cached) by one process shows a rotation by another at once', async () => {
    const { a, b } = db
    const before = await b.signingKeys.list()
    expect(await b.signingKeys.list()).toEqual(before)
    const newest = before.at(-1)?.kid ?? null
    expect(
      await a.signingKeys.rotate(
        key('k-seen', NOW + 6000),
        [],
        newest,
        NOW + 6000,
        event('signing_key.rotate'),
      ),
    ).toBe(true)
    expect((await b.signingKeys.list()).map((k) => k.kid)).toEqual([
      ...before.map((k) => k.kid),
      'k-seen',
    ])
    // And its own writes, without another process committing in between.
    await b.signingKeys.rotate(
      key('k-own', NOW + 7000),
      [],
      'k-seen',
      NOW + 7000,
      event('signing_key.rotate'),
    )
    expect((await b.signingKeys.list()).at(-1)!.kid).toBe('k-own')
  })

  it('signing keys: an emergency rotation withdraws the old keys and kills their tokens', async () => {
    const { a } = db
    const { cert: c } = await storedCert(a)
    const old = (await a.signingKeys.list()).map((k) => k.kid)
    const jti = `jti-${NOW}`
    await a.tokens.createFamily(
      {
        id: `f-${NOW}`,
        spiffeId: c.spiffeId!,
        entryId: c.entryId,
        certSerial: c.serial,
        scope: null,
        createdAt: NOW,
      },
      { id: `r-${NOW}`, hash: 'h', issuedAt: NOW, expiresAt: NOW + 60_000 },
      {
        jti,
        certSerial: c.serial,
        spiffeId: c.spiffeId!,
        kid: old.at(-1)!,
        issuedAt: NOW,
        expiresAt: NOW + 60_000,
        sha256: randomBytes(32),
      },
      event('token.issue'),
    )
    await a.signingKeys.rotateNow(
      key('k-now', NOW + 6000),
      old,
      NOW + 6000,
      event('signing_key.rotate_now'),
    )
    const keys = await a.signingKeys.list()
    for (const k of keys.filter((k) => old.includes(k.kid))) expect(k.withdrawAt).toBe(NOW + 6000)
    expect((await a.tokens.findAccessToken(jti))!.revokedAt).toBe(NOW + 6000)
  })

  it('CRLs: numbers strictly increase across stores; the snapshot lists revoked unexpired serials', async () => {
    const { a, b } = db
    const { entry, cert: revoked } = await storedCert(a)
    const gone = cert(entry, { notAfter: NOW - 1 })
    await a.certificates.insert(gone, event('issue'))
    await a.certificates.revoke(revoked.serial, 'keyCompromise', NOW, 't')
    await a.certificates.revoke(gone.serial, 'superseded', NOW, 't')
    const s1 = await a.crls.snapshot(NOW)
    const s2 = await b.crls.snapshot(NOW)
    expect(s2.crlNumber).toBeGreaterThan(s1.crlNumber)
    expect(s1.revoked.map((r) => r.serial)).toContain(revoked.serial)
    expect(s1.revoked.map((r) => r.serial)).not.toContain(gone.serial)
    expect(s1.revoked.find((r) => r.serial === revoked.serial)).toEqual({
      serial: revoked.serial,
      revokedAt: NOW,
      reason: 'keyCompromise',
    })
    const der = new Uint8Array([0x30, 0x00])
    await a.crls.save({
      issuerKeyId: 'ab',
      crlNumber: s2.crlNumber,
      revision: s2.revision,
      thisUpdate: NOW,
      nextUpdate: NOW + 1,
      der,
    })
    await b.crls.save({
      issuerKeyId: 'ab',
      crlNumber: s1.crlNumber,
      revision: s1.revision,
      thisUpdate: NOW,
      nextUpdate: NOW + 1,
      der,
    })
    const current = await b.crls.current('ab')
    expect(current.crl!.crlNumber).toBe(s2.crlNumber)
    expect(current.revision).toBe(s2.revision)
    await a.certificates.revoke((await storedCert(a)).cert.serial, 'superseded', NOW, 't')
    expect((await b.crls.current('ab')).revision).toBeGreaterThan(current.crl!.revision)
    expect((await b.crls.current('none')).crl).toBeUndefined()
  })

  it('leases: one holder at a time, renewable by the holder, taken over once expired', async () => {
    const { a, b } = db
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? a : b).leases.acquire('m', `h${i}`, NOW, 1000)),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    const winner = `h${results.indexOf(true)}`
    expect(await a.leases.acquire('m', winner, NOW + 500, 1000)).toBe(true)
    expect(await b.leases.acquire('m', 'other', NOW + 1000, 1000)).toBe(false)
    expect(await b.leases.acquire('m', 'other', NOW + 1501, 1000)).toBe(true)
    await b.leases.release('m', 'other')
    expect(await a.leases.acquire('m', winner, NOW + 1600, 1000)).toBe(true)
  })

  it('server credential: replaced as one unit with its certificate, one per race', async () => {
    const { a, b } = db
    const host = `dns:contract-${NOW}`
    const credential = (serial: string) => ({
      hostnames: host,
      serial,
      chainPem: `chain ${serial}`,
      keySealed: new Uint8Array([9, 9]),
      notAfter: NOW + 1000,
      createdAt: NOW,
    })
    const racers = Array.from({ length: 6 }, () => cert(null, { kind: 'server', spiffeId: null }))
    const results = await Promise.all(
      racers.map((c, i) =>
        (i % 2 ? a : b).serverCredentials.replace(
          credential(c.serial),
          c,
          null,
          event('issue_server'),
        ),
      ),
    )
    expect(results.filter(Boolean)).toHaveLength(1)
    const won = racers[results.indexOf(true)]!
    expect((await b.serverCredentials.current(host))!.serial).toBe(won.serial)
    expect(await a.certificates.get(won.serial)).toBeDefined()
    for (const c of racers.filter((c) => c !== won))
      expect(await a.certificates.get(c.serial)).toBeUndefined()
    const next = cert(null, { kind: 'server', spiffeId: null })
    expect(
      await a.serverCredentials.replace(credential(next.serial), next, won.serial, event('s')),
    ).toBe(true)
    expect((await b.serverCredentials.current(host))!.chainPem).toBe(`chain ${next.serial}`)
    expect(await a.serverCredentials.current('dns:nobody')).toBeUndefined()
  })
})
