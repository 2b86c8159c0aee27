import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Credential } from '../helpers/server.js'
import { TestServer, sleep } from '../helpers/server.js'
import {
  expectOAuthError,
  grant,
  introspect,
  notAfterSeconds,
  refresh,
  thumbprintOf,
  token,
  verifyWithServedJwks,
} from '../helpers/tokens.js'

/** Sleeps until `certPem` has expired by real (OpenSSL) time, plus a margin. */
async function waitPastNotAfter(certPem: string): Promise<void> {
  const ms = notAfterSeconds(certPem) * 1000 + 1200 - Date.now()
  if (ms > 0) await sleep(ms)
}

// Real short-lived certificates and real waits: a fixed clock cannot move OpenSSL's clock.
describe('token lifetime follows the certificate (LIFECYCLE invariant 2)', () => {
  let s: TestServer
  let rs: Credential
  let n = 0
  const enroll = (ttl: string) => s.enroll(`spiffe://example.org/expiry/w${++n}`, { ttl })
  const active = async (t: string) => (await introspect(s, rs, t)).body.active as boolean

  beforeAll(async () => {
    s = await TestServer.start()
    rs = await s.enroll('spiffe://example.org/resource-server')
  })
  afterAll(() => s.close())

  it.concurrent(
    'an expired certificate can neither refresh nor get a token (401 invalid_client)',
    async () => {
      const a = await enroll('3s')
      const agent = s.agent(a)
      const t = await grant(s, agent)
      const { payload } = await verifyWithServedJwks(s, t.access_token)
      expect(payload.exp).toBeLessThanOrEqual(notAfterSeconds(a.certPem))
      await waitPastNotAfter(a.certPem)
      // Same keep-alive connection: authorised at the handshake, expired now.
      expectOAuthError(await refresh(s, agent, t.refresh_token), 401, 'invalid_client')
      expectOAuthError(await token(s, agent), 401, 'invalid_client')
      // A fresh handshake with the expired certificate fails the same way.
      expectOAuthError(await refresh(s, a, t.refresh_token), 401, 'invalid_client')
      expect(await active(t.access_token)).toBe(false)
      expect(await active(t.refresh_token)).toBe(false)
    },
  )

  it.concurrent(
    'a refresh token dies with its bound certificate, even for a renewed certificate of the same lineage',
    async () => {
      const a = await enroll('4s')
      const t = await grant(s, a)
      await sleep(1000)
      const b = (await s.renew(a)).credential! // renewed, but the family is never re-bound to it
      expect(await active(t.refresh_token)).toBe(true)
      await waitPastNotAfter(a.certPem)
      expect(await active(t.refresh_token)).toBe(false)
      expectOAuthError(await refresh(s, b, t.refresh_token), 400, 'invalid_grant')
      // b itself is fine: it gets a new family.
      expect((await token(s, b)).status).toBe(200)
    },
  )

  it.concurrent(
    'refreshing with the renewed certificate first carries the family past the old notAfter',
    async () => {
      const a = await enroll('4s')
      const t = await grant(s, a)
      await sleep(1000)
      const b = (await s.renew(a)).credential!
      const r1 = await refresh(s, b, t.refresh_token)
      expect(r1.status, r1.text).toBe(200)
      await waitPastNotAfter(a.certPem)
      expect(await active(t.access_token)).toBe(false) // bound to the expired certificate
      expect(await active(r1.body.access_token)).toBe(true) // bound to b
      expect(await active(r1.body.refresh_token)).toBe(true)
      const r2 = await refresh(s, b, r1.body.refresh_token)
      expect(r2.status, r2.text).toBe(200)
      const { payload } = await verifyWithServedJwks(s, r2.body.access_token)
      expect(payload.cnf['x5t#S256']).toBe(thumbprintOf(b.certPem))
      expect(payload.exp).toBeGreaterThan(notAfterSeconds(a.certPem))
    },
  )
})

describe('tokens.refresh_token_ttl bounds a refresh token when the certificate lives longer', () => {
  let offsetMs = 0
  const clock = { now: () => new Date(Date.now() + offsetMs) }
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start({ tokens: { refresh_token_ttl: '10m' } }, { clock })
  })
  afterAll(() => s.close())

  it('expires at issue + refresh_token_ttl, and each rotation starts a new period', async () => {
    // The clock moves by minutes only: the one-hour certificate stays valid for TLS and for the server.
    const a = await s.enroll('spiffe://example.org/expiry/ttl')
    const t = await grant(s, a)
    const i = await introspect(s, a, t.refresh_token)
    expect(i.body.exp - i.body.iat).toBe(600)
    offsetMs = 9 * 60_000
    const r = await refresh(s, a, t.refresh_token)
    expect(r.status, r.text).toBe(200)
    offsetMs = 11 * 60_000 // past the first token's period, inside the second's
    expect((await introspect(s, a, r.body.refresh_token)).body.active).toBe(true)
    offsetMs = 19 * 60_000 + 1_000 // past the second one's
    expect((await introspect(s, a, r.body.refresh_token)).body.active).toBe(false)
    expectOAuthError(await refresh(s, a, r.body.refresh_token), 400, 'invalid_grant')
    const fresh = await grant(s, a)
    expect((await refresh(s, a, fresh.refresh_token)).status).toBe(200)
  })
})
