import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, expect, it } from 'vitest'
import type { OidcTokenUse } from '../../../src/db/types.js'
import { describeEachBackend, type OpenBackend } from './backends.js'
import { cert, entry, event, NOW } from './fixtures.js'

const use = (expiresAt = NOW + 600_000): OidcTokenUse => ({
  tokenHash: randomBytes(32).toString('hex'),
  issuer: 'github',
  expiresAt,
})

const RULE = {
  issuer: 'github',
  claims: { repository: 'acme/*', '/kubernetes.io/namespace': 'ci' },
}

describeEachBackend('storage contract ($name): OIDC rules and token uses', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it("an entry's oidc rule round-trips, is patched, kept by other patches and cleared with null", async () => {
    const { a, b } = db
    const e = await a.entries.create(entry({ oidc: RULE }), event('entry.create'))
    expect((await b.entries.get(e.id))!.oidc).toEqual(RULE)
    expect((await b.entries.getBySpiffeId(e.spiffeId))!.oidc).toEqual(RULE)
    await b.entries.update(e.id, { dnsNames: ['q.example.org'] }, NOW + 1, event('entry.update'))
    expect((await a.entries.get(e.id))!.oidc).toEqual(RULE)
    const other = { issuer: 'k8s', claims: { sub: 'system:serviceaccount:ci:runner' } }
    await b.entries.update(e.id, { oidc: other }, NOW + 2, event('entry.update'))
    expect((await a.entries.get(e.id))!.oidc).toEqual(other)
    await b.entries.update(e.id, { oidc: null }, NOW + 3, event('entry.update'))
    expect((await a.entries.get(e.id))!.oidc).toBeNull()
    expect((await a.entries.create(entry(), event('entry.create'))).oidc).toBeNull()
  })

  it('an OIDC token enrols once: of racing commits from two stores exactly one records its use', async () => {
    const { a, b } = db
    const e = await a.entries.create(entry({ oidc: RULE }), event('entry.create'))
    const u = use()
    expect(await b.oidcTokens.isUsed(u.tokenHash, NOW)).toBe(false)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? a : b).certificates.commitEnrollment(
          { oidcToken: u },
          cert(e),
          event('oidc.enroll'),
          NOW,
        ),
      ),
    )
    expect(results.filter((r) => r === undefined)).toHaveLength(1)
    expect(results.filter((r) => r === 'oidc_token_spent')).toHaveLength(19)
    const page = await a.certificates.list({ spiffeId: e.spiffeId, limit: 50, now: NOW })
    expect(page.items).toHaveLength(1)
    expect(await a.audit.list({ action: 'oidc.enroll' })).toHaveLength(1)
    expect(await a.oidcTokens.isUsed(u.tokenHash, NOW)).toBe(true)
    expect(await b.oidcTokens.isUsed(u.tokenHash, u.expiresAt)).toBe(false) // expired by then
  })

  it('a refused commit (entry disabled, audit failing) records no use; a later one does', async () => {
    const { a, b } = db
    const e = await a.entries.create(entry({ oidc: RULE }), event('entry.create'))
    const u = use()
    await b.entries.update(e.id, { enabled: false }, NOW, event('entry.disable'))
    expect(await a.certificates.commitEnrollment({ oidcToken: u }, cert(e), event('e'), NOW)).toBe(
      'entry_disabled',
    )
    expect(await a.oidcTokens.isUsed(u.tokenHash, NOW)).toBe(false)
    await b.entries.update(e.id, { enabled: true }, NOW, event('entry.enable'))
    const restore = await db.breakAudit()
    try {
      await expect(
        a.certificates.commitEnrollment({ oidcToken: u }, cert(e), event('e'), NOW),
      ).rejects.toThrow()
    } finally {
      await restore()
    }
    expect(await b.oidcTokens.isUsed(u.tokenHash, NOW)).toBe(false)
    expect(
      await a.certificates.commitEnrollment({ oidcToken: u }, cert(e), event('e'), NOW),
    ).toBeUndefined()
  })

  it('purgeExpired forgets only uses of expired tokens', async () => {
    const { a, b } = db
    const e = await a.entries.create(entry({ oidc: RULE }), event('entry.create'))
    const [old, fresh] = [use(NOW + 1_000), use(NOW + 100_000)]
    for (const u of [old, fresh]) {
      await a.certificates.commitEnrollment({ oidcToken: u }, cert(e), event('e'), NOW)
    }
    expect(await b.oidcTokens.purgeExpired(NOW + 50_000)).toBeGreaterThanOrEqual(1)
    expect(await a.oidcTokens.isUsed(fresh.tokenHash, NOW + 50_000)).toBe(true)
    const rows = await b.oidcTokens.purgeExpired(NOW + 50_000)
    expect(rows).toBe(0)
  })
})
