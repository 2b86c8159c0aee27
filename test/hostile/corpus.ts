import { bearer, csrCases, jsonAndWire, noAuth, nothing, q, wireCases } from './cases.js'
import { EST_ROWS } from './corpus-est.js'
import { STATUS_ROWS } from './corpus-status.js'
import { csrDer, newKey, pem, validCsr } from './der.js'
import type { CaseContext, HostileCase, HostileRequest, RouteCorpus } from './harness.js'

/*
 * The corpus, one row per route (the public status routes and EST in files of their own). A
 * route added to the app without a row here fails test/security/routes.test.ts, and so does a
 * row for a route the app does not serve.
 */

const form = (body: string, type = 'application/x-www-form-urlencoded'): HostileRequest => ({
  headers: { 'content-type': type },
  body,
})

/** Forms an OAuth endpoint must refuse (RFC 6749 §5.2 errors, never a 5xx). */
function formCases(valid: (c: CaseContext) => string, opts: { secret: string }): HostileCase[] {
  // Introspection and revocation answer 200 for a token they do not know (RFC 7662 §2.2,
  // RFC 7009 §2.2); the token endpoint refuses an unknown refresh token (invalid_grant).
  const unknownOk = opts.secret === 'token'
  const secret = (value: string) =>
    form(`${unknownOk ? '' : 'grant_type=refresh_token&'}${opts.secret}=${value}`)
  const bytes = Buffer.from(Array.from({ length: 59 }, (_, i) => (i * 37) % 256))
  const b64 = (v: string) => Buffer.from(v).toString('base64url')
  return [
    {
      name: 'form: as JSON',
      request: (c) =>
        form(JSON.stringify(Object.fromEntries(new URLSearchParams(valid(c)))), 'application/json'),
    },
    { name: 'form: as text/plain', request: (c) => form(valid(c), 'text/plain') },
    { name: 'form: no content type', request: (c) => ({ body: valid(c) }) },
    { name: 'form: empty', request: () => form('') },
    { name: 'form: every parameter twice', request: (c) => form(`${valid(c)}&${valid(c)}`) },
    ...(
      [
        ['with bad percent-encoding', () => '%zz%ff%'],
        ['of random bytes', () => encodeURIComponent(bytes.toString('latin1'))],
        [
          'of the right length, wrong secret',
          (c) => `${c.refreshToken.slice(0, 16)}${'A'.repeat(43)}`,
        ],
        ['60 KB long', () => 'A'.repeat(60_000)],
        [
          'a JWT with alg none',
          () => `${b64('{"alg":"none","typ":"at+jwt"}')}.${b64('{"sub":"x"}')}.`,
        ],
      ] as [string, (c: CaseContext) => string][]
    ).map(([name, value]): HostileCase => ({
      name: `form: ${opts.secret} ${name}`,
      request: (c) => secret(value(c)),
      mayAccept: unknownOk,
    })),
    {
      name: 'form: NUL and control characters',
      request: () => form('grant_type=client%00credentials&scope=%01%02%7f'),
    },
    {
      name: 'form: 10 MB',
      request: () => form(`grant_type=client_credentials&scope=${'a'.repeat(10 * 1024 * 1024)}`),
    },
  ]
}

const tokenForm = () => 'grant_type=client_credentials'
const tokenParam = (c: CaseContext) => `token=${c.accessToken}`

const entryPath = (c: CaseContext) => `/v1/entries/${c.entryId}`
const serialPath = (c: CaseContext) => `/v1/certificates/${c.revocable}`
const csrBody = (csr: unknown) => ({ csr })
const lineageRevoke = (c: CaseContext) => `/v1/lineages/${c.revocableLineage}/revoke`
const WORKLOAD = 'spiffe://example.org/hostile/workload'
let entries = 0

export const CORPUS: readonly RouteCorpus[] = [
  {
    route: 'GET /healthz',
    auth: 'none',
    cases: [
      nothing,
      { name: 'a 8 KB query', request: () => q(`/healthz?${'a'.repeat(8000)}`), mayAccept: true },
    ],
  },
  { route: 'GET /v1/bundle', auth: 'none', cases: [nothing] },
  {
    route: 'GET /v1/crl',
    auth: 'none',
    cases: [
      nothing,
      {
        name: 'a garbage Range header',
        request: () => ({ headers: { range: 'bytes=9-1,-0,x' } }),
        mayAccept: true,
      },
    ],
  },
  { route: 'GET /.well-known/jwks.json', auth: 'none', cases: [nothing] },
  { route: 'GET /.well-known/oauth-authorization-server', auth: 'none', cases: [nothing] },
  {
    route: 'POST /v1/enroll',
    auth: 'join-token',
    cases: [
      ...csrCases(csrBody, () => 'spiffe://example.org/hostile/target'),
      ...jsonAndWire(
        'POST',
        () => '/v1/enroll',
        bearer,
        (c) => ({ csr: pem(validCsr(c.spiffeId)) }),
        { strict: false },
      ),
      {
        name: 'ttl: 20 digits',
        request: (c) => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ csr: c.csrPem, ttl: `${'9'.repeat(20)}h` }),
        }),
      },
      {
        name: 'Authorization: a 10 KB bearer',
        request: (c) => ({
          headers: {
            authorization: `Bearer ${'a'.repeat(10_000)}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({ csr: c.csrPem }),
        }),
      },
      {
        name: 'Authorization: Basic',
        request: (c) => ({
          headers: {
            authorization: `Basic ${Buffer.from(`x:${c.joinToken}`).toString('base64')}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({ csr: c.csrPem }),
        }),
      },
      {
        name: 'a workload certificate instead of a join token',
        request: (c) => ({
          headers: { authorization: '', 'content-type': 'application/json' },
          body: JSON.stringify({ csr: c.csrPem }),
        }),
      },
    ],
  },
  {
    route: 'POST /v1/renew',
    auth: 'workload',
    cases: [
      ...csrCases(csrBody, () => WORKLOAD),
      ...jsonAndWire(
        'POST',
        () => '/v1/renew',
        noAuth,
        () => ({ csr: pem(validCsr(WORKLOAD)) }),
        { strict: false },
      ),
      {
        name: 'a CSR for another SPIFFE ID',
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ csr: pem(csrDer(newKey(), {})), ttl: '99d' }),
        }),
      },
    ],
  },
  {
    route: 'POST /v1/entries',
    auth: 'admin',
    cases: [
      ...jsonAndWire(
        'POST',
        () => '/v1/entries',
        noAuth,
        () => ({ spiffe_id: `spiffe://example.org/hostile/new/${++entries}` }),
        { strict: true },
      ),
      ...[
        'spiffe://evil.example/x',
        'spiffe://example.org/a?b',
        'spiffe://example.org/a#b',
        'spiffe://example.org/a/../b',
        'SPIFFE://example.org/a',
        'spiffe://example.org/',
        `spiffe://example.org/${'a'.repeat(10_000)}`,
        'spiffe://example.org/a\u0000b',
        'spiffe://example.org/\u00e9',
        'spiffe://example.org/admin',
        42,
        null,
      ].map((id): HostileCase => ({
        name: `spiffe_id ${JSON.stringify(id)?.slice(0, 40)}`,
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ spiffe_id: id }),
        }),
      })),
      {
        name: 'dns_names: 1,000 names',
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            spiffe_id: 'spiffe://example.org/hostile/dns',
            dns_names: Array.from({ length: 1000 }, (_, i) => `h${i}.example.org`),
          }),
        }),
      },
      ...[
        '*.*.example.org',
        'a..b',
        `${'a'.repeat(64)}.example.org`,
        'exa\u0000mple.org',
        'ex ample.org',
        'xn--',
        '\u00e9.example',
      ].map((name): HostileCase => ({
        name: `dns_names [${JSON.stringify(name).slice(0, 30)}]`,
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            spiffe_id: 'spiffe://example.org/hostile/dns',
            dns_names: [name],
          }),
        }),
      })),
      {
        name: 'scopes: control characters',
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            spiffe_id: 'spiffe://example.org/hostile/s',
            scopes: ['a\u0001b'],
          }),
        }),
      },
      {
        name: 'scopes: 1,000',
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            spiffe_id: 'spiffe://example.org/hostile/s',
            scopes: Array.from({ length: 1000 }, (_, i) => `s${i}`),
          }),
        }),
      },
    ],
  },
  {
    route: 'GET /v1/entries',
    auth: 'admin',
    cases: [
      'cursor=AAAA',
      `cursor=${'%FF'.repeat(2000)}`,
      'cursor=eyJ4Ijp7fX0',
      'limit=-1',
      'limit=1e9',
      'limit=NaN',
      'limit=0x10',
      'limit=1.5',
      'limit=%207',
    ]
      .map((p): HostileCase => ({
        name: `query ${p.slice(0, 30)}`,
        request: () => q(`/v1/entries?${p}`),
      }))
      .concat({
        name: 'a repeated limit (the first counts)',
        request: () => q('/v1/entries?limit=1&limit=2'),
        mayAccept: true,
      }),
  },
  {
    route: 'GET /v1/entries/:id',
    auth: 'admin',
    path: entryPath,
    cases: [
      `/v1/entries/${'a'.repeat(5000)}`,
      '/v1/entries/%00',
      '/v1/entries/%2e%2e%2fcertificates',
      '/v1/entries/%C3%A9',
      '/v1/entries/00000000-0000-4000-8000-000000000000',
    ].map((p): HostileCase => ({ name: `id ${p.slice(12, 40)}`, request: () => q(p) })),
  },
  {
    route: 'PATCH /v1/entries/:id',
    auth: 'admin',
    path: entryPath,
    cases: [
      ...jsonAndWire('PATCH', entryPath, noAuth, () => ({ enabled: true }), {
        strict: true,
        emptyObject: true,
      }),
      ...[
        { enabled: 1 },
        { dns_names: 'a.example.org' },
        { ttl: '-1h' },
        { ttl: '999999999d' },
        { scopes: [''] },
      ].map((b): HostileCase => ({
        name: `body ${JSON.stringify(b)}`,
        request: () => ({
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(b),
        }),
      })),
    ],
  },
  {
    route: 'POST /v1/entries/:id/join-tokens',
    auth: 'admin',
    path: (c) => `/v1/entries/${c.entryId}/join-tokens`,
    cases: [
      ...jsonAndWire(
        'POST',
        (c) => `/v1/entries/${c.entryId}/join-tokens`,
        noAuth,
        () => ({ ttl: '1h' }),
        { strict: true, emptyObject: true, emptyBody: true },
      ),
      {
        name: 'an entry id with a NUL byte',
        request: () => ({
          path: '/v1/entries/%00/join-tokens',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
      },
      {
        name: 'an unknown entry',
        request: () => ({
          path: '/v1/entries/nope/join-tokens',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
      },
    ],
  },
  {
    route: 'GET /v1/certificates',
    auth: 'admin',
    cases: [
      'status=alive',
      `cursor=${'A'.repeat(4000)}`,
      'limit=1001',
      `spiffe_id=${'%ff'.repeat(100)}&status=x`,
    ]
      .map((p): HostileCase => ({
        name: `query ${p.slice(0, 30)}`,
        request: () => q(`/v1/certificates?${p}`),
      }))
      .concat({
        // SQLite finds nothing (200); PostgreSQL cannot hold a NUL (400): a 4xx or an empty list.
        name: 'a spiffe_id with a NUL byte',
        request: () => q('/v1/certificates?spiffe_id=spiffe%3A%2F%2Fexample.org%2F%00'),
        mayAccept: true,
      }),
  },
  {
    route: 'GET /v1/certificates/:serial',
    auth: 'admin',
    path: serialPath,
    cases: ['xyz', 'a'.repeat(65), '%00', '00', '%2F..%2Fentries', '0x00ff', '%C3%A9'].map(
      (p): HostileCase => ({
        name: `serial ${p.slice(0, 30)}`,
        request: () => q(`/v1/certificates/${p}`),
      }),
    ),
  },
  {
    route: 'POST /v1/certificates/:serial/revoke',
    auth: 'admin',
    path: (c) => `${serialPath(c)}/revoke`,
    cases: [
      ...jsonAndWire(
        'POST',
        (c) => `${serialPath(c)}/revoke`,
        noAuth,
        () => ({ reason: 'superseded' }),
        { strict: true, emptyObject: true, emptyBody: true },
      ),
      ...['removeFromCRL', 'KEYCOMPROMISE', 'keyCompromise ', 42, null, ['keyCompromise']].map(
        (reason): HostileCase => ({
          name: `reason ${JSON.stringify(reason)}`,
          request: () => ({
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ reason }),
          }),
        }),
      ),
      {
        name: 'a serial that is not hex',
        request: () => ({
          path: '/v1/certificates/zz/revoke',
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
      },
    ],
  },
  {
    route: 'POST /oauth/token',
    auth: 'workload',
    cases: [
      ...formCases(tokenForm, { secret: 'refresh_token' }),
      ...[
        'grant_type=password&username=a&password=b',
        'grant_type=',
        'grant_type=client_credentials&client_id=spiffe://example.org/someone-else',
        'grant_type=client_credentials&scope=%00',
        `grant_type=client_credentials&scope=${encodeURIComponent('a\tb')}`,
        'grant_type=refresh_token',
        'grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=x.y.z',
      ].map((b): HostileCase => ({ name: `form ${b.slice(0, 40)}`, request: () => form(b) })),
      ...wireCases('POST', () => '/oauth/token', noAuth),
    ],
  },
  {
    route: 'POST /oauth/introspect',
    auth: 'workload',
    cases: [
      ...formCases(tokenParam, { secret: 'token' }),
      ...['token=a.b.c', `token=${'e30'.repeat(2000)}.e30.`, 'token_type_hint=refresh_token'].map(
        (b): HostileCase => ({
          name: `form ${b.slice(0, 30)}`,
          request: () => form(b),
          mayAccept: true,
        }),
      ),
    ],
  },
  {
    route: 'POST /oauth/revoke',
    auth: 'workload',
    cases: [
      ...formCases((c) => `token=${c.refreshToken.slice(0, 16)}${'B'.repeat(43)}`, {
        secret: 'token',
      }),
      {
        name: 'another client’s token',
        request: () => form(`token=${'A'.repeat(59)}`),
        mayAccept: true,
      },
    ],
  },
  {
    route: 'GET /v1/lineages/:id',
    auth: 'admin',
    path: (c) => `/v1/lineages/${c.lineageId}`,
    cases: [
      'a'.repeat(65),
      'a'.repeat(5000),
      '%00',
      '..%2fentries',
      'a.b',
      '%C3%A9',
      '00000000-0000-4000-8000-000000000000',
    ].map((id): HostileCase => ({
      name: `id ${id.slice(0, 30)}`,
      request: () => q(`/v1/lineages/${id}`),
    })),
  },
  {
    route: 'POST /v1/lineages/:id/revoke',
    auth: 'admin',
    path: lineageRevoke,
    cases: [
      ...jsonAndWire('POST', lineageRevoke, noAuth, () => ({ reason: 'superseded' }), {
        strict: true,
        emptyObject: true,
        emptyBody: true,
      }),
      ...['removeFromCRL', 'KEYCOMPROMISE', 42, null, ['keyCompromise']].map(
        (reason): HostileCase => ({
          name: `reason ${JSON.stringify(reason)}`,
          request: () => ({
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ reason }),
          }),
        }),
      ),
      ...['nope', '%00', 'a'.repeat(65), '..%2f..%2fv1%2fentries'].map((id): HostileCase => ({
        name: `lineage ${id.slice(0, 30)}`,
        request: () => ({
          path: `/v1/lineages/${id}/revoke`,
          headers: { 'content-type': 'application/json' },
          body: '{}',
        }),
      })),
    ],
  },
  ...STATUS_ROWS,
  ...EST_ROWS,
]
