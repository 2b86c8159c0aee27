import { createLocalJWKSet, jwtVerify } from 'jose'
import { afterAll, describe, expect, it } from 'vitest'
import { TestServer } from '../helpers/server.js'
import { fetchJwks, grant, introspect, thumbprintOf } from '../helpers/tokens.js'

/**
 * Every tokens.signing_key_type over real HTTPS: the server signs with node:crypto (src/tokens/jws.ts),
 * jose verifies the token against the served JWKS, and introspection (the fast verifier) finds it active.
 */
const TYPES = [
  ['ec-p256', 'ES256'],
  ['ec-p384', 'ES384'],
  ['ed25519', 'EdDSA'],
  ['rsa-2048', 'RS256'],
] as const

describe.each(TYPES)('tokens.signing_key_type %s', (type, alg) => {
  let s: TestServer
  afterAll(() => s?.close())

  it(`issues ${alg} tokens that jose verifies and introspection accepts`, async () => {
    s = await TestServer.start({ tokens: { signing_key_type: type } })
    const cred = await s.enroll('spiffe://example.org/keys/w')
    const { access_token } = await grant(s, cred)
    const { payload, protectedHeader } = await jwtVerify(
      access_token,
      createLocalJWKSet(await fetchJwks(s)),
      { issuer: s.config.tokens.issuer, typ: 'at+jwt', algorithms: [alg] },
    )
    expect(protectedHeader.alg).toBe(alg)
    expect(payload.cnf).toEqual({ 'x5t#S256': thumbprintOf(cred.certPem) })
    const r = await introspect(s, cred, access_token)
    expect(r.status, r.text).toBe(200)
    expect(r.body.active).toBe(true)
    expect(r.body.jti).toBe(payload.jti)
    // One flipped signature bit: the token is unknown to introspection.
    const [h, p, sig] = access_token.split('.') as [string, string, string]
    const bytes = Buffer.from(sig, 'base64url')
    bytes[0]! ^= 1
    const bad = await introspect(s, cred, `${h}.${p}.${bytes.toString('base64url')}`)
    expect(bad.body).toEqual({ active: false })
  })
})
