import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createVerifier, VerifyError, type Verifier } from '@certbound/verifier'
import { testApp } from '../helpers/app.js'
import { dbSnapshot } from '../helpers/ca.js'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer, type Credential } from '../helpers/server.js'
import { expectOAuthError, grant, introspect, refresh, revoke } from '../helpers/tokens.js'
import { ROUTES, routeContext, routeKey } from './route-table.js'

/*
 * Issue 14 (LIFECYCLE invariant 9): a token bound to certificate A is worth nothing with
 * certificate B — on every route of the CA (the route table is the router's) and in
 * @certbound/verifier. B is a workload of the same CA, current and valid.
 */
let s: TestServer
let a: Credential & { entryId: string }
let b: Credential & { entryId: string }
let tokens: { access_token: string; refresh_token: string }
let verifier: Verifier
let served: Set<string>
const B = 'spiffe://example.org/binding/b'

beforeAll(async () => {
  const t = await testApp()
  served = new Set(
    t.app.routes.filter((r) => r.method !== 'ALL').map((r) => routeKey(r.method, r.path)),
  )
  await t.close()
  s = await TestServer.start()
  a = await s.enroll('spiffe://example.org/binding/a')
  b = await s.enroll(B)
  tokens = await grant(s, a)
  verifier = createVerifier({
    issuer: s.config.tokens.issuer,
    audience: s.config.tokens.audience,
    trustAnchors: s.bundlePem,
    intermediates: s.intermediatePem,
    jwksUri: `${s.url}/.well-known/jwks.json`,
  })
})
/** What an enrolment changes: certificates, join tokens, entries, OIDC token uses, audit. */
async function enrolState() {
  return {
    db: await dbSnapshot(s),
    oidcUses: await s.query('SELECT count(*) AS n FROM oidc_token_uses'),
  }
}

afterAll(async () => {
  await verifier.close()
  await s.close()
})

describe('a token bound to certificate A, presented with certificate B', () => {
  it('on every route: the bearer token changes nothing about B’s answer', async () => {
    const ctx = await routeContext(s, b, tokens, 'spiffe://example.org/binding')
    for (const [key, row] of Object.entries(ROUTES)) {
      if (!served.has(key) || row.access === 'join-token') continue
      const [method] = key.split(' ')
      // Idempotent answers only: a route that makes something is asked twice with fresh input.
      const answer = async (headers: Record<string, string>) => {
        const req = await row.request(ctx)
        const r = await s.call(method!, req.path, {
          as: b,
          json: req.json,
          form: req.form,
          body: req.body,
          headers: { ...req.headers, ...headers },
        })
        return r.status
      }
      const bearer = await answer({ authorization: `Bearer ${tokens.access_token}` })
      expect(bearer, key).toBe(await answer({}))
      if (row.access === 'admin') expect(bearer, key).toBe(403)
    }
  })

  // Since OIDC enrolment a JWT-shaped bearer on /v1/enroll is read as an OIDC identity token:
  // the access token is refused as one (its issuer is no federation.oidc_issuers entry).
  it('as a join token, with a whole request for an existing entry: 401, nothing issued', async () => {
    const before = await enrolState()
    const r = await s.call('POST', '/v1/enroll', {
      as: b,
      headers: { authorization: `Bearer ${tokens.access_token}` },
      json: { spiffe_id: B, csr: makeCsr({ san: `URI:${B}` }).csrPem },
    })
    expect([r.status, r.body.code], r.text).toEqual([401, 'ERR_OIDC_TOKEN_INVALID'])
    expect(await enrolState()).toEqual(before)
  })

  it('as a join token, without a spiffe_id: a clear 400, nothing issued', async () => {
    const before = await enrolState()
    const r = await s.call('POST', '/v1/enroll', {
      as: b,
      headers: { authorization: `Bearer ${tokens.access_token}` },
      json: { csr: makeCsr({ san: `URI:${B}` }).csrPem },
    })
    expect([r.status, r.body.code], r.text).toEqual([400, 'ERR_BAD_REQUEST'])
    expect(r.body.detail).toMatch(/spiffe_id/)
    expect(await enrolState()).toEqual(before)
  })

  it('refresh with B: invalid_grant, and A’s family lives on (A still refreshes)', async () => {
    const t = await grant(s, a)
    const before = await dbSnapshot(s)
    expectOAuthError(await refresh(s, b, t.refresh_token), 400, 'invalid_grant')
    const after = (await dbSnapshot(s)) as Record<string, unknown>
    expect({ ...after, audit: undefined }).toEqual({ ...(before as object), audit: undefined })
    expect((await refresh(s, a, t.refresh_token)).status).toBe(200)
  })

  it('revocation by B (RFC 7009): refused, A’s tokens stay active', async () => {
    const t = await grant(s, a)
    for (const token of [t.access_token, t.refresh_token]) {
      expectOAuthError(await revoke(s, b, token), 400, 'invalid_request')
      expect((await introspect(s, a, token)).body.active).toBe(true)
    }
  })

  it('client_credentials by B naming A as client_id: invalid_client', async () => {
    const r = await s.call('POST', '/oauth/token', {
      as: b,
      form: { grant_type: 'client_credentials', client_id: 'spiffe://example.org/binding/a' },
    })
    expectOAuthError(r, 401, 'invalid_client')
  })

  it('in @certbound/verifier: accepted with A, refused with B or without a certificate', async () => {
    const ok = await verifier.verify(tokens.access_token, a.certPem)
    expect(ok.claims.sub).toBe('spiffe://example.org/binding/a')
    for (const [cert, code] of [
      [b.certPem, 'ERR_TOKEN_BINDING_MISMATCH'],
      // A bundle is not one certificate: refused before the binding is even compared.
      [b.chainPem, 'ERR_CLIENT_CERT_REQUIRED'],
      [undefined, 'ERR_CLIENT_CERT_REQUIRED'],
    ] as const) {
      const e = await verifier.verify(tokens.access_token, cert).then(
        () => undefined,
        (err: unknown) => err,
      )
      expect(e).toBeInstanceOf(VerifyError)
      expect((e as VerifyError).code).toBe(code)
    }
  })
})
