import { createHash, randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Credential } from '../helpers/server.js'
import { TestServer } from '../helpers/server.js'
import {
  expectOAuthError,
  foreignCredential,
  grant,
  introspect,
  oauth,
  refresh,
  revoke,
  thumbprintOf,
  verifyWithServedJwks,
} from '../helpers/tokens.js'

describe('introspection (RFC 7662) and revocation (RFC 7009)', () => {
  let s: TestServer
  let rs: Credential
  let n = 0
  const enroll = async () => {
    const spiffeId = `spiffe://example.org/introspect/w${++n}`
    return { ...(await s.enroll(spiffeId)), spiffeId }
  }
  const active = async (t: string) => (await introspect(s, rs, t)).body.active as boolean

  beforeAll(async () => {
    s = await TestServer.start()
    rs = await s.enroll('spiffe://example.org/resource-server')
  })
  afterAll(() => s.close())

  describe('POST /oauth/introspect', () => {
    it('describes an active access token', async () => {
      const a = await enroll()
      const t = await grant(s, a, { grant_type: 'client_credentials', scope: 'metrics:write' })
      const { payload } = await verifyWithServedJwks(s, t.access_token)
      const r = await introspect(s, rs, t.access_token)
      expect(r.status).toBe(200)
      expect(r.headers['cache-control']).toBe('no-store')
      expect(r.body).toMatchObject({
        active: true,
        token_type: 'Bearer',
        sub: a.spiffeId,
        client_id: a.spiffeId,
        exp: payload.exp,
        iat: payload.iat,
        scope: 'metrics:write',
        cnf: { 'x5t#S256': thumbprintOf(a.certPem) },
      })
    })

    it('describes an active refresh token, and a spent one as inactive', async () => {
      const a = await enroll()
      const t = await grant(s, a, { grant_type: 'client_credentials', scope: 'x' })
      const r = await introspect(s, rs, t.refresh_token)
      expect(r.status).toBe(200)
      expect(r.body).toMatchObject({
        active: true,
        sub: a.spiffeId,
        client_id: a.spiffeId,
        scope: 'x',
        cnf: { 'x5t#S256': thumbprintOf(a.certPem) },
      })
      expect(r.body.exp).toEqual(expect.any(Number))
      expect(r.body.iat).toEqual(expect.any(Number))
      expect(r.body.exp).toBeGreaterThan(r.body.iat)
      expect((await refresh(s, a, t.refresh_token)).status).toBe(200)
      expect((await introspect(s, rs, t.refresh_token)).body).toEqual({ active: false })
    })

    it('says only active:false for garbage, foreign and tampered tokens', async () => {
      const a = await enroll()
      const t = await grant(s, a)
      const [h, p, sig] = t.access_token.split('.') as [string, string, string]
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString())
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'spiffe://example.org/admin' })).toString('base64url')}.${sig}`
      for (const garbage of [
        'garbage',
        'a.b.c',
        tampered,
        t.refresh_token.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')),
        'x'.repeat(59),
      ]) {
        const r = await introspect(s, rs, garbage)
        expect(r.status).toBe(200)
        expect(r.body).toEqual({ active: false })
      }
    })

    it('authenticates an access token by the SHA-256 its row recorded, else by its signature', async () => {
      const sha256 = (t: string) => createHash('sha256').update(t).digest()
      const t = await grant(s, await enroll())
      const [h, p] = t.access_token.split('.') as [string, string, string]
      const { jti } = JSON.parse(Buffer.from(p, 'base64url').toString())
      const row = async () =>
        (await s.query('SELECT token_sha256 FROM access_tokens WHERE jti = ?', jti))[0]
      expect(Buffer.from((await row()).token_sha256).equals(sha256(t.access_token))).toBe(true)
      // A row from before migration 0014, or one recording other bytes: the signature decides.
      await s.execute('UPDATE access_tokens SET token_sha256 = NULL WHERE jti = ?', jti)
      expect(await active(t.access_token)).toBe(true)
      await s.execute('UPDATE access_tokens SET token_sha256 = ? WHERE jti = ?', randomBytes(32), jti)
      expect(await active(t.access_token)).toBe(true)
      const badSignature = `${h}.${p}.${Buffer.alloc(64, 7).toString('base64url')}`
      expect(await active(badSignature)).toBe(false)
      // When the row says these are the bytes issued, the digest decides, not a second check.
      await s.execute('UPDATE access_tokens SET token_sha256 = ? WHERE jti = ?', sha256(badSignature), jti)
      expect(await active(badSignature)).toBe(true)
      expect(await active(t.access_token)).toBe(true)
    })

    it('requires a token parameter and a client certificate of this CA', async () => {
      expectOAuthError(await oauth(s, '/oauth/introspect', rs, {}), 400, 'invalid_request')
      const t = await grant(s, await enroll())
      expectOAuthError(await introspect(s, undefined, t.access_token), 401, 'invalid_client')
      expectOAuthError(
        await introspect(
          s,
          foreignCredential('spiffe://example.org/resource-server'),
          t.access_token,
        ),
        401,
        'invalid_client',
      )
    })
  })

  describe('POST /oauth/revoke', () => {
    it("revokes the client's own access token, and only that one", async () => {
      const a = await enroll()
      const t = await grant(s, a)
      const r = await revoke(s, a, t.access_token)
      expect(r.status, r.text).toBe(200)
      expect(await active(t.access_token)).toBe(false)
      // Revoking an access token leaves its family alone.
      expect(await active(t.refresh_token)).toBe(true)
      const next = await refresh(s, a, t.refresh_token)
      expect(next.status).toBe(200)
      expect(await active(next.body.access_token)).toBe(true)
      // Again: still 200 (RFC 7009 §2.2).
      expect((await revoke(s, a, t.access_token)).status).toBe(200)
    })

    it("revokes the client's own refresh token with its whole family and the family's access tokens", async () => {
      const a = await enroll()
      const t1 = await grant(s, a)
      const t2 = await refresh(s, a, t1.refresh_token)
      expect(t2.status).toBe(200)
      const r = await oauth(s, '/oauth/revoke', a, {
        token: t2.body.refresh_token,
        token_type_hint: 'refresh_token',
      })
      expect(r.status, r.text).toBe(200)
      expect(await active(t2.body.refresh_token)).toBe(false)
      expect(await active(t2.body.access_token)).toBe(false)
      expect(await active(t1.access_token)).toBe(false)
      expectOAuthError(await refresh(s, a, t2.body.refresh_token), 400, 'invalid_grant')
    })

    it('answers 200 for unknown tokens (RFC 7009 §2.2)', async () => {
      const a = await enroll()
      for (const unknown of ['unknown', 'AAAAAAAAAAAAAAAA' + 'B'.repeat(43), 'a.b.c']) {
        const r = await revoke(s, a, unknown)
        expect(r.status, r.text).toBe(200)
      }
      expectOAuthError(await oauth(s, '/oauth/revoke', a, {}), 400, 'invalid_request')
    })

    it("refuses another client's token with invalid_request and leaves it alone", async () => {
      const owner = await enroll()
      const other = await enroll()
      const t = await grant(s, owner)
      expectOAuthError(await revoke(s, other, t.access_token), 400, 'invalid_request')
      expectOAuthError(await revoke(s, other, t.refresh_token), 400, 'invalid_request')
      expect(await active(t.access_token)).toBe(true)
      expect(await active(t.refresh_token)).toBe(true)
      expect((await refresh(s, owner, t.refresh_token)).status).toBe(200)
    })

    it('requires a client certificate (no bearer fallback)', async () => {
      const a = await enroll()
      const t = await grant(s, a)
      expectOAuthError(
        await oauth(
          s,
          '/oauth/revoke',
          undefined,
          { token: t.refresh_token },
          { authorization: `Bearer ${t.access_token}` },
        ),
        401,
        'invalid_client',
      )
      expect(await active(t.refresh_token)).toBe(true)
    })
  })
})

describe('tokens.introspection_clients restricts who may introspect', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start({
      tokens: { introspection_clients: ['spiffe://example.org/rs/allowed'] },
    })
  })
  afterAll(() => s.close())

  it('a listed SPIFFE ID gets 200, any other valid certificate 403, no certificate 401', async () => {
    const [allowed, workload] = await Promise.all([
      s.enroll('spiffe://example.org/rs/allowed'),
      s.enroll('spiffe://example.org/rs/not-listed'),
    ])
    const t = await grant(s, workload)
    const ok = await introspect(s, allowed, t.access_token)
    expect(ok.status, ok.text).toBe(200)
    expect(ok.body.active).toBe(true)
    const denied = await introspect(s, workload, t.access_token)
    expect(denied.status).toBe(403)
    expect(denied.body.active).toBeUndefined()
    expect(denied.body.error).toBe('unauthorized_client')
    expectOAuthError(await introspect(s, undefined, t.access_token), 401, 'invalid_client')
  })
})
