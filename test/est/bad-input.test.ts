import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer, type ApiResponse } from '../helpers/server.js'
import { dbSnapshot, expectProblem, expectServing } from '../helpers/ca.js'

// Every bad EST request: a 4xx with the right status and a problem+json detail, the
// challenges on a 401, nothing changed in the database, the join token still unspent.

let s: TestServer
let n = 0
const EST = '/.well-known/est'

beforeAll(async () => {
  s = await TestServer.start()
})
afterAll(() => s?.close())

async function fresh() {
  const spiffeId = `spiffe://example.org/est-bad/${++n}`
  const entryId = await s.createEntry(spiffeId)
  return { spiffeId, entryId, token: await s.joinToken(entryId) }
}

/** The base64 DER body of an openssl CSR (from its PEM). */
function estBody(csrPem: string): string {
  return csrPem.replace(/-----[A-Z ]+-----/g, '').trim()
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`

function enroll(
  body: string,
  headers: Record<string, string>,
  path = 'simpleenroll',
  as?: { certPem: string; keyPem: string },
): Promise<ApiResponse> {
  return s.call('POST', `${EST}/${path}`, {
    body,
    as,
    headers: { 'content-type': 'application/pkcs10', ...headers },
  })
}

async function refused(
  send: () => Promise<ApiResponse>,
  status: number,
  detail: RegExp,
): Promise<ApiResponse> {
  const before = await dbSnapshot(s)
  const r = await send()
  expect(expectProblem(r, status)).toMatch(detail)
  expect(await dbSnapshot(s)).toEqual(before)
  await expectServing(s)
  return r
}

/** The refusal spent nothing: the same token still enrols, once, over EST. */
async function stillWorks(w: { spiffeId: string; token: string }): Promise<void> {
  const csr = estBody(makeCsr({ san: `URI:${w.spiffeId}` }).csrPem)
  const r = await enroll(csr, { authorization: `Bearer ${w.token}` })
  expect(r.status, r.text).toBe(200)
}

function expectChallenges(r: ApiResponse): void {
  const values = [r.headers['www-authenticate']].flat()
  expect(values[0]).toMatch(/^Basic realm="certbound EST"/)
  expect(values[1]).toMatch(/^Bearer realm="certbound"/)
}

describe('EST bodies: 400 or 415, nothing spent', () => {
  const cases: {
    name: string
    body: () => string
    type?: string
    status: number
    detail: RegExp
  }[] = [
    { name: 'not base64', body: () => 'hello, I am a CSR!', status: 400, detail: /base64/ },
    {
      name: 'a PEM instead of base64 DER',
      body: () => makeCsr().csrPem,
      status: 400,
      detail: /PEM armour/,
    },
    {
      name: 'base64 of garbage, not a CSR',
      body: () => randomBytes(200).toString('base64'),
      status: 400,
      detail: /CSR|DER|ASN/i,
    },
    { name: 'an empty body', body: () => '', status: 400, detail: /empty/ },
    { name: 'only whitespace', body: () => ' \r\n\t', status: 400, detail: /empty/ },
    {
      name: 'base64 with a bad length',
      body: () => 'MIIB',
      status: 400,
      detail: /CSR|DER|ASN/i,
    },
    {
      name: 'application/json',
      body: () => '{"csr":"x"}',
      type: 'application/json',
      status: 415,
      detail: /application\/pkcs10/,
    },
    {
      name: 'no content type',
      body: () => 'MIIB',
      type: '',
      status: 415,
      detail: /no content type/,
    },
    {
      name: 'text/plain with a good CSR',
      body: () => estBody(makeCsr().csrPem),
      type: 'text/plain',
      status: 415,
      detail: /text\/plain/,
    },
  ]
  it.each(cases)('$name → $status', async ({ body, type, status, detail }) => {
    const w = await fresh()
    const headers: Record<string, string> = { authorization: `Bearer ${w.token}` }
    if (type !== '') headers['content-type'] = type ?? 'application/pkcs10'
    await refused(
      () => s.call('POST', `${EST}/simpleenroll`, { body: body(), headers }),
      status,
      detail,
    )
    await stillWorks(w)
  })

  it('a CSR naming another SPIFFE ID → 400 (the policy of /v1/enroll)', async () => {
    const w = await fresh()
    const csr = estBody(makeCsr({ san: 'URI:spiffe://example.org/someone-else' }).csrPem)
    await refused(() => enroll(csr, { authorization: `Bearer ${w.token}` }), 400, /someone-else/)
    await stillWorks(w)
  })

  it('a CSR with line breaks and spaces anywhere is fine (RFC 7030 §4.2.1)', async () => {
    const w = await fresh()
    const b64 = estBody(makeCsr({ san: `URI:${w.spiffeId}` }).csrPem).replace(/\n/g, '')
    const spaced = b64.replace(/(.{1,13})/g, '$1\r\n ')
    const r = await enroll(spaced, { authorization: `Bearer ${w.token}` })
    expect(r.status, r.text).toBe(200)
  })
})

describe('EST authentication: 401 with Basic and Bearer challenges, nothing spent', () => {
  it('no credentials', async () => {
    const w = await fresh()
    const csr = estBody(makeCsr({ san: `URI:${w.spiffeId}` }).csrPem)
    const r = await refused(() => enroll(csr, {}), 401, /Bearer|Basic/)
    expectChallenges(r)
    expect([r.headers['www-authenticate']].flat()[1]).not.toMatch(/error=/)
    await stillWorks(w)
  })

  it('Basic with another entry id than the join token’s', async () => {
    const w = await fresh()
    const other = await fresh()
    const csr = estBody(makeCsr({ san: `URI:${w.spiffeId}` }).csrPem)
    const r = await refused(
      () => enroll(csr, { authorization: basic(other.entryId, w.token) }),
      401,
      /entry id/,
    )
    expectChallenges(r)
    expect([r.headers['www-authenticate']].flat()[1]).not.toMatch(/error=/) // no bearer token sent
    await stillWorks(w)
    await stillWorks(other)
  })

  const shapes: { name: string; header: (token: string) => string }[] = [
    { name: 'Basic without a colon', header: (t) => `Basic ${Buffer.from(t).toString('base64')}` },
    { name: 'Basic with an empty user', header: (t) => basic('', t) },
    { name: 'Basic that is not base64', header: () => 'Basic %%%not-base64%%%' },
    { name: 'Basic with a password that is no join token', header: () => basic('x', 'a b') },
    {
      name: 'an unknown Bearer token',
      header: () => `Bearer ${randomBytes(32).toString('base64url')}`,
    },
    { name: 'a Bearer value of another shape', header: () => 'Bearer a.b.c' },
    { name: 'another scheme', header: (t) => `Token ${t}` },
  ]
  it.each(shapes)('$name', async ({ header }) => {
    const w = await fresh()
    const csr = estBody(makeCsr({ san: `URI:${w.spiffeId}` }).csrPem)
    const r = await refused(() => enroll(csr, { authorization: header(w.token) }), 401, /./)
    expectChallenges(r)
    await stillWorks(w)
  })

  it('a spent join token, as Bearer and as Basic', async () => {
    const w = await fresh()
    await stillWorks(w) // spends it
    const csr = estBody(makeCsr({ san: `URI:${w.spiffeId}` }).csrPem)
    for (const authorization of [`Bearer ${w.token}`, basic(w.entryId, w.token)]) {
      const r = await refused(() => enroll(csr, { authorization }), 401, /already used/)
      expectChallenges(r)
      const bearer = [r.headers['www-authenticate']].flat()[1]
      if (authorization.startsWith('Bearer')) expect(bearer).toMatch(/error="invalid_token"/)
      else expect(bearer).not.toMatch(/error=/)
    }
  })

  it('a bad token with a bad body is a 401, not a 400 (authentication first)', async () => {
    await refused(() => enroll('%%%', { authorization: 'Bearer nope' }), 401, /join token/)
  })
})

describe('simplereenroll: mTLS only', () => {
  it('without a client certificate → 401 with challenges', async () => {
    const csr = estBody(makeCsr().csrPem)
    const r = await refused(
      () => enroll(csr, { authorization: 'Bearer x' }, 'simplereenroll'),
      401,
      /client certificate/,
    )
    expectChallenges(r)
  })

  it('with a revoked certificate → 401', async () => {
    const cred = await s.enroll(`spiffe://example.org/est-bad/revoked`)
    const rv = await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
      as: s.admin,
      json: {},
    })
    expect(rv.status).toBe(200)
    const csr = estBody(makeCsr().csrPem)
    await refused(() => enroll(csr, {}, 'simplereenroll', cred), 401, /revoked/)
  })

  it('with the admin certificate → 403', async () => {
    const csr = estBody(makeCsr().csrPem)
    await refused(() => enroll(csr, {}, 'simplereenroll', s.admin), 403, /workload/)
  })

  it('with a good certificate but a bad body → 400 / 415, nothing issued', async () => {
    const cred = await s.enroll(`spiffe://example.org/est-bad/re-body`)
    await refused(() => enroll('not base64!', {}, 'simplereenroll', cred), 400, /base64/)
    await refused(
      () =>
        s.call('POST', `${EST}/simplereenroll`, {
          as: cred,
          json: { csr: makeCsr().csrPem },
        }),
      415,
      /application\/json/,
    )
  })
})

describe('other methods and paths', () => {
  it('GET simpleenroll → 405 with Allow: POST; an unknown EST operation → 404', async () => {
    const r = await s.call('GET', `${EST}/simpleenroll`)
    expectProblem(r, 405)
    expect(r.headers.allow).toBe('POST')
    expectProblem(await s.call('POST', `${EST}/serverkeygen`, { body: 'x' }), 404)
  })

  it('a body over server.max_body_bytes → 413', async () => {
    const w = await fresh()
    const big = 'A'.repeat(s.config.server.maxBodyBytes + 4)
    await refused(() => enroll(big, { authorization: `Bearer ${w.token}` }), 413, /over/)
    await stillWorks(w)
  })
})
