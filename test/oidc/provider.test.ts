import { writeFileSync } from 'node:fs'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempFiles } from '../helpers/ca.js'
import { OidcProviderIssuer } from '../helpers/oidc/provider.js'
import { AUDIENCE, enrollWithOidc } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

/**
 * node-oidc-provider as a real issuer of signed JWTs with discovery and a JWKS: certbound enrols
 * with its tokens, and refuses them with a wrong audience, after expiry, replayed, with a claim
 * that does not match; after the provider rotated its key, the unknown kid refetches the JWKS.
 */
describe('OIDC enrolment with node-oidc-provider as the issuer', () => {
  let s: TestServer
  let op: OidcProviderIssuer
  let offsetMs = 0
  const clock = { now: () => new Date(Date.now() + offsetMs) }
  let n = 0
  const id = () => `spiffe://example.org/op/${++n}`

  beforeAll(async () => {
    op = await OidcProviderIssuer.start(AUDIENCE, {
      'ci-api': { repository: 'acme/api' },
      'ci-web': { repository: 'acme/web' },
    })
    const { ca } = tempFiles({ ca: op.tls.caPem })
    writeFileSync(ca!, op.tls.caPem)
    s = await TestServer.start(
      {
        federation: {
          oidc_issuers: [{ name: 'op', issuer: op.url, audience: AUDIENCE, ca_bundle: ca }],
        },
      },
      { clock },
    )
  })
  afterAll(async () => {
    await s?.close()
    await op?.close()
  })

  async function entry(claims: Record<string, string> = { repository: 'acme/api' }) {
    const spiffeId = id()
    await s.createEntry(spiffeId, { oidc: { issuer: 'op', claims } })
    return spiffeId
  }

  it("enrols with the provider's token (its own kid and claims); the same token again is a replay", async () => {
    const spiffeId = await entry({ repository: 'acme/api', client_id: 'ci-*' })
    const token = await op.token('ci-api')
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', kid: op.kid, typ: 'at+jwt' })
    expect(decodeJwt(token)).toMatchObject({ iss: op.url, aud: AUDIENCE, sub: 'ci-api' })
    const r = await enrollWithOidc(s, token, spiffeId)
    expect(r.status, r.text).toBe(201)
    const again = await enrollWithOidc(s, token, spiffeId)
    expect([again.status, again.body.check]).toEqual([401, 'replay'])
    expect(again.text).not.toContain(token)
  })

  it('refuses a token for another audience', async () => {
    const spiffeId = await entry()
    const r = await enrollWithOidc(
      s,
      await op.token('ci-api', 'https://other.example.org'),
      spiffeId,
    )
    expect([r.status, r.body.check]).toEqual([401, 'aud'])
  })

  it('refuses a token with a claim that does not match', async () => {
    const spiffeId = await entry()
    const r = await enrollWithOidc(s, await op.token('ci-web'), spiffeId)
    expect([r.status, r.body.check]).toEqual([401, 'claims'])
    expect(r.body.detail).toMatch(/"repository"/)
  })

  it('refuses a token after its expiry (the CA clock moved past exp)', async () => {
    const spiffeId = await entry()
    const token = await op.token('ci-api')
    offsetMs = 301_000 + 60_000 // exp (300 s) plus the clock tolerance
    try {
      const r = await enrollWithOidc(s, token, spiffeId)
      expect([r.status, r.body.check]).toEqual([401, 'exp'])
    } finally {
      offsetMs = 0
    }
    expect((await enrollWithOidc(s, token, spiffeId)).status).toBe(201) // it was not consumed
  })

  it('after the provider rotated its key, the unknown kid refetches the JWKS and enrols', async () => {
    const spiffeId = await entry()
    const before = op.kid
    expect((await enrollWithOidc(s, await op.token('ci-api'), spiffeId)).status).toBe(201)
    const kid = op.rotate()
    expect(kid).not.toBe(before)
    const token = await op.token('ci-api')
    expect(decodeProtectedHeader(token).kid).toBe(kid)
    const r = await enrollWithOidc(s, token, spiffeId)
    expect(r.status, r.text).toBe(201)
  })
})
