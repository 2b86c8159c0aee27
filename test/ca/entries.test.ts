import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { dbSnapshot, enrollWith, expectProblem, expectServing } from '../helpers/ca.js'

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/

describe('registration entries (admin API)', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  const post = (json: unknown) => s.call('POST', '/v1/entries', { as: s.admin, json })

  it('create → 201 with id and spiffe_id; show, list and the audit event agree', async () => {
    const r = await post({
      spiffe_id: 'spiffe://example.org/entries/web',
      dns_names: ['Web.Example.org', 'web.example.org'],
      ttl: '2h',
    })
    expect(r.status, r.text).toBe(201)
    expect(r.body).toMatchObject({
      spiffe_id: 'spiffe://example.org/entries/web',
      dns_names: ['web.example.org'],
      ttl: '2h',
      enabled: true,
    })
    expect(r.body.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(r.body.created_at).toMatch(RFC3339)
    expect(r.headers.location).toBe(`/v1/entries/${r.body.id}`)

    const shown = await s.call('GET', `/v1/entries/${r.body.id}`, { as: s.admin })
    expect(shown.status).toBe(200)
    expect(shown.body).toEqual(r.body)

    const list = await s.call('GET', '/v1/entries', { as: s.admin })
    expect(list.status).toBe(200)
    expect(Object.keys(list.body).sort()).toEqual(['items', 'next_cursor'])
    expect(list.body.items).toContainEqual(r.body)
    expect(list.body.next_cursor).toBeNull()

    const audit = await s.store.audit.list({
      subject: 'spiffe://example.org/entries/web',
      action: 'entry.create',
    })
    expect(audit).toHaveLength(1)
    expect(audit[0]!.actor).toBe('spiffe://example.org/admin')
    expect(audit[0]!.details).toMatchObject({ entry_id: r.body.id })
  })

  it('the ttl cap reads back as written ("24h" stays "24h", "60m" stays "60m")', async () => {
    for (const [i, ttl] of ['24h', '60m', '120s', '1d'].entries()) {
      const r = await post({ spiffe_id: `spiffe://example.org/entries/ttl${i}`, ttl })
      expect(r.status, r.text).toBe(201)
      expect(r.body.ttl).toBe(ttl)
      expect((await s.call('GET', `/v1/entries/${r.body.id}`, { as: s.admin })).body.ttl).toBe(ttl)
      const p = await s.call('PATCH', `/v1/entries/${r.body.id}`, { as: s.admin, json: { ttl } })
      expect(p.body.ttl).toBe(ttl)
    }
  })

  it('an entry without options has no DNS names and no ttl cap', async () => {
    const r = await post({ spiffe_id: 'spiffe://example.org/entries/plain' })
    expect(r.status).toBe(201)
    expect(r.body).toMatchObject({ dns_names: [], ttl: null, enabled: true })
  })

  it('a duplicate SPIFFE ID → 409, nothing changed', async () => {
    expect((await post({ spiffe_id: 'spiffe://example.org/entries/dup' })).status).toBe(201)
    const before = await dbSnapshot(s)
    const r = await post({
      spiffe_id: 'spiffe://example.org/entries/dup',
      dns_names: ['x.example.org'],
    })
    expect(expectProblem(r, 409)).toMatch(/spiffe:\/\/example\.org\/entries\/dup/)
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('parallel creates of one SPIFFE ID: one 201, the rest 409, one row', async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => post({ spiffe_id: 'spiffe://example.org/entries/race' })),
    )
    expect(results.filter((r) => r.status === 201)).toHaveLength(1)
    for (const r of results.filter((r) => r.status !== 201)) expectProblem(r, 409)
    const all = await s.call('GET', '/v1/entries?limit=1000', { as: s.admin })
    expect(
      all.body.items.filter(
        (e: { spiffe_id: string }) => e.spiffe_id === 'spiffe://example.org/entries/race',
      ),
    ).toHaveLength(1)
  })

  const invalid = [
    'spiffe://example.org/a/../b',
    'spiffe://example.org/a/./b',
    'spiffe://example.org/..',
    'spiffe://example.org',
    'spiffe://example.org/',
    'spiffe://example.org/a/',
    'SPIFFE://example.org/a',
    'Spiffe://example.org/a',
    'spiffe://EXAMPLE.org/a',
    'spiffe://example.org/a?x=1',
    'spiffe://example.org/a#f',
    'spiffe://other.org/a',
    'spiffe://example.org.evil.com/a',
    'spiffe://example.org/a//b',
    `spiffe://example.org/${'a'.repeat(3000)}`,
    'spiffe://example.org/%2e%2e',
    'spiffe://example.org/a%2Fb',
    'spiffe://example.org/a b',
    'spiffe://user@example.org/a',
    'spiffe://example.org:443/a',
    'https://example.org/a',
    'spiffe:example.org/a',
    ' spiffe://example.org/a',
    'spiffe://example.org/a\n',
    'spiffe://example.org/é',
    '',
  ]
  it.each(
    invalid.map((id) => ({
      id,
      label: id.length > 60 ? `${id.slice(0, 40)}…(${id.length})` : JSON.stringify(id),
    })),
  )('invalid SPIFFE ID $label → 400', async ({ id }) => {
    const before = await dbSnapshot(s)
    expect(expectProblem(await post({ spiffe_id: id }), 400)).toMatch(/spiffe_id/)
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('a SPIFFE ID that is not a string, or missing → 400', async () => {
    for (const body of [
      {},
      { spiffe_id: 42 },
      { spiffe_id: null },
      { spiffe_id: ['spiffe://example.org/x'] },
    ]) {
      expectProblem(await post(body), 400)
    }
  })

  it('an admin SPIFFE ID cannot be registered as a workload → 400', async () => {
    expect(expectProblem(await post({ spiffe_id: 'spiffe://example.org/admin' }), 400)).toMatch(
      /admin/,
    )
  })

  it('bad dns_names / ttl / unknown fields → 400', async () => {
    const before = await dbSnapshot(s)
    for (const body of [
      { spiffe_id: 'spiffe://example.org/entries/bad1', dns_names: 'web.example.org' },
      { spiffe_id: 'spiffe://example.org/entries/bad2', dns_names: ['-bad-.example.org'] },
      { spiffe_id: 'spiffe://example.org/entries/bad3', dns_names: ['a..b'] },
      { spiffe_id: 'spiffe://example.org/entries/bad4', dns_names: [42] },
      { spiffe_id: 'spiffe://example.org/entries/bad5', ttl: '48h' },
      { spiffe_id: 'spiffe://example.org/entries/bad6', ttl: 'forever' },
      { spiffe_id: 'spiffe://example.org/entries/bad7', enabled: false },
    ]) {
      expectProblem(await post(body), 400)
    }
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('PATCH changes dns_names and the ttl cap, and enrolment follows them', async () => {
    const created = await post({ spiffe_id: 'spiffe://example.org/entries/patched' })
    const id = created.body.id
    const p = await s.call('PATCH', `/v1/entries/${id}`, {
      as: s.admin,
      json: { dns_names: ['api.example.org'], ttl: '5m' },
    })
    expect(p.status, p.text).toBe(200)
    expect(p.body).toMatchObject({ id, dns_names: ['api.example.org'], ttl: '5m', enabled: true })
    expect(new Date(p.body.updated_at).getTime()).toBeGreaterThanOrEqual(
      new Date(created.body.updated_at).getTime(),
    )
    expect((await s.call('GET', `/v1/entries/${id}`, { as: s.admin })).body).toEqual(p.body)

    const csr = makeCsr({
      san: 'URI:spiffe://example.org/entries/patched,DNS:api.example.org',
    }).csrPem
    expectProblem(await enrollWith(s, await s.joinToken(id), { csr, ttl: '6m' }), 400)
    const ok = await enrollWith(s, await s.joinToken(id), { csr, ttl: '5m' })
    expect(ok.status, ok.text).toBe(201)

    // ttl: null removes the cap; an empty PATCH changes nothing.
    const cleared = await s.call('PATCH', `/v1/entries/${id}`, { as: s.admin, json: { ttl: null } })
    expect(cleared.body.ttl).toBeNull()
    const same = await s.call('PATCH', `/v1/entries/${id}`, { as: s.admin, json: {} })
    expect(same.status).toBe(200)
    expect(same.body).toMatchObject({ dns_names: ['api.example.org'], ttl: null, enabled: true })
    expect(
      (await s.store.audit.list({ subject: created.body.spiffe_id, action: 'entry.update' }))
        .length,
    ).toBeGreaterThanOrEqual(2)
  })

  it('an unknown entry: show and PATCH → 404', async () => {
    expectProblem(await s.call('GET', '/v1/entries/does-not-exist', { as: s.admin }), 404)
    expectProblem(
      await s.call('PATCH', '/v1/entries/does-not-exist', { as: s.admin, json: { enabled: true } }),
      404,
    )
  })

  it('pagination: limit and next_cursor walk every entry exactly once', async () => {
    for (let i = 0; i < 7; i++)
      expect((await post({ spiffe_id: `spiffe://example.org/entries/page/${i}` })).status).toBe(201)
    const all = await s.call('GET', '/v1/entries?limit=1000', { as: s.admin })
    expect(all.body.next_cursor).toBeNull()
    const seen: string[] = []
    let cursor: string | null = null
    let pages = 0
    do {
      const q: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`
      const r = await s.call('GET', `/v1/entries?limit=3${q}`, { as: s.admin })
      expect(r.status).toBe(200)
      expect(r.body.items.length).toBeLessThanOrEqual(3)
      if (r.body.next_cursor !== null) expect(r.body.items).toHaveLength(3)
      seen.push(...r.body.items.map((e: { id: string }) => e.id))
      cursor = r.body.next_cursor
      pages++
    } while (cursor !== null && pages < 100)
    expect(seen).toEqual(all.body.items.map((e: { id: string }) => e.id))
    expect(new Set(seen).size).toBe(seen.length)
    expect(seen.length).toBeGreaterThanOrEqual(7)
    expect(pages).toBe(Math.ceil(seen.length / 3))
  })

  it('join tokens: base64url with ≥ 256 bits, expires_at from the ttl, stored only as a hash (not in the database files)', async () => {
    const id = (await post({ spiffe_id: 'spiffe://example.org/entries/tokens' })).body.id
    const before = Date.now()
    const r = await s.call('POST', `/v1/entries/${id}/join-tokens`, {
      as: s.admin,
      json: { ttl: '15m' },
    })
    expect(r.status, r.text).toBe(201)
    expect(Object.keys(r.body).sort()).toEqual(['expires_at', 'token'])
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.body.token).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(r.body.token.length * 6).toBeGreaterThanOrEqual(256 + 64)
    const expires = new Date(r.body.expires_at).getTime()
    expect(expires).toBeGreaterThanOrEqual(before + 15 * 60_000 - 1000)
    expect(expires).toBeLessThanOrEqual(Date.now() + 15 * 60_000)
    const other = await s.call('POST', `/v1/entries/${id}/join-tokens`, { as: s.admin })
    expect(other.status).toBe(201)
    expect(other.body.token).not.toBe(r.body.token)
    expect(new Date(other.body.expires_at).getTime()).toBeGreaterThan(Date.now() + 59 * 60_000) // enrollment.join_token_ttl 1h

    // Neither the token nor its secret part is anywhere in the database: in no stored value,
    // and on SQLite in no byte of the main file or the WAL (free pages included).
    const values = await s.storedValues()
    const files = readdirSync(s.dataDir).filter((f) => f.startsWith('certbound.db'))
    if (s.databaseUrl === undefined) expect(files).toContain('certbound.db-wal')
    for (const token of [r.body.token, other.body.token]) {
      const secret = token.slice(-32)
      for (const v of values) expect(v.includes(secret)).toBe(false)
      for (const f of files)
        expect(readFileSync(join(s.dataDir, f)).includes(secret), f).toBe(false)
    }
    // The audit event names the token by its public lookup id only.
    const audit = await s.store.audit.list({
      subject: 'spiffe://example.org/entries/tokens',
      action: 'join_token.create',
    })
    expect(audit).toHaveLength(2)
    expect(audit[0]!.details).toMatchObject({ entry_id: id })
    expect(JSON.stringify(audit)).not.toContain(r.body.token.slice(-32))
    // Nor in the entry as the API shows it.
    expect((await s.call('GET', `/v1/entries/${id}`, { as: s.admin })).text).not.toContain(
      r.body.token.slice(-32),
    )
  })

  it('a disabled entry: join-token creation 400, enrolment refused without spending the token, audit', async () => {
    const created = await post({ spiffe_id: 'spiffe://example.org/entries/disabled' })
    const id = created.body.id
    const token = await s.joinToken(id)
    const d = await s.call('PATCH', `/v1/entries/${id}`, { as: s.admin, json: { enabled: false } })
    expect(d.status).toBe(200)
    expect(d.body.enabled).toBe(false)
    expect(
      await s.store.audit.list({ subject: created.body.spiffe_id, action: 'entry.disable' }),
    ).toHaveLength(1)

    const before = await dbSnapshot(s)
    expect(
      expectProblem(
        await s.call('POST', `/v1/entries/${id}/join-tokens`, { as: s.admin, json: {} }),
        400,
      ),
    ).toMatch(/disabled/)
    const csr = makeCsr({ san: 'URI:spiffe://example.org/entries/disabled' }).csrPem
    expect(expectProblem(await enrollWith(s, token, { csr }), [401, 403])).toMatch(/disabled/)
    expect(await dbSnapshot(s)).toEqual(before)
    await expectServing(s)

    // Enabled again, the unspent token enrols.
    expect(
      (await s.call('PATCH', `/v1/entries/${id}`, { as: s.admin, json: { enabled: true } })).body
        .enabled,
    ).toBe(true)
    expect((await enrollWith(s, token, { csr })).status).toBe(201)
  })
})
