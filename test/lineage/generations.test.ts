import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { expectProblem } from '../helpers/ca.js'
import {
  cloneAlarms,
  crlSerials,
  expectCloneProblem,
  expectSuperseded,
  generationStates,
  lineageOf,
  ShiftedClock,
} from '../helpers/lineage.js'
import { TestServer } from '../helpers/server.js'
import {
  expectOAuthError,
  grant,
  introspect,
  refresh,
  revoke,
  token,
  type Cred,
} from '../helpers/tokens.js'

/**
 * Generations (CONTRACT "Lineages", LIFECYCLE invariant 10): a renewal issues the next
 * generation, its first use makes it current and retires the one before, and a retired one is
 * refused everywhere — within renewal.clone_grace harmlessly, after it (or when it asks to
 * renew) as a clone, with the whole lineage revoked in the transaction that refuses it.
 */
describe('lineages and generations over real mTLS', () => {
  let s: TestServer
  let rs: Cred
  const clock = new ShiftedClock()
  let n = 0
  const enroll = () => s.enroll(`spiffe://example.org/generations/w${++n}`)
  beforeAll(async () => {
    s = await TestServer.start({}, { clock })
    rs = await s.enroll('spiffe://example.org/generations/resource-server')
  })
  afterAll(() => s.close())

  it('enrolment is generation 1; a renewal the next one, current only from its first use', async () => {
    const a = await enroll()
    const renewed = await s.renew(a)
    expect(renewed.status, renewed.text).toBe(201)
    const b = renewed.credential!
    const lineage = await lineageOf(s, a.serial)
    expect(renewed.body).toMatchObject({ lineage_id: lineage.id, generation: 2 })
    expect(lineage).toMatchObject({ spiffe_id: expect.stringContaining('/w'), status: 'active' })
    expect(await generationStates(s, a.serial)).toEqual({
      [a.serial]: 'current',
      [b.serial]: 'next',
    })
    // Until b is used, a is the current generation and works as before.
    expect((await token(s, a)).status).toBe(200)
    const shown = await s.call('GET', `/v1/certificates/${b.serial}`, { as: s.admin })
    expect(shown.body).toMatchObject({
      lineage_id: lineage.id,
      generation: 2,
      generation_state: 'next',
    })
    // Any mTLS call is a first use (introspection here).
    expect((await introspect(s, b, 'x')).status).toBe(200)
    expect(await generationStates(s, a.serial)).toEqual({
      [a.serial]: 'retired',
      [b.serial]: 'current',
    })
    expect(
      await s.store.audit.list({ subject: b.serial, action: 'lineage.generation_current' }),
    ).toHaveLength(1)
    const listed = await s.call('GET', `/v1/certificates?lineage_id=${lineage.id}`, { as: s.admin })
    expect(listed.body.items.map((i: { serial: string }) => i.serial)).toEqual([a.serial, b.serial])
  })

  it('after the first use of the new certificate the old one gets 401 on every mTLS route', async () => {
    const a = await enroll()
    const t = await grant(s, a)
    const b = (await s.renew(a)).credential!
    expect((await refresh(s, b, t.refresh_token)).status).toBe(200) // b's first use
    expectSuperseded(await s.call('GET', `/v1/entries`, { as: a }))
    expectOAuthError(await token(s, a), 401, 'invalid_client')
    expectOAuthError(await introspect(s, a, t.access_token), 401, 'invalid_client')
    expectOAuthError(await revoke(s, a, t.access_token), 401, 'invalid_client')
    for (const r of [await token(s, a), await introspect(s, a, 'x')])
      expect(r.body.error_description).toMatch(/superseded by a newer certificate/)
    // Its access token stays active until its exp: the lineage was not contained.
    expect((await introspect(s, rs, t.access_token)).body.active).toBe(true)
    expect((await lineageOf(s, a.serial)).status).toBe('active')
    expect(await cloneAlarms(s)).toHaveLength(0)
  })

  it('a token request from a retired generation: refused within renewal.clone_grace, contained after it', async () => {
    const a = await enroll()
    const tA = await grant(s, a)
    const b = (await s.renew(a)).credential!
    const tB = await grant(s, b)
    // Within the grace (a process still holding the previous files): refused, nothing revoked.
    clock.offsetMs = 50_000
    expectOAuthError(await token(s, a), 401, 'invalid_client')
    expect((await introspect(s, rs, tB.access_token)).body.active).toBe(true)
    expect((await lineageOf(s, a.serial)).status).toBe('active')
    // After it: two holders of one lineage.
    clock.offsetMs = 61_000
    try {
      const r = await token(s, a)
      expectOAuthError(r, 401, 'invalid_client')
      expect(r.body.error_description).toMatch(/suspected clone/)
      const lineage = await lineageOf(s, a.serial)
      expect(lineage.status).toBe('revoked')
      for (const g of lineage.generations)
        expect(g).toMatchObject({ state: 'revoked', revocation_reason: 'keyCompromise' })
      for (const t of [tA.access_token, tA.refresh_token, tB.access_token, tB.refresh_token])
        expect((await introspect(s, rs, t)).body.active).toBe(false)
      const crl = await crlSerials(s)
      expect(crl.has(a.serial) && crl.has(b.serial)).toBe(true)
      const alarms = (await cloneAlarms(s)).filter((e) => e.subject === lineage.id)
      expect(alarms).toHaveLength(1)
      expect(alarms[0]!.details).toMatchObject({
        request: 'token',
        presented: { serial: a.serial, generation: 1, state: 'retired', request_peer: '127.0.0.1' },
        current: { serial: b.serial, generation: 2, last_peer: '127.0.0.1' },
      })
      // The keys are refused from now on.
      const entryId = (await s.call('GET', `/v1/certificates/${a.serial}`, { as: s.admin })).body
        .entry_id
      const reuse = makeCsr({ keyPem: b.keyPem, san: `URI:${lineage.spiffe_id}` }).csrPem
      const enrolled = await s.call('POST', '/v1/enroll', {
        headers: { authorization: `Bearer ${await s.joinToken(entryId)}` },
        json: { csr: reuse },
      })
      expect(expectProblem(enrolled, 400)).toMatch(/keyCompromise/)
    } finally {
      clock.offsetMs = 0
    }
  })

  it('a retired generation asking to renew: 403 clone_suspected at once, lineage revoked, nothing issued', async () => {
    const a = await enroll()
    const b = (await s.renew(a)).credential!
    await grant(s, b)
    const before = (
      await s.call('GET', `/v1/certificates?lineage_id=${(await lineageOf(s, a.serial)).id}`, {
        as: s.admin,
      })
    ).body.items.length
    const r = await s.renew(a)
    expectCloneProblem(r)
    const lineage = await lineageOf(s, a.serial)
    expect(lineage.status).toBe('revoked')
    expect(lineage.generations).toHaveLength(before)
    expectOAuthError(await token(s, b), 401, 'invalid_client')
    const [alarm] = (await cloneAlarms(s)).filter((e) => e.subject === lineage.id)
    expect(alarm!.details).toMatchObject({
      request: 'renew',
      presented: { serial: a.serial },
      current: { serial: b.serial },
    })
  })

  it('a renewal whose new generation was never used (files never written) renews again without alarm', async () => {
    const a = await enroll()
    const lost = (await s.renew(a)).credential!
    const kept = await s.renew(a)
    expect(kept.status, kept.text).toBe(201)
    expect(kept.body.generation).toBe(2)
    expect(await generationStates(s, a.serial)).toEqual({
      [a.serial]: 'current',
      [lost.serial]: 'revoked',
      [kept.credential!.serial]: 'next',
    })
    const shown = await s.call('GET', `/v1/certificates/${lost.serial}`, { as: s.admin })
    expect(shown.body.revocation_reason).toBe('superseded')
    expect((await crlSerials(s)).has(lost.serial)).toBe(true)
    expect((await token(s, kept.credential!)).status).toBe(200)
    expect((await lineageOf(s, a.serial)).status).toBe('active')
    expect(
      (await cloneAlarms(s)).filter(
        (e) =>
          e.details?.presented && (e.details.presented as { serial: string }).serial === a.serial,
      ),
    ).toHaveLength(0)
  })

  it('racing first uses of the next generation make it current once', async () => {
    const a = await enroll()
    const b = (await s.renew(a)).credential!
    const results = await Promise.all(Array.from({ length: 8 }, () => token(s, b)))
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200))
    expect(
      await s.store.audit.list({ subject: b.serial, action: 'lineage.generation_current' }),
    ).toHaveLength(1)
  })

  it('renewal re-runs the issuance policy: require_new_key, DNS names, entry enabled', async () => {
    const id = `spiffe://example.org/generations/policy${++n}`
    const entryId = await s.createEntry(id, { dns_names: ['a.example.org'] })
    const a = await s.enroll(id, { entryId })
    expect(expectProblem(await s.renew(a, { sameKey: true }), 400)).toMatch(/require_new_key/)
    const withDns = makeCsr({ san: `URI:${id},DNS:a.example.org` }).csrPem
    expect(
      (await s.call('PATCH', `/v1/entries/${entryId}`, { as: s.admin, json: { dns_names: [] } }))
        .status,
    ).toBe(200)
    expectProblem(await s.call('POST', '/v1/renew', { as: a, json: { csr: withDns } }), 400)
    await s.call('PATCH', `/v1/entries/${entryId}`, { as: s.admin, json: { enabled: false } })
    expectProblem(await s.renew(a), 403)
    expect(await generationStates(s, a.serial)).toEqual({ [a.serial]: 'current' })
  })

  it('a public key certified for one SPIFFE ID is refused for another (enrolment and renewal)', async () => {
    const a = await enroll()
    const other = `spiffe://example.org/generations/other${++n}`
    const entryId = await s.createEntry(other)
    const token = await s.joinToken(entryId)
    const stolen = makeCsr({ keyPem: a.keyPem, san: `URI:${other}` }).csrPem
    const r = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${token}` },
      json: { csr: stolen },
    })
    expect(expectProblem(r, 400)).toMatch(/another SPIFFE ID/)
    const b = await s.enroll(other, { entryId })
    const onto = await s.call('POST', '/v1/renew', {
      as: b,
      json: { csr: makeCsr({ keyPem: a.keyPem }).csrPem },
    })
    expect(expectProblem(onto, 400)).toMatch(/another SPIFFE ID/)
  })

  it('renewal.max_lineage: a lineage older than that renews no more (403), re-enrolment does', async () => {
    const old = await TestServer.start({ renewal: { max_lineage: '1h' } }, { clock })
    try {
      const a = await old.enroll('spiffe://example.org/generations/aged', { ttl: '3h' })
      expect((await old.renew(a)).status).toBe(201)
      clock.offsetMs = 3_601_000
      const r = await old.renew(a)
      expect(expectProblem(r, 403)).toMatch(/max_lineage/)
      expect(r.body.code).toBe('ERR_LINEAGE_TOO_OLD')
    } finally {
      clock.offsetMs = 0
      await old.close()
    }
  })

  it('admin: GET /v1/lineages/{id}, POST /v1/lineages/{id}/revoke with its tokens; 404, 400', async () => {
    const a = await enroll()
    const t = await grant(s, a)
    const id = (await lineageOf(s, a.serial)).id
    const r = await s.call('POST', `/v1/lineages/${id}/revoke`, {
      as: s.admin,
      json: { reason: 'cessationOfOperation' },
    })
    expect(r.status, r.text).toBe(200)
    expect(r.body).toMatchObject({
      id,
      status: 'revoked',
      revocation_reason: 'cessationOfOperation',
    })
    expect(r.body.generations[0]).toMatchObject({
      serial: a.serial,
      generation: 1,
      state: 'revoked',
    })
    expect((await introspect(s, rs, t.refresh_token)).body.active).toBe(false)
    expect((await crlSerials(s)).has(a.serial)).toBe(true)
    expect((await s.call('POST', `/v1/lineages/${id}/revoke`, { as: s.admin })).status).toBe(200)
    expectProblem(await s.call('GET', '/v1/lineages/no-such-lineage', { as: s.admin }), 404)
    expectProblem(await s.call('GET', '/v1/lineages/bad%20id', { as: s.admin }), 400)
    expectProblem(await s.call('GET', `/v1/lineages/${id}`, { as: rs }), 403)
    expectProblem(
      await s.call('POST', `/v1/lineages/${id}/revoke`, {
        as: s.admin,
        json: { reason: 'certificateHold' },
      }),
      400,
    )
  })
})
