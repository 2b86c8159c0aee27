import { execFileSync } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { expectOAuthError, grant, introspect, refresh, token } from './helpers.js'

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
    const server = await s.serverCredential()
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
    const r = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${joinToken}` },
      json: { csr: weak },
    })
    expect(r.status).toBe(400)
    expect(r.body.detail).toMatch(/exponent/)
    // The refusal spent nothing: a proper key enrols with the same token.
    const ok = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${joinToken}` },
      json: { csr: csrPem },
    })
    expect(ok.status).toBe(201)
  })
})

function makeCsrWithExponent(e: number): { csrPem: string } {
  const key = execFileSync(
    'openssl',
    [
      'genpkey',
      '-algorithm',
      'RSA',
      '-pkeyopt',
      'rsa_keygen_bits:2048',
      '-pkeyopt',
      `rsa_keygen_pubexp:${e}`,
    ],
    { encoding: 'utf8' },
  )
  return makeCsr({ keyPem: key, san: 'URI:spiffe://example.org/kinds/rsa3' })
}

describe('entries may pin the scopes their workloads are granted', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('grants only pinned scopes, on client_credentials and on refresh', async () => {
    const entryId = await s.createEntry('spiffe://example.org/scoped', {
      scopes: ['read', 'deploy'],
    })
    const a = await s.enroll('spiffe://example.org/scoped', { entryId })
    expectOAuthError(
      await token(s, a, { grant_type: 'client_credentials', scope: 'admin' }),
      400,
      'invalid_scope',
    )
    const t = await grant(s, a, { grant_type: 'client_credentials', scope: 'read deploy' })
    const entry = await s.call('PATCH', `/v1/entries/${entryId}`, {
      as: s.admin,
      json: { scopes: ['read'] },
    })
    expect(entry.body.scopes).toEqual(['read'])
    // The family still holds "read deploy", but the entry no longer allows deploy.
    expectOAuthError(await refresh(s, a, t.refresh_token), 400, 'invalid_scope')
  })

  it('an entry without pinned scopes grants any well-formed scope; bad scopes lists are 400', async () => {
    const a = await s.enroll('spiffe://example.org/unscoped')
    expect(
      (await token(s, a, { grant_type: 'client_credentials', scope: 'anything' })).status,
    ).toBe(200)
    const r = await s.call('POST', '/v1/entries', {
      as: s.admin,
      json: { spiffe_id: 'spiffe://example.org/bad-scopes', scopes: ['a b'] },
    })
    expect(r.status).toBe(400)
  })
})

describe('keyCompromise reaches the renewals of the compromised certificate', () => {
  it('revokes certificates renewed from it (a thief may have renewed) and kills their tokens', async () => {
    const s = await TestServer.start()
    try {
      const c1 = await s.enroll('spiffe://example.org/stolen')
      const c2 = (await s.renew(c1)).credential!
      const c3 = (await s.renew(c2)).credential!
      const t = await grant(s, c3)
      const r = await s.call('POST', `/v1/certificates/${c1.serial}/revoke`, {
        as: s.admin,
        json: { reason: 'keyCompromise' },
      })
      expect(r.status).toBe(200)
      for (const c of [c1, c2, c3]) {
        expect(
          (await s.call('GET', `/v1/certificates/${c.serial}`, { as: s.admin })).body.status,
        ).toBe('revoked')
      }
      expect((await token(s, c3)).status).toBe(401)
      const other = await s.enroll('spiffe://example.org/bystander')
      expect((await introspect(s, other, t.access_token)).body.active).toBe(false)
    } finally {
      await s.close()
    }
  })
})
