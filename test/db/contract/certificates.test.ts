import { afterAll, beforeAll, expect, it } from 'vitest'
import { isCAError } from '../../../src/errors.js'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { cert, entryWithToken, event, family, NOW, renewal, storedCert } from './fixtures.js'

describeEachBackend('storage contract ($name): certificates', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('enrolment: of racing redemptions from two stores exactly one commits', async () => {
    const { a, b } = db
    const { entry, tokenId } = await entryWithToken(a)
    expect(await b.entries.findJoinToken(tokenId, NOW)).toBeDefined()
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).certificates.commitEnrollment(
          { joinTokenId: tokenId },
          cert(entry),
          event('enroll'),
          NOW,
        ),
      ),
    )
    expect(results.filter((r) => r === undefined)).toHaveLength(1)
    expect(results.filter((r) => r === 'join_token_spent')).toHaveLength(19)
    const page = await a.certificates.list({ spiffeId: entry.spiffeId, limit: 50, now: NOW })
    expect(page.items).toHaveLength(1)
    expect(await a.audit.list({ action: 'enroll' })).toHaveLength(1)
    expect(await a.entries.findJoinToken(tokenId, NOW)).toBeUndefined()
  })

  it('enrolment re-checks at commit: expired token, disabled entry, compromised key — token unspent', async () => {
    const { a, b } = db
    const expired = await entryWithToken(a, NOW + 500)
    expect(
      await a.certificates.commitEnrollment(
        { joinTokenId: expired.tokenId },
        cert(expired.entry),
        event('e'),
        NOW + 600,
      ),
    ).toBe('join_token_spent')
    const disabled = await entryWithToken(a)
    await b.entries.update(disabled.entry.id, { enabled: false }, NOW, event('entry.disable'))
    expect(
      await a.certificates.commitEnrollment(
        { joinTokenId: disabled.tokenId },
        cert(disabled.entry),
        event('e'),
        NOW,
      ),
    ).toBe('entry_disabled')
    expect(await a.entries.findJoinToken(disabled.tokenId, NOW)).toBeDefined()
    const keyed = await entryWithToken(a)
    const { cert: victim } = await storedCert(a)
    await b.certificates.revoke(victim.serial, 'keyCompromise', NOW, 'test')
    const again = cert(keyed.entry, { spkiSha256: victim.spkiSha256 })
    expect(
      await a.certificates.commitEnrollment({ joinTokenId: keyed.tokenId }, again, event('e'), NOW),
    ).toBe('key_compromised')
    expect(await a.certificates.isKeyCompromised(victim.spkiSha256)).toBe(true)
    expect(await a.certificates.get(again.serial)).toBeUndefined()
  })

  it('renewal commits only while the parent is valid; lineage by renewed_from', async () => {
    const { a, b } = db
    const { entry, cert: parent } = await storedCert(a)
    const child = renewal(entry, parent)
    expect(await a.certificates.commitRenewal(child, event('renew'), NOW)).toBeUndefined()
    const grandchild = renewal(entry, child)
    expect(await b.certificates.commitRenewal(grandchild, event('renew'), NOW)).toBeUndefined()
    expect(await a.certificates.isSelfOrDescendant(grandchild.serial, parent.serial)).toBe(true)
    expect(await a.certificates.isSelfOrDescendant(parent.serial, parent.serial)).toBe(true)
    expect(await a.certificates.isSelfOrDescendant(parent.serial, child.serial)).toBe(false)
    // The current generation, revoked: nothing renews from it (the lineage lives on in no one).
    const { entry: e2, cert: revoked } = await storedCert(a)
    await b.certificates.revoke(revoked.serial, 'superseded', NOW, 'test')
    expect(await a.certificates.commitRenewal(renewal(e2, revoked), event('r'), NOW)).toBe(
      'parent_not_valid',
    )
    const { entry: e3, cert: old } = await storedCert(a, { notAfter: NOW - 1 })
    expect(await a.certificates.commitRenewal(renewal(e3, old), event('r'), NOW)).toBe(
      'parent_not_valid',
    )
  })

  it('getState: the row without its bytes, by serial in either case; revocation shows at once', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const { der, ...rest } = (await a.certificates.get(c.serial))!
    expect(der.length).toBeGreaterThan(0)
    expect(await b.certificates.getState(c.serial.toUpperCase())).toEqual(rest)
    expect(await b.certificates.getState('00ff')).toBeUndefined()
    await a.certificates.revoke(c.serial, 'superseded', NOW, 'test')
    expect((await b.certificates.getState(c.serial))!.status).toBe('revoked')
  })

  it('revocation: idempotent (first reason and time stay), cascades to bound tokens, bumps the CRL revision', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const f = await family(a, c)
    expect(f.ok).toBe(true)
    const before = (await a.crls.current('x')).revision
    const first = (await a.certificates.revoke(c.serial, 'superseded', NOW, 'test'))!
    expect(first).toMatchObject({ changed: true, serials: [c.serial], familiesRevoked: 1 })
    expect(first.accessTokensRevoked).toBe(1)
    expect((await b.crls.current('x')).revision).toBeGreaterThan(before)
    expect(
      (await b.certificates.revoke(c.serial, 'keyCompromise', NOW + 5000, 'test'))!.changed,
    ).toBe(false)
    const row = (await a.certificates.get(c.serial.toUpperCase()))!
    expect([row.status, row.revocationReason, row.revokedAt]).toEqual([
      'revoked',
      'superseded',
      NOW,
    ])
    expect((await a.tokens.getFamily(f.id))!.status).toBe('revoked')
    expect((await a.tokens.findAccessToken(f.access.jti))!.revokedAt).toBe(NOW)
    expect(await a.certificates.revoke('00ff', 'superseded', NOW, 'test')).toBeUndefined()
  })

  it('keyCompromise: every certificate of the key in any state, and all their descendants', async () => {
    const { a } = db
    // first (key K) → a2 (K, renewed with the same key) → b (K') → deeper (K'').
    const { entry, cert: first } = await storedCert(a)
    const sameKey = renewal(entry, first, { spkiSha256: first.spkiSha256 })
    expect(await a.certificates.commitRenewal(sameKey, event('renew'), NOW)).toBeUndefined()
    const branch = renewal(entry, sameKey)
    expect(await a.certificates.commitRenewal(branch, event('renew'), NOW)).toBeUndefined()
    const deeper = renewal(entry, branch)
    expect(await a.certificates.commitRenewal(deeper, event('renew'), NOW)).toBeUndefined()
    const { cert: bystander } = await storedCert(a)
    await a.certificates.revoke(first.serial, 'superseded', NOW, 'test')
    const result = (await a.certificates.revoke(sameKey.serial, 'keyCompromise', NOW, 'test'))!
    expect(new Set(result.serials)).toEqual(new Set([sameKey.serial, branch.serial, deeper.serial]))
    expect((await a.certificates.get(deeper.serial))!.revocationReason).toBe('keyCompromise')
    expect((await a.certificates.get(first.serial))!.revocationReason).toBe('superseded')
    expect((await a.certificates.get(bystander.serial))!.status).toBe('valid')
    expect(await a.audit.list({ subject: sameKey.serial, action: 'key.compromised' })).toHaveLength(
      1,
    )
  })

  it('list: filters, stable cursor paging, and a cursor it did not issue is ERR_INVALID_CURSOR', async () => {
    const { a } = db
    const { entry, cert: c1 } = await storedCert(a)
    const c2 = cert(entry)
    const c3 = cert(entry, { notAfter: NOW - 1 })
    await a.certificates.insert(c2, event('issue'))
    await a.certificates.insert(c3, event('issue'))
    await a.certificates.revoke(c2.serial, 'superseded', NOW, 'test')
    const all = async (q: { status?: 'valid' | 'revoked' | 'expired' }) => {
      const seen: string[] = []
      let cursor: string | undefined
      do {
        const page = await a.certificates.list({
          spiffeId: entry.spiffeId,
          limit: 1,
          now: NOW,
          cursor,
          ...q,
        })
        seen.push(...page.items.map((i) => i.serial))
        cursor = page.nextCursor ?? undefined
      } while (cursor)
      return seen
    }
    expect(await all({})).toEqual([c1.serial, c2.serial, c3.serial])
    expect(await all({ status: 'valid' })).toEqual([c1.serial])
    expect(await all({ status: 'revoked' })).toEqual([c2.serial])
    expect(await all({ status: 'expired' })).toEqual([c3.serial])
    for (const bad of ['nope', Buffer.from('["c","x"]').toString('base64url'), 'e30']) {
      const error = await a.certificates.list({ limit: 1, now: NOW, cursor: bad }).catch((e) => e)
      expect(isCAError(error, 'ERR_INVALID_CURSOR')).toBe(true)
    }
  })

  it('a change and its audit event commit together or not at all', async () => {
    const { a } = db
    const { entry, tokenId } = await entryWithToken(a)
    const { cert: valid } = await storedCert(a)
    const restore = await db.breakAudit()
    try {
      const c = cert(entry)
      await expect(
        a.certificates.commitEnrollment({ joinTokenId: tokenId }, c, event('e'), NOW),
      ).rejects.toThrow()
      await expect(a.certificates.revoke(valid.serial, 'keyCompromise', NOW, 't')).rejects.toThrow()
      await expect(
        a.entries.update(entry.id, { enabled: false }, NOW, event('d')),
      ).rejects.toThrow()
    } finally {
      await restore()
    }
    expect(await a.entries.findJoinToken(tokenId, NOW)).toBeDefined()
    expect((await a.certificates.get(valid.serial))!.status).toBe('valid')
    expect(await a.certificates.isKeyCompromised(valid.spkiSha256)).toBe(false)
    expect((await a.entries.get(entry.id))!.enabled).toBe(true)
  })

  it('CA certificates are stored in order', async () => {
    const { a, b } = db
    const before = (await a.certificates.caCertificates()).length
    const der = new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x01])
    for (const kind of ['root', 'intermediate'] as const)
      await a.certificates.saveCaCertificate(
        {
          kind,
          serial: `${kind}-${NOW}`,
          der,
          keyFile: `ca/${kind}-key.pem`,
          notBefore: NOW,
          notAfter: NOW + 1,
        },
        NOW,
        event(`ca.create_${kind}`),
      )
    const rows = (await b.certificates.caCertificates()).slice(before)
    expect(rows.map((r) => r.kind)).toEqual(['root', 'intermediate'])
    expect(Buffer.from(rows[0]!.der).equals(Buffer.from(der))).toBe(true)
  })
})
