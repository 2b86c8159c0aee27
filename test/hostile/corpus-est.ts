import { bearer, binary, hostileCsrs, noAuth, nothing, wireCases } from './cases.js'
import { validCsr } from './der.js'
import type { CaseContext, HostileCase, HostileRequest, RouteCorpus } from './harness.js'

/*
 * Corpus rows of EST (RFC 7030) under /.well-known/est: bodies that are not base64 DER PKCS#10
 * (§4.2.1), hostile CSRs inside good base64, the wrong media types, and credentials that are
 * not a join token (simpleenroll) or come without the certificate being renewed (reenroll).
 */

const EST = '/.well-known/est'
const WORKLOAD = 'spiffe://example.org/hostile/workload'
const b64 = (der: Buffer) => der.toString('base64')
const pkcs10 = (body: Buffer | string) => binary(body, 'application/pkcs10')

/** Bodies an EST enrolment must refuse, for a caller entitled to `spiffeId`. */
function bodyCases(spiffeId: string): HostileCase[] {
  const garbage = [
    '',
    '%%%',
    Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).toString('base64'),
    'A'.repeat(60_000),
    'MAA',
    `${b64(validCsr(spiffeId))}\u0000`,
    b64(validCsr(spiffeId)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '') + '-_',
  ]
  const pem = (der: Buffer) =>
    `-----BEGIN CERTIFICATE REQUEST-----\n${b64(der)}\n-----END CERTIFICATE REQUEST-----\n`
  const typed = (type: string | undefined) => (c: CaseContext) => ({
    ...(type ? { headers: { 'content-type': type } } : {}),
    body: b64(c.csrDer),
  })
  return [
    ...garbage.map((b, i): HostileCase => ({
      name: `EST: base64 PKCS#10 garbage ${i}`,
      request: () => pkcs10(b),
    })),
    ...hostileCsrs(spiffeId).map(([name, make]): HostileCase => ({
      name: `EST CSR: ${name}`,
      request: () => pkcs10(b64(make())),
    })),
    { name: 'EST: raw DER instead of base64', request: () => pkcs10(validCsr(spiffeId)) },
    { name: 'EST: PEM armour', request: () => pkcs10(pem(validCsr(spiffeId))) },
    {
      name: 'EST: a CSR for another SPIFFE ID',
      request: () => pkcs10(b64(validCsr('spiffe://example.org/hostile/someone-else'))),
    },
    {
      name: 'EST: a JSON body',
      request: (c) => binary(JSON.stringify({ csr: c.csrPem }), 'application/json'),
    },
    ...[undefined, 'text/plain', 'application/pkcs7-mime', 'multipart/form-data; boundary=x'].map(
      (type): HostileCase => ({
        name: `EST: content type ${type ?? 'none'}`,
        request: (c) => (type === undefined ? { body: b64(c.csrDer) } : typed(type)(c)),
      }),
    ),
    { name: 'EST: 10 MB', request: () => pkcs10('A'.repeat(10 * 1024 * 1024)) },
  ]
}

/** simpleenroll with something else than the join token (the harness sends it by default). */
function credentialCases(): HostileCase[] {
  const b = (v: string) => Buffer.from(v).toString('base64url')
  const jwt = `${b('{"alg":"none","typ":"JWT"}')}.${b('{"sub":"x"}')}.`
  const as = (authorization: string) => (c: CaseContext) => ({
    headers: { authorization, 'content-type': 'application/pkcs10' },
    body: b64(c.csrDer),
  })
  const basic = (v: string) => `Basic ${Buffer.from(v).toString('base64')}`
  const cases: [string, (c: CaseContext) => HostileRequest][] = [
    ['no Authorization', (c) => as('')(c)],
    ['Basic with another entry as the user', (c) => as(basic(`nope:${c.joinToken}`))(c)],
    ['Basic without a colon', (c) => as(basic(c.joinToken))(c)],
    ['Basic that is not base64', (c) => as('Basic %%%')(c)],
    ['a 10 KB bearer', (c) => as(`Bearer ${'a'.repeat(10_000)}`)(c)],
    ['an unsigned JWT (alg none)', (c) => as(`Bearer ${jwt}`)(c)],
    ['another scheme', (c) => as(`Negotiate ${c.joinToken}`)(c)],
  ]
  return cases.map(([name, request]) => ({ name: `EST credentials: ${name}`, request }))
}

export const EST_ROWS: readonly RouteCorpus[] = [
  { route: `GET ${EST}/cacerts`, auth: 'none', cases: [nothing] },
  {
    route: `GET ${EST}/csrattrs`,
    auth: 'none',
    cases: [
      nothing,
      {
        name: 'a garbage Authorization header (ignored)',
        request: () => ({ headers: { authorization: 'Basic %%%' } }),
        mayAccept: true,
      },
    ],
  },
  {
    route: `POST ${EST}/simpleenroll`,
    auth: 'join-token',
    cases: [
      ...bodyCases('spiffe://example.org/hostile/target'),
      ...credentialCases(),
      ...wireCases('POST', () => `${EST}/simpleenroll`, bearer),
    ],
  },
  {
    route: `POST ${EST}/simplereenroll`,
    auth: 'workload',
    cases: [...bodyCases(WORKLOAD), ...wireCases('POST', () => `${EST}/simplereenroll`, noAuth)],
  },
]
