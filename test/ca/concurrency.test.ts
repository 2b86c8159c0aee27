import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr, verifyLeaf } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { enrollWith, expectProblem, expectServing, query } from '../helpers/ca.js'

describe('a join token yields at most one certificate (LIFECYCLE invariant 6)', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('50 parallel enrolments with one join token: one 201, 49 × 401, one certificate, token spent', async () => {
    const spiffeId = 'spiffe://example.org/race/fifty'
    const entryId = await s.createEntry(spiffeId)
    const token = await s.joinToken(entryId)
    // Distinct keys, so every request would be a distinct certificate if it were let through.
    const csrs = Array.from({ length: 50 }, () => makeCsr().csrPem)
    // One connection per request (TestServer.call makes a new Agent), all in flight at once.
    const results = await Promise.all(csrs.map((csr) => enrollWith(s, token, { csr })))

    const ok = results.filter((r) => r.status === 201)
    const refused = results.filter((r) => r.status !== 201)
    expect(ok).toHaveLength(1)
    expect(refused).toHaveLength(49)
    for (const r of refused) expectProblem(r, 401)
    expect(verifyLeaf(ok[0]!.body.certificate, s.bundlePem, s.intermediatePem).code).toBe(0)

    const rows = await query(s, 'SELECT serial FROM certificates WHERE entry_id = ?', entryId)
    expect(rows).toEqual([{ serial: ok[0]!.body.serial }])
    const tokens = await query(
      s,
      'SELECT used_at, used_by FROM join_tokens WHERE entry_id = ?',
      entryId,
    )
    expect(tokens).toHaveLength(1)
    expect(tokens[0].used_at).not.toBeNull()
    expect(tokens[0].used_by).toBe(ok[0]!.body.serial)
    const audit = await s.store.audit.list({ action: 'certificate.enroll' })
    expect(audit.filter((e) => e.details?.entry_id === entryId)).toHaveLength(1)

    // Spent: a 51st attempt is refused too.
    expectProblem(await enrollWith(s, token, { csr: makeCsr().csrPem }), 401)
    await expectServing(s)
  })

  it('a refused CSR does not spend the join token; a good CSR afterwards succeeds', async () => {
    const spiffeId = 'spiffe://example.org/race/refused-first'
    const entryId = await s.createEntry(spiffeId)
    const token = await s.joinToken(entryId)
    const bad = makeCsr({ san: 'URI:spiffe://example.org/someone-else' }).csrPem
    expectProblem(await enrollWith(s, token, { csr: bad }), 400)
    expectProblem(await enrollWith(s, token, { csr: makeCsr().csrPem, ttl: '25h' }), 400)
    expect(await query(s, 'SELECT used_at FROM join_tokens WHERE entry_id = ?', entryId)).toEqual([
      { used_at: null },
    ])
    const good = await enrollWith(s, token, { csr: makeCsr().csrPem })
    expect(good.status, good.text).toBe(201)
    expect(good.body.spiffe_id).toBe(spiffeId)
  })

  it('parallel good and bad CSRs on one token: the bad ones never win, one good one does', async () => {
    const spiffeId = 'spiffe://example.org/race/mixed'
    const entryId = await s.createEntry(spiffeId)
    const token = await s.joinToken(entryId)
    const bad = makeCsr({ key: 'rsa-1024' }).csrPem
    const good = makeCsr().csrPem
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => enrollWith(s, token, { csr: i % 2 === 0 ? bad : good })),
    )
    const badResults = results.filter((_, i) => i % 2 === 0)
    for (const r of badResults) expect([400, 401]).toContain(r.status)
    expect(results.filter((r) => r.status === 201)).toHaveLength(1)
    expect(
      await query(s, 'SELECT count(*) AS n FROM certificates WHERE entry_id = ?', entryId),
    ).toEqual([{ n: 1 }])
  })
})
