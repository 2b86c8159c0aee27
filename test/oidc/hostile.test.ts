import { createSecretKey } from 'node:crypto'
import { SignJWT, base64url } from 'jose'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { enrollWith } from '../helpers/ca.js'
import { makeCsr } from '../helpers/openssl.js'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { githubClaims } from '../helpers/oidc/platforms.js'
import { AUDIENCE, enrollWithOidc, issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

/** Hostile tokens and hostile issuers: every one is refused, naming the check, changing nothing. */
describe('OIDC enrolment: hostile tokens and issuers', () => {
  let s: TestServer
  const logs: Record<string, unknown>[] = []
  let github: LoopbackIssuer
  let k8s: LoopbackIssuer
  let liar: LoopbackIssuer
  let symmetric: LoopbackIssuer
  let leaky: LoopbackIssuer
  let hanging: LoopbackIssuer
  let stranger: LoopbackIssuer
  let n = 0
  const id = () => `spiffe://example.org/hostile/${++n}`
  const ghToken = (extra: object = {}) =>
    github.mint({ ...githubClaims(), aud: AUDIENCE, ...extra })

  /** An entry pinning acme/api on `issuer`. */
  async function entryFor(issuer: string): Promise<string> {
    const spiffeId = id()
    await s.createEntry(spiffeId, { oidc: { issuer, claims: { repository: 'acme/api' } } })
    return spiffeId
  }

  beforeAll(async () => {
    ;[github, k8s, liar, symmetric, leaky, hanging, stranger] = await Promise.all([
      LoopbackIssuer.start({ alg: 'RS256' }),
      LoopbackIssuer.start({ alg: 'ES256' }),
      LoopbackIssuer.start(),
      LoopbackIssuer.start(),
      LoopbackIssuer.start(),
      LoopbackIssuer.start(),
      LoopbackIssuer.start(),
    ])
    liar.discoveryIssuer = 'https://token.actions.githubusercontent.com'
    symmetric.extraJwks = [{ kty: 'oct', k: base64url.encode('shared secret'), kid: 'hmac' }]
    leaky.extraJwks = [{ ...(leaky.keys[0]!.publicJwk as object), kid: 'leak', d: 'AAAA' }]
    hanging.hang = true
    const logger = pino(
      { level: 'info' },
      { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
    )
    s = await TestServer.start(
      {
        federation: {
          fetch_timeout: '1s',
          oidc_issuers: [
            issuerConfig('github', github),
            issuerConfig('k8s', k8s),
            issuerConfig('liar', liar),
            issuerConfig('symmetric', symmetric),
            issuerConfig('leaky', leaky),
            issuerConfig('hanging', hanging),
          ],
        },
      },
      { logger },
    )
  })
  afterAll(async () => {
    await s?.close()
    await Promise.all(
      [github, k8s, liar, symmetric, leaky, hanging, stranger].map((i) => i?.close()),
    )
  })

  it('alg "none" (an empty signature) is refused as an OIDC token by its alg', async () => {
    const spiffeId = await entryFor('github')
    const head = base64url.encode(JSON.stringify({ alg: 'none', typ: 'JWT' }))
    const now = Math.floor(Date.now() / 1000)
    const body = base64url.encode(
      JSON.stringify({
        ...githubClaims(),
        iss: github.url,
        aud: AUDIENCE,
        iat: now,
        exp: now + 60,
      }),
    )
    const r = await enrollWithOidc(s, `${head}.${body}.`, spiffeId)
    expect([r.status, r.body.code, r.body.check]).toEqual([401, 'ERR_OIDC_TOKEN_INVALID', 'alg'])
    expect(r.body.detail).toMatch(/"none" is not allowed: only asymmetric/)
  })

  it("HS256 keyed with the issuer's own public key is refused by its alg", async () => {
    const spiffeId = await entryFor('github')
    const publicJwk = JSON.stringify(github.keys[0]!.publicJwk)
    const forged = await new SignJWT({ ...githubClaims(), iss: github.url, aud: AUDIENCE })
      .setProtectedHeader({ alg: 'HS256', kid: github.keys[0]!.kid })
      .sign(createSecretKey(Buffer.from(publicJwk)))
    const r = await enrollWithOidc(s, forged, spiffeId)
    expect([r.status, r.body.check]).toEqual([401, 'alg'])
  })

  it('a token from an issuer not configured (its own discovery and keys) is refused by iss', async () => {
    const spiffeId = await entryFor('github')
    const r = await enrollWithOidc(
      s,
      await stranger.mint({ ...githubClaims(), aud: AUDIENCE }),
      spiffeId,
    )
    expect([r.status, r.body.check]).toEqual([401, 'iss'])
    expect(stranger.fetches.size).toBe(0) // never asked: iss is checked before any key is fetched
  })

  it("a token with the iss of one issuer, signed by another's key (kid and all), is refused by signature", async () => {
    const spiffeId = await entryFor('github')
    const claims = { ...githubClaims(), aud: AUDIENCE, iss: github.url }
    const byOther = await k8s.mint(claims)
    const r1 = await enrollWithOidc(s, byOther, spiffeId)
    expect([r1.status, r1.body.check]).toEqual([401, 'signature'])
    // The other key under github's kid: the signature does not verify with github's key.
    const stolenKid = await k8s.mint(claims, {
      key: { ...k8s.keys[0]!, alg: 'ES256' },
      header: { kid: github.keys[0]!.kid },
    })
    const r2 = await enrollWithOidc(s, stolenKid, spiffeId)
    expect([r2.status, r2.body.check]).toEqual([401, 'signature'])
    const rsaUnderKid = await stranger.mint(claims, { header: { kid: github.keys[0]!.kid } })
    const r3 = await enrollWithOidc(s, rsaUnderKid, spiffeId)
    expect([r3.status, r3.body.check]).toEqual([401, 'signature'])
    expect((await enrollWithOidc(s, await ghToken(), spiffeId)).status).toBe(201) // control
  })

  it('an issuer whose discovery names another issuer is refused, and the log says so', async () => {
    const spiffeId = await entryFor('liar')
    const r = await enrollWithOidc(
      s,
      await liar.mint({ ...githubClaims(), aud: AUDIENCE }),
      spiffeId,
    )
    expect([r.status, r.body.check]).toEqual([401, 'issuer'])
    expect(r.body.detail).toContain('names issuer "https://token.actions.githubusercontent.com"')
    expect(liar.fetches.get(liar.jwksPath)).toBeUndefined() // its JWKS was never used
    const line = logs.find((l) => l.issuer === 'liar' && l.level === 40)
    expect(line?.msg).toBe('OIDC issuer keys could not be loaded')
    expect(String(line?.err)).toContain('its discovery document names issuer')
  })

  it('a JWKS holding a symmetric key, or a private key, is refused whole', async () => {
    for (const [name, issuer, word] of [
      ['symmetric', symmetric, /symmetric \(oct\) key/],
      ['leaky', leaky, /private key/],
    ] as const) {
      const spiffeId = await entryFor(name)
      const r = await enrollWithOidc(
        s,
        await issuer.mint({ ...githubClaims(), aud: AUDIENCE }),
        spiffeId,
      )
      expect([r.status, r.body.check], name).toEqual([401, 'issuer'])
      expect(r.body.detail).toMatch(word)
    }
  })

  it('wrong audience, expired, too old, issued in the future, not yet valid: each named', async () => {
    const spiffeId = await entryFor('github')
    const now = Math.floor(Date.now() / 1000)
    const cases: [object, object, string][] = [
      [{ aud: 'https://someone-else.example' }, {}, 'aud'],
      [{}, { iat: now - 400, lifetime: 300 }, 'exp'],
      [{}, { iat: now - 12 * 60, lifetime: 3600 }, 'iat'],
      [{}, { iat: now + 600 }, 'iat'],
      [{ nbf: now + 600 }, {}, 'nbf'],
      [{ sub: undefined }, {}, 'sub'],
    ]
    for (const [claims, opts, check] of cases) {
      const { iat: _iat, exp: _exp, nbf: _nbf, ...base } = githubClaims()
      const token = await github.mint({ ...base, aud: AUDIENCE, ...claims }, opts)
      const r = await enrollWithOidc(s, token, spiffeId)
      expect([r.status, r.body.check], `${check}: ${r.text}`).toEqual([401, check])
      expect(r.text).not.toContain(token.split('.')[2]!)
    }
  })

  it('malformed tokens are refused by format; a join token with dots is not taken for a JWT', async () => {
    const spiffeId = await entryFor('github')
    for (const token of ['a.b.c', 'e30.e30.', `${base64url.encode('[1]')}.e30.sig`]) {
      const r = await enrollWithOidc(s, token, spiffeId)
      expect(r.status).toBe(401)
      expect(['format', 'alg']).toContain(r.body.check)
    }
    const joinish = await enrollWith(s, 'abc.def', { csr: 'x' })
    expect([joinish.status, joinish.body.code]).toEqual([401, 'ERR_JOIN_TOKEN_INVALID'])
  })

  it('50 parallel enrolments with one token: exactly one certificate, 49 replays', async () => {
    const spiffeId = await entryFor('github')
    const token = await ghToken()
    const { csrPem } = makeCsr({ san: `URI:${spiffeId}` })
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        s.call('POST', '/v1/enroll', {
          headers: { authorization: `Bearer ${token}` },
          json: { spiffe_id: spiffeId, csr: csrPem },
        }),
      ),
    )
    expect(results.filter((r) => r.status === 201)).toHaveLength(1)
    const refused = results.filter((r) => r.status !== 201)
    expect(refused.map((r) => [r.status, r.body.check])).toEqual(
      Array.from({ length: 49 }, () => [401, 'replay']),
    )
    const certs = await s.query('SELECT serial FROM certificates WHERE spiffe_id = ?', spiffeId)
    expect(certs).toHaveLength(1)
    const uses = await s.query(
      'SELECT used_by FROM oidc_token_uses WHERE used_by = ?',
      certs[0].serial,
    )
    expect(uses).toHaveLength(1)
  })

  it('unknown kids refetch the JWKS at a bounded rate: a flood of made-up kids costs one fetch', async () => {
    const spiffeId = await entryFor('github')
    expect((await enrollWithOidc(s, await ghToken(), spiffeId)).status).toBe(201)
    const before = github.fetches.get(github.jwksPath) ?? 0
    const forged = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        github.mint({ ...githubClaims(), aud: AUDIENCE }, { header: { kid: `made-up-${i}` } }),
      ),
    )
    for (const token of forged) {
      const r = await enrollWithOidc(s, token, spiffeId)
      expect([r.status, r.body.check]).toEqual([401, 'signature'])
    }
    expect((github.fetches.get(github.jwksPath) ?? 0) - before).toBeLessThanOrEqual(1)
  })

  it('a hanging issuer answers 503 after fetch_timeout and never holds up other enrolments', async () => {
    const spiffeId = await entryFor('hanging')
    const order: string[] = []
    const stuck = enrollWithOidc(
      s,
      await hanging.mint({ ...githubClaims(), aud: AUDIENCE }),
      spiffeId,
    ).then((r) => (order.push('hanging'), r))
    await new Promise((r) => setTimeout(r, 100))
    const other = await entryFor('github')
    const ok = await enrollWithOidc(s, await ghToken(), other)
    order.push('github')
    const join = await s.enroll(id())
    order.push('join')
    const r = await stuck
    expect([ok.status, join.serial.length > 0]).toEqual([201, true])
    expect(order).toEqual(['github', 'join', 'hanging'])
    expect([r.status, r.body.code, r.body.check]).toEqual([
      503,
      'ERR_OIDC_ISSUER_UNAVAILABLE',
      'issuer',
    ])
    expect(r.headers['retry-after']).toBe('1')
    expect(r.body.detail).toMatch(/timed out/)
    expect(
      logs.some((l) => l.issuer === 'hanging' && l.code === 'ERR_OIDC_ISSUER_UNAVAILABLE'),
    ).toBe(true)
  })

  it('no log line holds a token (every JWT starts "eyJ"), though refusals are logged', () => {
    expect(
      logs.some((l) => l.code === 'ERR_OIDC_TOKEN_INVALID' && typeof l.check === 'string'),
    ).toBe(true)
    expect(JSON.stringify(logs)).not.toContain('eyJ')
  })
})
