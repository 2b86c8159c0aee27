import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestServer } from '../helpers/server.js'
import { grant, introspect, refresh, revoke } from '../helpers/tokens.js'

describe('revocation by the certificate lineage, not just the SPIFFE ID', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('another enrolment of the same SPIFFE ID cannot revoke a stolen token (invariant 4)', async () => {
    const id = 'spiffe://example.org/lineage/revoke'
    const owner = await s.enroll(id)
    const thief = await s.enroll(id, { entryId: owner.entryId })
    const t = await grant(s, owner)
    for (const token of [t.access_token, t.refresh_token]) {
      const r = await revoke(s, thief, token)
      expect(r.status).toBe(400)
      expect(r.body.error).toBe('invalid_request')
      expect((await introspect(s, owner, token)).body.active).toBe(true)
    }
    // A renewed certificate of the owner's lineage may revoke it.
    const renewed = (await s.renew(owner)).credential!
    expect((await revoke(s, renewed, t.refresh_token)).status).toBe(200)
    expect((await introspect(s, renewed, t.refresh_token)).body.active).toBe(false)
    expect((await refresh(s, renewed, t.refresh_token)).status).toBe(400)
  })
})

describe('purging expired token rows', () => {
  it('forgets access and refresh tokens past their expiry, keeps live ones', async () => {
    const s = await TestServer.start()
    try {
      const a = await s.enroll('spiffe://example.org/purge')
      const t = await grant(s, a)
      const far = Date.now() + 48 * 3_600_000
      expect(await s.store.tokens.purgeExpired(Date.now())).toEqual({
        accessTokens: 0,
        refreshTokens: 0,
        complete: true,
      })
      expect((await introspect(s, a, t.access_token)).body.active).toBe(true)
      expect(await s.store.tokens.purgeExpired(far)).toEqual({
        accessTokens: 1,
        refreshTokens: 1,
        complete: true,
      })
      expect((await introspect(s, a, t.refresh_token)).body.active).toBe(false)
    } finally {
      await s.close()
    }
  })
})
