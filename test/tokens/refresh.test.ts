import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Credential } from '../helpers/server.js'
import { TestServer } from '../helpers/server.js'
import {
  auditEvents,
  expectOAuthError,
  grant,
  introspect,
  refresh,
  revokeCertificate,
  thumbprintOf,
  token,
  verifyWithServedJwks,
} from '../helpers/tokens.js'

describe('refresh_token grant: rotation, lineage and reuse detection (LIFECYCLE "refresh")', () => {
  let s: TestServer
  let rs: Credential // a resource server that introspects
  let n = 0
  const enroll = (name = `w${++n}`, ttl?: string) =>
    s.enroll(`spiffe://example.org/refresh/${name}`, ttl ? { ttl } : {})
  const active = async (t: string) => (await introspect(s, rs, t)).body.active as boolean
  const theftEvents = async () =>
    (await auditEvents(s, 'token.family.reuse_detected')).filter(
      (e) => e.details?.suspected_theft === true,
    )

  beforeAll(async () => {
    s = await TestServer.start()
    rs = await s.enroll('spiffe://example.org/resource-server')
  })
  afterAll(() => s.close())

  it('refreshes with the bound certificate: new tokens, old refresh token spent', async () => {
    const a = await enroll()
    const t1 = await grant(s, a, { grant_type: 'client_credentials', scope: 'read write' })
    const r = await refresh(s, a, t1.refresh_token)
    expect(r.status, r.text).toBe(200)
    expect(r.headers['cache-control']).toBe('no-store')
    expect(r.body.token_type).toBe('Bearer')
    expect(r.body.refresh_token).not.toBe(t1.refresh_token)
    expect(r.body.access_token).not.toBe(t1.access_token)
    const { payload } = await verifyWithServedJwks(s, r.body.access_token)
    expect(payload.cnf['x5t#S256']).toBe(thumbprintOf(a.certPem))
    expect(payload.scope).toBe('read write')
    expect(r.body.expires_in).toBe(payload.exp! - payload.iat!)
    expect(await active(t1.refresh_token)).toBe(false)
    expect(await active(r.body.refresh_token)).toBe(true)
    // The first access token stays valid (it is bound to a valid certificate) until it expires.
    expect(await active(t1.access_token)).toBe(true)
  })

  it('may narrow the family scope but never widen it', async () => {
    const a = await enroll()
    const t = await grant(s, a, { grant_type: 'client_credentials', scope: 'read write' })
    const narrowed = await token(s, a, {
      grant_type: 'refresh_token',
      refresh_token: t.refresh_token,
      scope: 'read',
    })
    expect(narrowed.status, narrowed.text).toBe(200)
    expect((await verifyWithServedJwks(s, narrowed.body.access_token)).payload.scope).toBe('read')
    const wider = await token(s, a, {
      grant_type: 'refresh_token',
      refresh_token: narrowed.body.refresh_token,
      scope: 'read admin',
    })
    expectOAuthError(wider, 400, 'invalid_scope')
  })

  describe('refused', () => {
    it('without a client certificate (401 invalid_client), killing nothing', async () => {
      const a = await enroll()
      const t = await grant(s, a)
      expectOAuthError(await refresh(s, undefined, t.refresh_token), 401, 'invalid_client')
      expect(await active(t.refresh_token)).toBe(true)
      expect((await refresh(s, a, t.refresh_token)).status).toBe(200)
    })

    it('with a revoked certificate, even on a keep-alive connection that was authorised before', async () => {
      const a = await enroll()
      const agent = s.agent(a)
      const t = await grant(s, agent)
      await revokeCertificate(s, a.serial, 'superseded')
      expectOAuthError(await refresh(s, agent, t.refresh_token), 401, 'invalid_client')
      expectOAuthError(await token(s, agent), 401, 'invalid_client')
      expect(await active(t.refresh_token)).toBe(false)
      expect(await active(t.access_token)).toBe(false)
    })

    it('with a certificate of another SPIFFE ID (invalid_grant), and the family survives', async () => {
      const a = await enroll()
      const other = await enroll()
      const t = await grant(s, a)
      expectOAuthError(await refresh(s, other, t.refresh_token), 400, 'invalid_grant')
      expect(await active(t.refresh_token)).toBe(true)
      expect((await refresh(s, a, t.refresh_token)).status).toBe(200)
    })

    it('with an unknown, truncated or garbage refresh token (invalid_grant)', async () => {
      const a = await enroll()
      const t = await grant(s, a)
      const flipped = t.refresh_token.slice(0, -1) + (t.refresh_token.endsWith('A') ? 'B' : 'A')
      for (const bad of [flipped, t.refresh_token.slice(0, -2), 'x', t.access_token]) {
        expectOAuthError(await refresh(s, a, bad), 400, 'invalid_grant')
      }
      // A forged token with the right lookup id kills nothing either.
      expect(await active(t.refresh_token)).toBe(true)
    })
  })

  describe('renewal and lineage', () => {
    it('after a renewal the new certificate refreshes, the family is re-bound, and the ancestor is refused', async () => {
      const a = await enroll()
      const t1 = await grant(s, a)
      const b = (await s.renew(a)).credential!
      const r = await refresh(s, b, t1.refresh_token)
      expect(r.status, r.text).toBe(200)
      const { payload } = await verifyWithServedJwks(s, r.body.access_token)
      expect(payload.cnf['x5t#S256']).toBe(thumbprintOf(b.certPem))
      expect(payload.cnf['x5t#S256']).not.toBe(thumbprintOf(a.certPem))
      const i = await introspect(s, rs, r.body.refresh_token)
      expect(i.body.cnf).toEqual({ 'x5t#S256': thumbprintOf(b.certPem) })
      // The old certificate is still valid, but retired by b's first use (CONTRACT "Lineages"):
      // refused on every mTLS route; within renewal.clone_grace that revokes nothing.
      expectOAuthError(await refresh(s, a, r.body.refresh_token), 401, 'invalid_client')
      expect(await active(r.body.refresh_token)).toBe(true)
      expect((await refresh(s, b, r.body.refresh_token)).status).toBe(200)
    })

    it('a descendant through several renewals may refresh; a sibling branch may not', async () => {
      const a = await enroll()
      const t = await grant(s, a)
      const b1 = (await s.renew(a)).credential!
      const c1 = (await s.renew(b1)).credential! // b1's first use: a retired
      const r1 = await refresh(s, c1, t.refresh_token) // grandchild of the bound certificate
      expect(r1.status, r1.text).toBe(200)
      expect((await verifyWithServedJwks(s, r1.body.access_token)).payload.cnf['x5t#S256']).toBe(
        thumbprintOf(c1.certPem),
      )
      // Now bound to c1: b1 and a are ancestors (retired generations, refused within the grace).
      for (const cred of [b1, a])
        expectOAuthError(await refresh(s, cred, r1.body.refresh_token), 401, 'invalid_client')
      const r2 = await refresh(s, c1, r1.body.refresh_token)
      expect(r2.status).toBe(200)
      // A sibling branch: d1 and d2 both renewed from c1; d2 replaced d1, never used. Using d1
      // is a second holder of the lineage: refused, and the lineage contained with the family.
      const d1 = (await s.renew(c1)).credential!
      const d2 = (await s.renew(c1)).credential!
      expectOAuthError(await refresh(s, d1, r2.body.refresh_token), 401, 'invalid_client')
      expect(await active(r2.body.refresh_token)).toBe(false)
      expectOAuthError(await refresh(s, d2, r2.body.refresh_token), 401, 'invalid_client')
    })

    it("a second enrolment of the same SPIFFE ID (another key history) cannot refresh the first one's family", async () => {
      const a = await enroll()
      const a2 = await s.enroll(`spiffe://example.org/refresh/w${n}`, { entryId: a.entryId })
      expect(a2.serial).not.toBe(a.serial)
      const t = await grant(s, a)
      expectOAuthError(await refresh(s, a2, t.refresh_token), 400, 'invalid_grant')
      expect(await active(t.refresh_token)).toBe(true)
      // It has its own families, which the first enrolment cannot refresh either.
      const t2 = await grant(s, a2)
      expectOAuthError(await refresh(s, a, t2.refresh_token), 400, 'invalid_grant')
      expect((await refresh(s, a, t.refresh_token)).status).toBe(200)
      expect((await refresh(s, a2, t2.refresh_token)).status).toBe(200)
    })
  })

  describe('reuse detection (LIFECYCLE invariant 4)', () => {
    it('a rotated refresh token presented again kills the family, newest token and access tokens included', async () => {
      const a = await enroll()
      const t1 = await grant(s, a)
      const r2 = await refresh(s, a, t1.refresh_token)
      expect(r2.status).toBe(200)
      const theftBefore = (await theftEvents()).length
      expectOAuthError(await refresh(s, a, t1.refresh_token), 400, 'invalid_grant')
      // The legitimate newest token dies with the family.
      expectOAuthError(await refresh(s, a, r2.body.refresh_token), 400, 'invalid_grant')
      expect(await active(r2.body.refresh_token)).toBe(false)
      expect(await active(t1.access_token)).toBe(false)
      expect(await active(r2.body.access_token)).toBe(false)
      const theft = await theftEvents()
      expect(theft.length).toBe(theftBefore + 1)
      expect(theft.at(-1)!.subject).toBe(`spiffe://example.org/refresh/w${n}`)
      // The client's way out is a fresh client_credentials grant.
      expect((await token(s, a)).status).toBe(200)
    })

    it('a stolen refresh token presented with a certificate outside the lineage is refused without killing the family', async () => {
      const a = await enroll()
      const thief = await s.enroll(`spiffe://example.org/refresh/w${n}`, { entryId: a.entryId })
      const t1 = await grant(s, a)
      const r2 = await refresh(s, a, t1.refresh_token)
      expect(r2.status).toBe(200)
      const theftBefore = (await theftEvents()).length
      // The spent token and the current one, both with the wrong key history.
      expectOAuthError(await refresh(s, thief, t1.refresh_token), 400, 'invalid_grant')
      expectOAuthError(await refresh(s, thief, r2.body.refresh_token), 400, 'invalid_grant')
      expect((await theftEvents()).length).toBe(theftBefore)
      expect(await active(r2.body.refresh_token)).toBe(true)
      expect(await active(r2.body.access_token)).toBe(true)
      const r3 = await refresh(s, a, r2.body.refresh_token)
      expect(r3.status, r3.text).toBe(200)
    })

    it('20 concurrent refreshes with one token: exactly one wins, then the family is dead', async () => {
      const a = await enroll()
      const t = await grant(s, a)
      const agents = Array.from({ length: 20 }, () => s.agent(a))
      // Handshakes first, so that the 20 refreshes arrive together and really race.
      await Promise.all(agents.map((ag) => s.call('GET', '/healthz', { agent: ag })))
      const results = await Promise.all(agents.map((ag) => refresh(s, ag, t.refresh_token)))
      const ok = results.filter((r) => r.status === 200)
      expect(ok).toHaveLength(1)
      for (const r of results.filter((x) => x.status !== 200))
        expectOAuthError(r, 400, 'invalid_grant')
      const winner = ok[0]!.body
      expectOAuthError(await refresh(s, a, winner.refresh_token), 400, 'invalid_grant')
      expect(await active(winner.refresh_token)).toBe(false)
      expect(await active(winner.access_token)).toBe(false)
    })
  })

  it('audits issuance, refresh and every refusal of an authenticated client with its reason', async () => {
    const a = await enroll()
    const stranger = await enroll()
    const t = await grant(s, a)
    const r = await refresh(s, a, t.refresh_token)
    expect(r.status).toBe(200)
    expectOAuthError(await refresh(s, stranger, r.body.refresh_token), 400, 'invalid_grant')
    expectOAuthError(
      await token(s, a, {
        grant_type: 'client_credentials',
        client_id: 'spiffe://example.org/nope',
      }),
      401,
      'invalid_client',
    )
    expectOAuthError(await token(s, a, { grant_type: 'password' }), 400, 'unsupported_grant_type')
    const serial = (e: { details?: Record<string, unknown> | null }) => e.details?.cert_serial
    expect((await auditEvents(s, 'token.issue')).some((e) => serial(e) === a.serial)).toBe(true)
    expect((await auditEvents(s, 'token.refresh')).some((e) => serial(e) === a.serial)).toBe(true)
    const refused = await auditEvents(s, 'token.refresh_refused')
    expect(
      refused.some(
        (e) => serial(e) === stranger.serial && e.details?.reason === 'certificate_outside_lineage',
      ),
    ).toBe(true)
    const tokenRefused = (await auditEvents(s, 'token.refused'))
      .filter((e) => serial(e) === a.serial)
      .map((e) => e.details?.reason)
    expect(tokenRefused).toEqual(
      expect.arrayContaining(['ERR_INVALID_CLIENT', 'ERR_UNSUPPORTED_GRANT_TYPE']),
    )
  })

  it('disabling the entry ends its families and refuses every grant; other entries are untouched', async () => {
    const a = await enroll()
    const bystander = await enroll()
    const t = await grant(s, a)
    const r2 = await refresh(s, a, t.refresh_token)
    expect(r2.status).toBe(200)
    const other = await grant(s, bystander)
    const p = await s.call('PATCH', `/v1/entries/${a.entryId}`, {
      as: s.admin,
      json: { enabled: false },
    })
    expect(p.status, p.text).toBe(200)
    expect(await active(r2.body.refresh_token)).toBe(false)
    expect(await active(r2.body.access_token)).toBe(false)
    expect(await active(t.access_token)).toBe(false)
    expectOAuthError(await refresh(s, a, r2.body.refresh_token), 401, 'invalid_client')
    expectOAuthError(await token(s, a), 401, 'invalid_client')
    expect(await active(other.refresh_token)).toBe(true)
    expect(await active(other.access_token)).toBe(true)
    // Enabling the entry again does not resurrect the dead family.
    expect(
      (await s.call('PATCH', `/v1/entries/${a.entryId}`, { as: s.admin, json: { enabled: true } }))
        .status,
    ).toBe(200)
    expectOAuthError(await refresh(s, a, r2.body.refresh_token), 400, 'invalid_grant')
    expect(await active(r2.body.access_token)).toBe(false)
    expect((await token(s, a)).status).toBe(200)
  })

  it('no family outlives a concurrent disable: grants racing the PATCH either fail or die with the entry', async () => {
    const a = await enroll()
    const agents = Array.from({ length: 10 }, () => s.agent(a))
    const admin = s.agent(s.admin)
    await Promise.all([...agents, admin].map((ag) => s.call('GET', '/healthz', { agent: ag })))
    const seed = await grant(s, a)
    const grants = Array.from({ length: 60 }, (_, i) => token(s, agents[i % agents.length]!))
    const refreshes = [refresh(s, agents[0]!, seed.refresh_token)]
    const disable = s.call('PATCH', `/v1/entries/${a.entryId}`, {
      agent: admin,
      json: { enabled: false },
    })
    const results = await Promise.all([...grants, ...refreshes])
    expect((await disable).status).toBe(200)
    const issued = results.filter((r) => r.status === 200)
    for (const r of results.filter((x) => x.status !== 200))
      expect(r.body.error).toMatch(/^invalid_(client|grant)$/)
    for (const r of issued) {
      expect(await active(r.body.refresh_token)).toBe(false)
      expect(await active(r.body.access_token)).toBe(false)
    }
  })
})
