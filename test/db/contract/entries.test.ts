import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isCAError } from '../../../src/errors.js'
import { BACKENDS, type OpenBackend } from './backends.js'
import { entry, event, family, NOW, storedCert } from './fixtures.js'

describe.each(BACKENDS)('storage contract ($name): entries and join tokens', (backend) => {
  let db: OpenBackend
  beforeAll(async () => {
    db = await backend.open()
  })
  afterAll(() => db.close())

  it('create, get, getBySpiffeId round-trip every field; a second entry for a SPIFFE ID conflicts', async () => {
    const { a, b } = db
    const e = entry({ dnsNames: ['x.example.org', 'y.example.org'], scopes: null, maxTtl: null })
    await a.entries.create(e, event('entry.create'))
    expect(await b.entries.get(e.id)).toEqual(e)
    expect(await b.entries.getBySpiffeId(e.spiffeId)).toEqual(e)
    const dup = await b.entries
      .create({ ...entry(), spiffeId: e.spiffeId }, event('entry.create'))
      .catch((x: unknown) => x)
    expect(isCAError(dup, 'ERR_STORAGE_CONFLICT')).toBe(true)
    expect(await a.audit.list({ action: 'entry.create' })).toHaveLength(1)
    expect(await a.entries.get('missing')).toBeUndefined()
  })

  it("update applies a patch; disabling revokes the entry's families in the same transaction", async () => {
    const { a, b } = db
    const { entry: e, cert: c } = await storedCert(a)
    const f = await family(a, c)
    const patched = await b.entries.update(
      e.id,
      { dnsNames: ['z.example.org'], maxTtl: { text: '5m', ms: 300_000 }, scopes: ['w'] },
      NOW + 1,
      event('entry.update'),
    )
    expect(patched).toMatchObject({
      dnsNames: ['z.example.org'],
      maxTtl: { text: '5m' },
      scopes: ['w'],
    })
    expect((await a.tokens.getFamily(f.id))!.status).toBe('active')
    const off = await b.entries.update(e.id, { enabled: false }, NOW + 2, event('entry.disable'))
    expect(off!.enabled).toBe(false)
    const fam = (await a.tokens.getFamily(f.id))!
    expect([fam.status, fam.revokedReason]).toEqual(['revoked', 'entry_disabled'])
    expect((await a.tokens.findAccessToken(f.access.jti))!.revokedAt).not.toBeNull()
    expect(await a.entries.update('missing', { enabled: false }, NOW, event('x'))).toBeUndefined()
  })

  it('list pages through every entry once, in creation order', async () => {
    const { a } = db
    const made = []
    for (let i = 0; i < 5; i++) made.push(await a.entries.create(entry(), event('entry.create')))
    const seen: string[] = []
    let cursor: string | undefined
    do {
      const page = await a.entries.list({ limit: 2, cursor })
      seen.push(...page.items.map((e) => e.id))
      cursor = page.nextCursor ?? undefined
    } while (cursor)
    const order = made.map((e) => e.id)
    expect(seen.filter((id) => order.includes(id))).toEqual(order)
    expect(new Set(seen).size).toBe(seen.length)
    const bad = await a.entries.list({ limit: 2, cursor: 'zzz' }).catch((e: unknown) => e)
    expect(isCAError(bad, 'ERR_INVALID_CURSOR')).toBe(true)
  })

  it('join tokens: found while unused and unexpired, with their entry', async () => {
    const { a, b } = db
    const e = await a.entries.create(entry(), event('entry.create'))
    await a.entries.createJoinToken(
      { id: 'jt-contract', tokenHash: 'hash', entryId: e.id, expiresAt: NOW + 1000 },
      NOW,
      event('join_token.create'),
    )
    expect(await b.entries.findJoinToken('jt-contract', NOW)).toEqual({
      id: 'jt-contract',
      tokenHash: 'hash',
      entry: e,
    })
    expect(await b.entries.findJoinToken('jt-contract', NOW + 1000)).toBeUndefined()
  })
})
