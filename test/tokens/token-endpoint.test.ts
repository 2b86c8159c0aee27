import { createHash, X509Certificate } from 'node:crypto'
import pino from 'pino'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Credential } from '../helpers/server.js'
import { TestServer } from '../helpers/server.js'
import {
  expectOAuthError,
  foreignCredential,
  grant,
  introspect,
  notAfterSeconds,
  oauth,
  refresh,
  revoke,
  thumbprintOf,
  token,
  verifyWithServedJwks,
} from '../helpers/tokens.js'

const ID = 'spiffe://example.org/ci/runner'

describe('POST /oauth/token: client_credentials over mTLS (RFC 8705 tls_client_auth)', () => {
  let s: TestServer
  let cred: Credential
  beforeAll(async () => {
    s = await TestServer.start()
    cred = await s.enroll(ID)
  })
  afterAll(() => s.close())

  it('returns a certificate-bound RFC 9068 token that jose verifies against the served JWKS', async () => {
    const before = Math.floor(Date.now() / 1000)
    const r = await token(s, cred, {
      grant_type: 'client_credentials',
      scope: 'deploy read:logs',
      client_id: ID,
    })
    expect(r.status, r.text).toBe(200)
    expect(r.headers['cache-control']).toBe('no-store')
    expect(String(r.headers['content-type'])).toMatch(/^application\/json/)
    expect(r.body.token_type).toBe('Bearer')
    expect(r.body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43,}$/)
    expect(r.body.scope).toBe('deploy read:logs')

    const { payload, protectedHeader } = await verifyWithServedJwks(s, r.body.access_token)
    expect(protectedHeader.typ).toBe('at+jwt')
    expect(protectedHeader.alg).toBe('ES256')
    expect(typeof protectedHeader.kid).toBe('string')
    expect(payload.iss).toBe(s.config.tokens.issuer)
    expect(payload.sub).toBe(ID)
    expect(payload.client_id).toBe(ID)
    expect([payload.aud].flat()).toEqual([...s.config.tokens.audience])
    expect(payload.scope).toBe('deploy read:logs')
    expect(typeof payload.jti).toBe('string')
    expect(payload.iat).toBeGreaterThanOrEqual(before - 1)
    expect(payload.iat).toBeLessThanOrEqual(Math.floor(Date.now() / 1000))
    expect(payload.exp! - payload.iat!).toBe(300) // access_token_ttl 5m, certificate lives 1h
    expect(r.body.expires_in).toBe(payload.exp! - payload.iat!)
    expect(payload.cnf).toEqual({ 'x5t#S256': thumbprintOf(cred.certPem) })
  })

  it('gives every grant its own jti and refresh token, and omits scope when none was asked', async () => {
    const [a, b] = await Promise.all([grant(s, cred), grant(s, cred)])
    expect(a.refresh_token).not.toBe(b.refresh_token)
    const [pa, pb] = await Promise.all([
      verifyWithServedJwks(s, a.access_token),
      verifyWithServedJwks(s, b.access_token),
    ])
    expect(pa.payload.jti).not.toBe(pb.payload.jti)
    expect(pa.payload.scope).toBeUndefined()
    expect(a).not.toHaveProperty('scope')
  })

  it('never lets exp pass the certificate notAfter (certificate ttl 20s < access ttl 5m)', async () => {
    const short = await s.enroll('spiffe://example.org/short-lived', { ttl: '20s' })
    const r = await token(s, short)
    expect(r.status, r.text).toBe(200)
    const { payload } = await verifyWithServedJwks(s, r.body.access_token)
    const notAfter = notAfterSeconds(short.certPem)
    expect(payload.exp).toBeLessThanOrEqual(notAfter)
    expect(payload.exp).toBeGreaterThanOrEqual(notAfter - 1)
    expect(r.body.expires_in).toBe(payload.exp! - payload.iat!)
    expect(r.body.expires_in).toBeLessThanOrEqual(20)
    expect(payload.cnf['x5t#S256']).toBe(thumbprintOf(short.certPem))
    // And the refresh token cannot outlive the certificate either (LIFECYCLE invariant 2).
    const i = await introspect(s, cred, r.body.refresh_token)
    expect(i.body.active).toBe(true)
    expect(i.body.exp).toBeLessThanOrEqual(notAfter)
  })

  describe('errors are exactly RFC 6749 §5.2', () => {
    it('no client certificate → 401 invalid_client', async () => {
      expectOAuthError(await token(s, undefined), 401, 'invalid_client')
    })

    it('a certificate of another CA (same SPIFFE ID) → 401 invalid_client', async () => {
      expectOAuthError(await token(s, foreignCredential(ID)), 401, 'invalid_client')
    })

    it('client_id that is not the certificate SPIFFE ID → 401 invalid_client', async () => {
      expectOAuthError(
        await token(s, cred, {
          grant_type: 'client_credentials',
          client_id: 'spiffe://example.org/other',
        }),
        401,
        'invalid_client',
      )
    })

    it('missing grant_type → 400 invalid_request', async () => {
      expectOAuthError(await token(s, cred, { scope: 'a' }), 400, 'invalid_request')
    })

    it('unknown grant → 400 unsupported_grant_type', async () => {
      expectOAuthError(
        await token(s, cred, { grant_type: 'password', username: 'u', password: 'p' }),
        400,
        'unsupported_grant_type',
      )
      expectOAuthError(
        await token(s, cred, { grant_type: 'authorization_code', code: 'x' }),
        400,
        'unsupported_grant_type',
      )
    })

    it('a JSON body instead of a form → 400 invalid_request', async () => {
      const r = await s.call('POST', '/oauth/token', {
        as: cred,
        json: { grant_type: 'client_credentials' },
      })
      expectOAuthError(r, 400, 'invalid_request')
    })

    it('a repeated parameter → 400 invalid_request', async () => {
      const r = await s.call('POST', '/oauth/token', {
        as: cred,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials&grant_type=client_credentials',
      })
      expectOAuthError(r, 400, 'invalid_request')
    })

    it('malformed scope → 400 invalid_scope', async () => {
      for (const scope of [
        'a  b',
        ' a',
        'a ',
        'say "hi"',
        'back\\slash',
        'tab\there',
        'ünïcode',
        'x'.repeat(2000),
      ]) {
        expectOAuthError(
          await token(s, cred, { grant_type: 'client_credentials', scope }),
          400,
          'invalid_scope',
        )
      }
    })

    it('refresh_token grant without a refresh_token → 400 invalid_request', async () => {
      expectOAuthError(
        await token(s, cred, { grant_type: 'refresh_token' }),
        400,
        'invalid_request',
      )
    })

    it('there is no bearer fallback: a valid access token without a certificate → 401 on every OAuth endpoint', async () => {
      const t = await grant(s, cred)
      const bearer = { authorization: `Bearer ${t.access_token}` }
      expectOAuthError(
        await oauth(s, '/oauth/token', undefined, { grant_type: 'client_credentials' }, bearer),
        401,
        'invalid_client',
      )
      expectOAuthError(
        await oauth(
          s,
          '/oauth/token',
          undefined,
          { grant_type: 'refresh_token', refresh_token: t.refresh_token },
          bearer,
        ),
        401,
        'invalid_client',
      )
      expectOAuthError(
        await oauth(s, '/oauth/introspect', undefined, { token: t.access_token }, bearer),
        401,
        'invalid_client',
      )
      expectOAuthError(
        await oauth(s, '/oauth/revoke', undefined, { token: t.access_token }, bearer),
        401,
        'invalid_client',
      )
      // Nothing happened: the tokens are still good.
      expect((await introspect(s, cred, t.access_token)).body.active).toBe(true)
      expect((await introspect(s, cred, t.refresh_token)).body.active).toBe(true)
    })

    it('a bearer refresh token or a foreign certificate cannot refresh or revoke either', async () => {
      const t = await grant(s, cred)
      expectOAuthError(
        await refresh(s, foreignCredential(ID), t.refresh_token),
        401,
        'invalid_client',
      )
      expectOAuthError(
        await revoke(s, foreignCredential(ID), t.refresh_token),
        401,
        'invalid_client',
      )
      expect((await introspect(s, cred, t.refresh_token)).body.active).toBe(true)
    })
  })

  it('the server TLS certificate (no SPIFFE ID) is no OAuth client', async () => {
    const server = await s.serverCredential()
    expectOAuthError(await token(s, server), 401, 'invalid_client')
  })

  it('publishes RFC 8414 metadata for mTLS-bound tokens', async () => {
    const r = await s.call('GET', '/.well-known/oauth-authorization-server')
    expect(r.status).toBe(200)
    const m = r.body
    const iss = s.config.tokens.issuer
    expect(m.issuer).toBe(iss)
    expect(m.token_endpoint).toBe(`${iss}/oauth/token`)
    expect(m.introspection_endpoint).toBe(`${iss}/oauth/introspect`)
    expect(m.revocation_endpoint).toBe(`${iss}/oauth/revoke`)
    expect(m.jwks_uri).toBe(`${iss}/.well-known/jwks.json`)
    expect([...m.grant_types_supported].sort()).toEqual(['client_credentials', 'refresh_token'])
    expect(m.token_endpoint_auth_methods_supported).toEqual(['tls_client_auth'])
    expect(m.tls_client_certificate_bound_access_tokens).toBe(true)
    // RFC 8414 §2: REQUIRED; authlib's validator refuses a missing or empty list. "none" is the
    // value oidc-provider accepts for a server that issues nothing at an authorization endpoint.
    expect(m.response_types_supported).toEqual(['none'])
    expect(m.authorization_endpoint).toBeUndefined()
    expect(m.grant_types_supported).not.toContain('authorization_code')
    expect(m.grant_types_supported).not.toContain('implicit')
    expect(m.mtls_endpoint_aliases).toMatchObject({
      token_endpoint: m.token_endpoint,
      introspection_endpoint: m.introspection_endpoint,
      revocation_endpoint: m.revocation_endpoint,
    })
    const jwks = await s.call('GET', '/.well-known/jwks.json')
    expect(jwks.status).toBe(200)
    expect(jwks.body.keys.length).toBeGreaterThanOrEqual(1)
    for (const k of jwks.body.keys) {
      expect(k).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' })
      expect(k.kid).toEqual(expect.any(String))
      expect(k).not.toHaveProperty('d')
    }
  })
})

describe('forwarded client certificates (RFC 9440) and LIFECYCLE invariant 9', () => {
  const PROXY = '127.0.0.2' // a TLS-terminating proxy; direct clients connect from 127.0.0.1
  const logs: string[] = []
  let s: TestServer
  beforeAll(async () => {
    const logger = pino({ level: 'warn' }, { write: (line: string) => logs.push(line) })
    s = await TestServer.start({ server: { trusted_proxies: [`${PROXY}/32`] } }, { logger })
  })
  afterAll(() => s.close())

  /** Connections from the proxy's address, presenting `cred` (the proxy's own) if given. */
  const viaProxy = (server: TestServer, cred?: Credential) =>
    new Agent({
      localAddress: PROXY,
      connect: { ca: server.bundlePem, ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}) },
    })
  const forwardings = (pem: string): Record<string, Record<string, string>> => {
    const der = new X509Certificate(pem).raw
    const hash = createHash('sha256').update(der).digest('hex')
    return {
      'client-cert': { 'client-cert': `:${der.toString('base64')}:` },
      xfcc: {
        'x-forwarded-client-cert': `Hash=${hash};Cert="${encodeURIComponent(pem)}";URI=${ID}`,
      },
      'escaped-pem': { 'x-ssl-client-cert': encodeURIComponent(pem) },
    }
  }
  const cc = (pem: string) => forwardings(pem)['client-cert']!
  const tokenVia = (agent: Agent, h: Record<string, string>, server = s) =>
    oauth(server, '/oauth/token', agent, { grant_type: 'client_credentials' }, h)

  it('from any other peer a forwarding header is a spoofing attempt: refused, even beside a valid TLS certificate, and logged', async () => {
    const cred = await s.enroll(ID)
    const other = await s.enroll(`${ID}/other`)
    const t = await grant(s, cred)
    for (const [format, h] of Object.entries(forwardings(other.certPem))) {
      for (const who of [undefined, cred]) {
        const r = await oauth(s, '/oauth/token', who, { grant_type: 'client_credentials' }, h)
        expectOAuthError(r, 401, 'invalid_client')
        expect(r.body.error_description, format).toMatch(/untrusted peer/)
      }
      expectOAuthError(
        await oauth(s, '/oauth/introspect', cred, { token: t.access_token }, h),
        401,
        'invalid_client',
      )
      const renew = await s.call('POST', '/v1/renew', { as: cred, headers: h, json: {} })
      expect(renew.status).toBe(401)
    }
    expect(logs.filter((l) => l.includes('spoofing attempt')).length).toBe(12)
    // Nothing was issued on the way: the family of `t` is still the only one, and active.
    expect((await introspect(s, cred, t.refresh_token)).body.active).toBe(true)
  })

  it('from the trusted proxy the forwarded certificate is the client: the token is bound to it', async () => {
    const cred = await s.enroll(`${ID}/proxied`)
    const proxy = viaProxy(s)
    try {
      const r = await tokenVia(proxy, cc(cred.certPem))
      expect(r.status, r.text).toBe(200)
      const { payload } = await verifyWithServedJwks(s, r.body.access_token)
      expect(payload.sub).toBe(`${ID}/proxied`)
      expect(payload.cnf).toEqual({ 'x5t#S256': thumbprintOf(cred.certPem) })
    } finally {
      await proxy.close()
    }
  })

  it('from the trusted proxy: checked like a TLS certificate, one configured header only, never the proxy’s own', async () => {
    const cred = await s.enroll(`${ID}/checked`)
    const proxyOwn = await s.enroll(`${ID}/the-proxy`)
    const foreign = foreignCredential(`${ID}/checked`)
    const revoked = await s.enroll(`${ID}/revoked`)
    const r = await s.call('POST', `/v1/certificates/${revoked.serial}/revoke`, {
      as: s.admin,
      json: {},
    })
    expect(r.status).toBe(200)
    const f = forwardings(cred.certPem)
    const proxy = viaProxy(s, proxyOwn)
    try {
      const refused: [string, Record<string, string>, RegExp][] = [
        ['no header: not the proxy’s identity', {}, /forwarded no client certificate/],
        ['a blank header', { 'client-cert': '  ' }, /forwarded no client certificate/],
        ['foreign CA', cc(foreign.certPem), /forwarded client certificate/],
        ['revoked', cc(revoked.certPem), /revoked/],
        ['another format (passed through?)', f.xfcc!, /not accepted/],
        ['the configured one plus another', { ...f['client-cert']!, ...f.xfcc! }, /ambiguous/],
      ]
      for (const [name, h, detail] of refused) {
        const t = await tokenVia(proxy, h)
        expectOAuthError(t, 401, 'invalid_client')
        expect(t.body.error_description, name).toMatch(detail)
      }
      // The admin API follows the same rule: a forwarded workload certificate is no admin.
      const list = await s.call('GET', '/v1/entries', { agent: proxy, headers: cc(cred.certPem) })
      expect(list.status).toBe(403)
    } finally {
      await proxy.close()
    }
  })

  it.each(['xfcc', 'escaped-pem'] as const)(
    'server.forwarded_client_cert: %s is honoured, and then Client-Cert is not',
    async (format) => {
      const other = await TestServer.start({
        server: { trusted_proxies: [PROXY], forwarded_client_cert: format },
      })
      const proxy = viaProxy(other)
      try {
        const cred = await other.enroll(ID)
        const ok = await tokenVia(proxy, forwardings(cred.certPem)[format]!, other)
        expect(ok.status, ok.text).toBe(200)
        expectOAuthError(await tokenVia(proxy, cc(cred.certPem), other), 401, 'invalid_client')
      } finally {
        await proxy.close()
        await other.close()
      }
    },
  )
})
