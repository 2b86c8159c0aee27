import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { expectOAuthError, grant, introspect, token } from './helpers.js'

describe('who may be an OAuth client', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('the admin credential is not an OAuth client (no entry can stop it)', async () => {
    expectOAuthError(await token(s, s.admin), 401, 'invalid_client')
  })

  it("the server's own TLS certificate is not a client credential anywhere", async () => {
    const server = {
      certPem: readFileSync(join(s.dataDir, 'server/tls.pem'), 'utf8'),
      keyPem: readFileSync(join(s.dataDir, 'server/tls-key.pem'), 'utf8'),
    }
    const a = await s.enroll('spiffe://example.org/kinds/a')
    const t = await grant(s, a)
    expect((await token(s, server)).status).toBe(401)
    expect((await introspect(s, server, t.access_token)).status).toBe(401)
  })

  it('a workload of a disabled entry may not introspect', async () => {
    const rs = await s.enroll('spiffe://example.org/kinds/rs')
    const a = await s.enroll('spiffe://example.org/kinds/b')
    const t = await grant(s, a)
    expect((await introspect(s, rs, t.access_token)).body.active).toBe(true)
    await s.call('PATCH', `/v1/entries/${rs.entryId}`, { as: s.admin, json: { enabled: false } })
    expect((await introspect(s, rs, t.access_token)).status).toBe(401)
  })

  it('an RSA key with a tiny public exponent is refused (proof of possession could be forged)', async () => {
    const entryId = await s.createEntry('spiffe://example.org/kinds/rsa3')
    const joinToken = await s.joinToken(entryId)
    const { csrPem } = makeCsr({ san: 'URI:spiffe://example.org/kinds/rsa3', key: 'rsa-2048' })
    const { csrPem: weak } = makeCsrWithExponent(3)
    const r = await s.call('POST', '/v1/enroll', { headers: { authorization: `Bearer ${joinToken}` }, json: { csr: weak } })
    expect(r.status).toBe(400)
    expect(r.body.detail).toMatch(/exponent/)
    // The refusal spent nothing: a proper key enrols with the same token.
    const ok = await s.call('POST', '/v1/enroll', { headers: { authorization: `Bearer ${joinToken}` }, json: { csr: csrPem } })
    expect(ok.status).toBe(201)
  })
})

function makeCsrWithExponent(e: number): { csrPem: string } {
  const key = execFileSync('openssl', ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-pkeyopt', `rsa_keygen_pubexp:${e}`], { encoding: 'utf8' })
  return makeCsr({ keyPem: key, san: 'URI:spiffe://example.org/kinds/rsa3' })
}
