import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { testApp } from '../helpers/app.js'

/** Route shapes and error bodies through `app.request()`: no TLS, no listener. */
describe('HTTP edge (app.request)', () => {
  let t: Awaited<ReturnType<typeof testApp>>
  beforeAll(async () => {
    t = await testApp()
  })
  afterAll(() => t.close())

  const json = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    t.app.request(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    })

  it('public routes: health, bundle, JWKS and RFC 8414 metadata', async () => {
    expect(await (await t.app.request('/healthz')).json()).toEqual({ status: 'ok' })
    const bundle = await t.app.request('/v1/bundle')
    expect(await bundle.text()).toMatch(/^-----BEGIN CERTIFICATE-----/)
    const jwks = (await (await t.app.request('/.well-known/jwks.json')).json()) as {
      keys: { kid: string; d?: string }[]
    }
    expect(jwks.keys.length).toBe(1)
    expect(jwks.keys[0]).not.toHaveProperty('d')
    const meta = (await (
      await t.app.request('/.well-known/oauth-authorization-server')
    ).json()) as Record<string, unknown>
    expect(meta.tls_client_certificate_bound_access_tokens).toBe(true)
  })

  it('unknown path 404, known path with another method 405 with Allow, both problem+json', async () => {
    const missing = await t.app.request('/v1/nothing')
    expect(missing.status).toBe(404)
    expect(missing.headers.get('content-type')).toBe('application/problem+json')
    const wrong = await t.app.request('/v1/enroll', { method: 'GET' })
    expect(wrong.status).toBe(405)
    expect(wrong.headers.get('allow')).toBe('POST')
    const oauth = await t.app.request('/oauth/token', { method: 'GET' })
    expect([oauth.status, ((await oauth.json()) as { error: string }).error]).toEqual([
      405,
      'invalid_request',
    ])
  })

  it('enrolment: the join token is checked before the body, which is checked before anything else', async () => {
    const noToken = await json('/v1/enroll', { csr: 'x' })
    expect(noToken.status).toBe(401)
    expect(noToken.headers.get('www-authenticate')).toBe('Bearer realm="certbound"')
    const badToken = await json('/v1/enroll', 'not json', { authorization: 'Bearer abc' })
    expect(badToken.status).toBe(401)
    expect(((await badToken.json()) as { code: string }).code).toBe('ERR_JOIN_TOKEN_INVALID')
  })

  it('mTLS routes without a socket certificate refuse: 401 problem+json or invalid_client', async () => {
    const renew = await json('/v1/renew', { csr: 'x' })
    expect(renew.status).toBe(401)
    expect(((await renew.json()) as { code: string }).code).toBe('ERR_CLIENT_CERT_REQUIRED')
    const admin = await t.app.request('/v1/entries')
    expect(admin.status).toBe(401)
    const token = await t.app.request('/oauth/token', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    })
    expect(token.status).toBe(401)
    expect(((await token.json()) as { error: string }).error).toBe('invalid_client')
  })

  it('the CRL is DER from the database, the same bytes until something changes', async () => {
    const a = await t.app.request('/v1/crl')
    expect(a.headers.get('content-type')).toBe('application/pkix-crl')
    const first = new Uint8Array(await a.arrayBuffer())
    expect(first[0]).toBe(0x30)
    const b = new Uint8Array(await (await t.app.request('/v1/crl')).arrayBuffer())
    expect(Buffer.from(b).equals(Buffer.from(first))).toBe(true)
  })
})
