import { randomUUID } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { accessRow, cert, event, family, NOW, refreshRow, renewal, storedCert } from './fixtures.js'

describeEachBackend('storage contract ($name): token families', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  const refreshInput = (familyId: string, oldRefreshId: string, c: ReturnType<typeof cert>) => ({
    familyId,
    oldRefreshId,
    certSerial: c.serial,
    refresh: refreshRow(),
    access: accessRow(c),
    event: event('token.refresh'),
    reuseEvent: event('token.family.reuse_detected'),
  })

  it("an access token's row keeps its signing kid and the SHA-256 of its bytes, for either process", async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const f = await family(a, c)
    const fromB = (await b.tokens.findAccessToken(f.access.jti))!
    expect(fromB.kid).toBe(f.access.kid)
    expect(Buffer.from(fromB.sha256!).equals(Buffer.from(f.access.sha256))).toBe(true)
    const next = refreshInput(f.id, f.refresh.id, c)
    expect(await b.tokens.commitRefresh(next)).toBe('ok')
    const refreshed = (await a.tokens.findAccessToken(next.access.jti))!
    expect(Buffer.from(refreshed.sha256!).equals(Buffer.from(next.access.sha256))).toBe(true)
  })

  it('createFamily commits only for a certificate still valid and an entry still enabled', async () => {
    const { a, b } = db
    const { entry, cert: c } = await storedCert(a)
    expect((await family(a, c)).ok).toBe(true)
    const { cert: revoked } = await storedCert(a)
    await b.certificates.revoke(revoked.serial, 'superseded', NOW, 't')
    expect((await family(a, revoked)).ok).toBe(false)
    const expired = cert(entry, { notAfter: NOW - 1 })
    await a.certificates.insert(expired, event('issue'))
    expect((await family(a, expired)).ok).toBe(false)
    await b.entries.update(entry.id, { enabled: false }, NOW, event('entry.disable'))
    expect((await family(a, c)).ok).toBe(false)
  })

  it('refresh: of racing refreshes with one token exactly one wins and the family dies', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const f = await family(a, c)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).tokens.commitRefresh(refreshInput(f.id, f.refresh.id, c)),
      ),
    )
    expect(results.filter((r) => r === 'ok')).toHaveLength(1)
    expect(results.filter((r) => r === 'reused' || r === 'family_inactive')).toHaveLength(19)
    expect(results).toContain('reused')
    const fam = (await a.tokens.getFamily(f.id))!
    expect([fam.status, fam.revokedReason]).toEqual(['revoked', 'refresh_token_reuse'])
    expect((await a.tokens.findAccessToken(f.access.jti))!.familyStatus).toBe('revoked')
    expect(await a.audit.list({ action: 'token.family.reuse_detected' })).not.toHaveLength(0)
  })

  it('refresh re-binds the family to the presented certificate and rotates the token', async () => {
    const { a } = db
    const { entry, cert: c } = await storedCert(a)
    const f = await family(a, c)
    const renewed = renewal(entry, c)
    expect(await a.certificates.commitRenewal(renewed, event('renew'), NOW)).toBeUndefined()
    const input = refreshInput(f.id, f.refresh.id, renewed)
    expect(await a.tokens.commitRefresh(input)).toBe('ok')
    expect((await a.tokens.getFamily(f.id))!.certSerial).toBe(renewed.serial)
    const old = (await a.tokens.findRefreshToken(f.refresh.id))!
    expect(old.usedAt).toBe(NOW)
    const fresh = (await a.tokens.findRefreshToken(input.refresh.id))!
    expect([fresh.usedAt, fresh.family.id]).toEqual([null, f.id])
    expect((await a.tokens.findAccessToken(input.access.jti))!.certSerial).toBe(renewed.serial)
  })

  it('a revocation racing token grants leaves no active family bound to the revoked certificate', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const grants = Array.from({ length: 10 }, () => family(a, c))
    const revocation = b.certificates.revoke(c.serial, 'superseded', NOW, 't')
    await Promise.all([...grants, revocation])
    const ids = await Promise.all(grants)
    for (const g of ids) {
      const fam = await a.tokens.getFamily(g.id)
      if (fam) expect(fam.status).toBe('revoked')
    }
  })

  it('revokeFamily, revokeAccessToken: idempotent, audited once', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const f = await family(a, c)
    expect(
      await a.tokens.revokeFamily(f.id, 'client_revoked', NOW, event('token.family.revoke')),
    ).toBe(true)
    expect(
      await b.tokens.revokeFamily(f.id, 'client_revoked', NOW, event('token.family.revoke')),
    ).toBe(false)
    const g = await family(a, c)
    expect(await a.tokens.revokeAccessToken(g.access.jti, NOW, event('token.revoke'))).toBe(true)
    expect(await b.tokens.revokeAccessToken(g.access.jti, NOW, event('token.revoke'))).toBe(false)
    expect((await a.tokens.findAccessToken(g.access.jti))!.revokedAt).toBe(NOW)
    expect(await a.tokens.findAccessToken(randomUUID())).toBeUndefined()
    expect(await a.tokens.findRefreshToken('r-unknown')).toBeUndefined()
  })

  it('purgeExpired works in chunks and keeps a family while any of its tokens is unexpired', async () => {
    const { a, b } = db
    const { cert: c } = await storedCert(a)
    const families = [await family(a, c), await family(a, c), await family(a, c)]
    // Their access tokens expire at NOW + 5 min, their refresh tokens at NOW + 1 h.
    const first = await b.tokens.purgeExpired(NOW + 600_000, { chunk: 1 })
    expect(first.accessTokens).toBeGreaterThanOrEqual(3)
    for (const f of families) {
      expect(await a.tokens.findAccessToken(f.access.jti)).toBeUndefined()
      expect(await a.tokens.findRefreshToken(f.refresh.id)).toBeDefined()
      expect(await a.tokens.getFamily(f.id)).toBeDefined()
    }
    // A budget spent at once: one chunk, the rest left for the next call.
    const partial = await b.tokens.purgeExpired(NOW + 2 * 3_600_000, { chunk: 2, budgetMs: 0 })
    expect(partial).toMatchObject({ refreshTokens: 2, complete: false })
    const second = await b.tokens.purgeExpired(NOW + 2 * 3_600_000, { chunk: 2 })
    expect(second.complete).toBe(true)
    expect(second.refreshTokens).toBeGreaterThanOrEqual(1)
    for (const f of families) {
      expect(await a.tokens.findRefreshToken(f.refresh.id)).toBeUndefined()
      expect(await a.tokens.getFamily(f.id)).toBeUndefined()
    }
  })

  it('purgeExpired forgets expired access and refresh tokens and empty families', async () => {
    const { a } = db
    const { cert: c } = await storedCert(a)
    const f = await family(a, c)
    const later = NOW + 10 * 3_600_000
    const purged = await a.tokens.purgeExpired(later)
    expect(purged.accessTokens).toBeGreaterThanOrEqual(1)
    expect(purged.refreshTokens).toBeGreaterThanOrEqual(1)
    expect(await a.tokens.getFamily(f.id)).toBeUndefined()
    expect(await a.tokens.findRefreshToken(f.refresh.id)).toBeUndefined()
  })
})
