import { randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { sleep, TestServer, type ApiResponse } from '../helpers/server.js'
import { dbSnapshot, enrollWith, expectProblem, expectServing } from '../helpers/ca.js'

/** Flips one bit in the last byte of the CSR's DER: inside the signature value. */
function corruptSignature(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64')
  der[der.length - 1]! ^= 0x01
  const b64 = der
    .toString('base64')
    .match(/.{1,64}/g)!
    .join('\n')
  return `-----BEGIN CERTIFICATE REQUEST-----\n${b64}\n-----END CERTIFICATE REQUEST-----\n`
}

describe('every bad input: 4xx problem+json, nothing changed, still serving', () => {
  let s: TestServer
  let n = 0
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  /** A fresh entry (optionally with DNS names / ttl cap) and one join token for it. */
  async function fresh(
    extra: Record<string, unknown> = {},
  ): Promise<{ spiffeId: string; entryId: string; token: string }> {
    const spiffeId = `spiffe://example.org/bad/${++n}`
    const entryId = await s.createEntry(spiffeId, extra)
    return { spiffeId, entryId, token: await s.joinToken(entryId) }
  }

  /**
   * Sends the bad request and checks the contract's refusal: status, problem+json with a
   * detail matching `detail`, an unchanged database, and a server that still answers.
   */
  async function refused(
    send: () => Promise<ApiResponse>,
    status: number | number[],
    detail: RegExp,
  ): Promise<ApiResponse> {
    const before = await dbSnapshot(s)
    const r = await send()
    expect(expectProblem(r, status)).toMatch(detail)
    expect(await dbSnapshot(s)).toEqual(before)
    await expectServing(s)
    return r
  }

  /** The join token was not spent by the refusal: it still enrols (once). */
  async function stillWorks(token: string, spiffeId: string): Promise<void> {
    const r = await enrollWith(s, token, { csr: makeCsr({ san: `URI:${spiffeId}` }).csrPem })
    expect(r.status, r.text).toBe(201)
    expect(r.body.spiffe_id).toBe(spiffeId)
  }

  describe('CSR problems → 400, token not spent', () => {
    const cases: {
      name: string
      csr: (spiffeId: string) => unknown
      detail: RegExp
      entry?: Record<string, unknown>
    }[] = [
      { name: 'not PEM', csr: () => 'hello, I am a CSR', detail: /PEM/ },
      { name: 'a PEM of another type', csr: () => makeCsr().keyPem, detail: /CERTIFICATE REQUEST/ },
      {
        name: 'garbage DER inside a PEM',
        csr: () =>
          `-----BEGIN CERTIFICATE REQUEST-----\n${randomBytes(180).toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`,
        detail: /CSR/,
      },
      {
        name: 'bad base64 inside a PEM',
        csr: () =>
          '-----BEGIN CERTIFICATE REQUEST-----\n!!!not base64!!!\n-----END CERTIFICATE REQUEST-----\n',
        detail: /base64/,
      },
      {
        name: 'a corrupted signature (no proof of possession)',
        csr: (id) => corruptSignature(makeCsr({ san: `URI:${id}` }).csrPem),
        detail: /signature/i,
      },
      {
        name: 'a corrupted RSA signature',
        csr: (id) => corruptSignature(makeCsr({ key: 'rsa-2048', san: `URI:${id}` }).csrPem),
        detail: /signature/i,
      },
      {
        name: 'a corrupted Ed25519 signature',
        csr: (id) => corruptSignature(makeCsr({ key: 'ed25519', san: `URI:${id}` }).csrPem),
        detail: /signature/i,
      },
      {
        name: 'a URI SAN with another SPIFFE ID',
        csr: () => makeCsr({ san: 'URI:spiffe://example.org/other' }).csrPem,
        detail: /spiffe:\/\/example\.org\/other/,
      },
      {
        name: 'the right URI SAN plus another one',
        csr: (id) => makeCsr({ san: `URI:${id},URI:spiffe://example.org/other` }).csrPem,
        detail: /URI SAN/,
      },
      {
        name: 'a DNS name the entry does not allow',
        csr: (id) => makeCsr({ san: `URI:${id},DNS:evil.example.com` }).csrPem,
        detail: /evil\.example\.com/,
        entry: { dns_names: ['good.example.com'] },
      },
      {
        name: 'a DNS name on an entry without DNS names',
        csr: () => makeCsr({ san: 'DNS:good.example.com' }).csrPem,
        detail: /good\.example\.com/,
      },
      {
        name: 'an IP address SAN',
        csr: (id) => makeCsr({ san: `URI:${id},IP:10.0.0.1` }).csrPem,
        detail: /IP/,
      },
      {
        name: 'an e-mail SAN',
        csr: (id) => makeCsr({ san: `URI:${id},email:a@example.org` }).csrPem,
        detail: /mail/,
      },
      {
        name: 'CA:true',
        csr: (id) =>
          makeCsr({ san: `URI:${id}`, extra: ['-addext', 'basicConstraints=critical,CA:TRUE'] })
            .csrPem,
        detail: /CA:true/,
      },
      {
        name: 'RSA-1024',
        csr: (id) => makeCsr({ key: 'rsa-1024', san: `URI:${id}` }).csrPem,
        detail: /1024/,
      },
      {
        name: 'secp256k1',
        csr: (id) => makeCsr({ key: 'secp256k1', san: `URI:${id}` }).csrPem,
        detail: /secp256k1/,
      },
      { name: 'csr missing', csr: () => undefined, detail: /csr/ },
      { name: 'csr not a string', csr: () => 42, detail: /csr/ },
      { name: 'csr an object', csr: () => ({ pem: 'x' }), detail: /csr/ },
    ]
    it.each(cases)('$name', async ({ csr, detail, entry }) => {
      const { spiffeId, token } = await fresh(entry)
      const body = csr(spiffeId)
      await refused(
        () => enrollWith(s, token, body === undefined ? {} : { csr: body }),
        400,
        detail,
      )
      await stillWorks(token, spiffeId)
    })
  })

  describe('ttl problems → 400, token not spent', () => {
    const cases: { name: string; ttl: unknown; entry?: Record<string, unknown>; detail: RegExp }[] =
      [
        { name: 'over certificates.max_ttl (48h > 24h)', ttl: '48h', detail: /24h|1d/ },
        { name: 'one second over max_ttl', ttl: '86401s', detail: /24h|1d/ },
        { name: "over the entry's own cap", ttl: '11m', entry: { ttl: '10m' }, detail: /10m/ },
        { name: 'no unit', ttl: '10', detail: /ttl/ },
        { name: 'an unknown unit', ttl: '10x', detail: /ttl/ },
        { name: 'words', ttl: 'ten minutes', detail: /ttl/ },
        { name: 'zero', ttl: '0s', detail: /ttl/ },
        { name: 'negative', ttl: '-5m', detail: /ttl/ },
        { name: 'a number', ttl: 600, detail: /ttl/ },
        { name: 'an empty string', ttl: '', detail: /ttl/ },
        { name: 'fractional', ttl: '1.5h', detail: /ttl/ },
      ]
    it.each(cases)('$name', async ({ ttl, entry, detail }) => {
      const { spiffeId, token } = await fresh(entry)
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      await refused(() => enrollWith(s, token, { csr, ttl }), 400, detail)
      await stillWorks(token, spiffeId)
    })
  })

  describe('body problems', () => {
    it('malformed JSON → 400', async () => {
      const { spiffeId, token } = await fresh()
      await refused(
        () =>
          s.call('POST', '/v1/enroll', {
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            body: '{"csr": ',
          }),
        400,
        /JSON/,
      )
      await stillWorks(token, spiffeId)
    })

    it('a JSON array body → 400', async () => {
      const { spiffeId, token } = await fresh()
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      await refused(() => enrollWith(s, token, [{ csr }]), 400, /object/)
      await stillWorks(token, spiffeId)
    })

    it('an empty body → 400', async () => {
      const { spiffeId, token } = await fresh()
      await refused(
        () =>
          s.call('POST', '/v1/enroll', { headers: { authorization: `Bearer ${token}` }, body: '' }),
        400,
        /JSON/,
      )
      await stillWorks(token, spiffeId)
    })

    it('JSON null / a string → 400', async () => {
      const { spiffeId, token } = await fresh()
      await refused(() => enrollWith(s, token, null), 400, /object/)
      await refused(() => enrollWith(s, token, 'csr'), 400, /object/)
      await stillWorks(token, spiffeId)
    })

    it('a body over 64 KiB (with content-length) → 413 or 400', async () => {
      const { spiffeId, token } = await fresh()
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      await refused(
        () => enrollWith(s, token, { csr, padding: 'x'.repeat(70 * 1024) }),
        [413, 400],
        /bytes|large/,
      )
      await stillWorks(token, spiffeId)
    })

    it('a chunked body over 64 KiB (no content-length) → 413 or 400', async () => {
      const { spiffeId, token } = await fresh()
      const before = await dbSnapshot(s)
      const chunks = [
        Buffer.from('{"csr":"'),
        ...Array.from({ length: 80 }, () => Buffer.alloc(1024, 0x41)),
        Buffer.from('"}'),
      ]
      const res = await request(`${s.url}/v1/enroll`, {
        method: 'POST',
        dispatcher: s.agent(),
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: Readable.from(chunks),
      })
      const text = await res.body.text()
      expect([413, 400], text).toContain(res.statusCode)
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
      expect(JSON.parse(text).detail).toMatch(/bytes|large/)
      expect(await dbSnapshot(s)).toEqual(before)
      await expectServing(s)
      await stillWorks(token, spiffeId)
    })

    it('a chunked body under the limit is read whole (enrolment and an OAuth form)', async () => {
      const { spiffeId, token } = await fresh()
      const { csrPem, keyPem } = makeCsr({ san: `URI:${spiffeId}` })
      // 1 KB pieces without a content-length: undici sends them chunked.
      const pieces = (text: string) =>
        Readable.from(
          Array.from({ length: Math.ceil(text.length / 1000) }, (_, i) =>
            Buffer.from(text.slice(i * 1000, (i + 1) * 1000)),
          ),
        )
      const res = await request(`${s.url}/v1/enroll`, {
        method: 'POST',
        dispatcher: s.agent(),
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: pieces(JSON.stringify({ csr: csrPem, padding: 'x'.repeat(40 * 1024) })),
      })
      const text = await res.body.text()
      expect(res.statusCode, text).toBe(201)
      const scope = Array.from({ length: 10 }, (_, i) => String(i).repeat(100)).join(' ')
      const grant = await request(`${s.url}/oauth/token`, {
        method: 'POST',
        dispatcher: s.agent({ certPem: JSON.parse(text).chain, keyPem }),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: pieces(`grant_type=client_credentials&scope=${scope}`),
      })
      const granted = await grant.body.text()
      // The form was read whole: the whole scope made it to the grant.
      expect(grant.statusCode, granted).toBe(200)
      expect(JSON.parse(granted).scope).toBe(scope)
    })

    it('a body with a content-length in many pieces is read whole, and a leading BOM is dropped', async () => {
      const { spiffeId, token } = await fresh()
      const { csrPem } = makeCsr({ san: `URI:${spiffeId}` })
      // A BOM, then the JSON, in 1 KB writes under one content-length: read from node's
      // request across several reads, decoded as Request.text() decoded it.
      const body = Buffer.concat([
        Buffer.from([0xef, 0xbb, 0xbf]),
        Buffer.from(JSON.stringify({ csr: csrPem, padding: 'x'.repeat(20 * 1024) })),
      ])
      const res = await request(`${s.url}/v1/enroll`, {
        method: 'POST',
        dispatcher: s.agent(),
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': String(body.length),
        },
        body: Readable.from(
          Array.from({ length: Math.ceil(body.length / 1000) }, (_, i) =>
            body.subarray(i * 1000, (i + 1) * 1000),
          ),
        ),
      })
      const text = await res.body.text()
      expect(res.statusCode, text).toBe(201)
    })

    it('a body over 64 KiB on an admin route → 413 or 400', async () => {
      await refused(
        () =>
          s.call('POST', '/v1/entries', {
            as: s.admin,
            json: {
              spiffe_id: 'spiffe://example.org/bad/huge',
              dns_names: Array(9000).fill('a.example.com'),
            },
          }),
        [413, 400],
        /bytes|large/,
      )
    })
  })

  describe('join token problems → 401', () => {
    /** `refused`, plus the bearer challenge a 401 must carry (RFC 9110 §15.5.2, RFC 6750 §3). */
    const refused401 = async (send: () => Promise<ApiResponse>, sentCredentials = true) => {
      const r = await refused(send, 401, /join token/)
      expect(r.headers['www-authenticate']).toBe(
        sentCredentials
          ? 'Bearer realm="certbound", error="invalid_token"'
          : 'Bearer realm="certbound"',
      )
      return r
    }

    it('missing Authorization', async () => {
      const { spiffeId, token } = await fresh()
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      await refused401(() => s.call('POST', '/v1/enroll', { json: { csr } }), false)
      await stillWorks(token, spiffeId)
    })

    it('not a Bearer scheme, an empty bearer, a token with bad characters', async () => {
      const { spiffeId, token } = await fresh()
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      for (const authorization of [
        `Basic ${token}`,
        'Bearer ',
        `Bearer ${token}!`,
        `Bearer${token}`,
        `Bearer ${token} extra`,
        token,
      ]) {
        await refused401(() =>
          s.call('POST', '/v1/enroll', { headers: { authorization }, json: { csr } }),
        )
      }
      await stillWorks(token, spiffeId)
    })

    it('the scheme is case-insensitive (RFC 7235 §2.1): "bearer" works', async () => {
      const { spiffeId, token } = await fresh()
      const r = await s.call('POST', '/v1/enroll', {
        headers: { authorization: `bearer  ${token}` },
        json: { csr: makeCsr({ san: `URI:${spiffeId}` }).csrPem },
      })
      expect(r.status, r.text).toBe(201)
    })

    it('an unknown token, and a known id with a wrong secret', async () => {
      const { spiffeId, token } = await fresh()
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      await refused401(() =>
        enrollWith(s, randomBytes(44).toString('base64url').slice(0, 59), { csr }),
      )
      const forged = token.slice(0, 16) + randomBytes(32).toString('base64url')
      expect(forged).toHaveLength(token.length)
      await refused401(() => enrollWith(s, forged, { csr }))
      await stillWorks(token, spiffeId)
    })

    it('a used join token', async () => {
      const { spiffeId, token } = await fresh()
      await stillWorks(token, spiffeId)
      await refused401(() =>
        enrollWith(s, token, { csr: makeCsr({ san: `URI:${spiffeId}` }).csrPem }),
      )
    })

    it('an expired join token (ttl 1s, real wait)', async () => {
      const spiffeId = `spiffe://example.org/bad/${++n}`
      const entryId = await s.createEntry(spiffeId)
      const token = await s.joinToken(entryId, '1s')
      const csr = makeCsr({ san: `URI:${spiffeId}` }).csrPem
      await sleep(1100)
      await refused401(() => enrollWith(s, token, { csr }))
    })
  })

  describe('join-token and entry admin problems', () => {
    it('unknown entry id for join-tokens → 404', async () => {
      await refused(
        () =>
          s.call('POST', '/v1/entries/00000000-0000-4000-8000-000000000000/join-tokens', {
            as: s.admin,
            json: {},
          }),
        404,
        /00000000-0000-4000-8000-000000000000/,
      )
    })

    it('join token ttl: bad syntax and over the maximum → 400', async () => {
      const { entryId } = await fresh()
      for (const ttl of ['soon', '31d', 5]) {
        await refused(
          () =>
            s.call('POST', `/v1/entries/${entryId}/join-tokens`, { as: s.admin, json: { ttl } }),
          400,
          /ttl/,
        )
      }
    })

    it('unknown fields, malformed JSON and arrays on admin routes → 400', async () => {
      const { entryId } = await fresh()
      await refused(
        () =>
          s.call('POST', `/v1/entries/${entryId}/join-tokens`, {
            as: s.admin,
            json: { tll: '1h' },
          }),
        400,
        /tll/,
      )
      await refused(
        () =>
          s.call('POST', '/v1/entries', {
            as: s.admin,
            body: '{"spiffe_id":',
            headers: { 'content-type': 'application/json' },
          }),
        400,
        /JSON/,
      )
      await refused(
        () => s.call('POST', '/v1/entries', { as: s.admin, json: ['spiffe://example.org/x'] }),
        400,
        /object/,
      )
      await refused(
        () => s.call('PATCH', `/v1/entries/${entryId}`, { as: s.admin, json: { enabled: 'no' } }),
        400,
        /enabled/,
      )
      await refused(
        () => s.call('PATCH', `/v1/entries/${entryId}`, { as: s.admin, json: { ttl: '48h' } }),
        400,
        /ttl/,
      )
      await refused(
        () =>
          s.call('PATCH', `/v1/entries/${entryId}`, {
            as: s.admin,
            json: { dns_names: ['not a name'] },
          }),
        400,
        /dns_names/,
      )
      await refused(
        () => s.call('PATCH', '/v1/entries/nope', { as: s.admin, json: { enabled: false } }),
        404,
        /nope/,
      )
    })

    it('certificate admin routes: bad serial, bad status filter, bad cursor, bad limit → 400', async () => {
      await refused(() => s.call('GET', '/v1/certificates/xyz', { as: s.admin }), 400, /serial/)
      await refused(
        () => s.call('GET', '/v1/certificates?status=alive', { as: s.admin }),
        400,
        /status/,
      )
      await refused(
        () => s.call('GET', '/v1/certificates?cursor=bogus', { as: s.admin }),
        400,
        /cursor/,
      )
      await refused(() => s.call('GET', '/v1/entries?limit=0', { as: s.admin }), 400, /limit/)
      await refused(() => s.call('GET', '/v1/entries?limit=abc', { as: s.admin }), 400, /limit/)
      await refused(
        () => s.call('POST', '/v1/certificates/00ff/revoke', { as: s.admin, json: {} }),
        404,
        /00ff/,
      )
    })

    it('an unknown route → 404 problem+json', async () => {
      await refused(() => s.call('GET', '/v1/nothing-here'), 404, /nothing-here/)
    })

    it('a known route with another method → 405 with Allow (RFC 9110 §15.5.6)', async () => {
      const cases: [string, string, string][] = [
        ['DELETE', '/healthz', 'GET, HEAD'],
        ['POST', '/v1/crl', 'GET, HEAD'],
        ['DELETE', '/v1/entries/some-id', 'GET, HEAD, PATCH'],
        ['GET', '/v1/certificates/00ff/revoke', 'POST'],
      ]
      for (const [method, path, allow] of cases) {
        const r = await refused(() => s.call(method, path), 405, /takes/)
        expect(r.headers.allow).toBe(allow)
      }
      // The OAuth endpoints answer in RFC 6749 §5.2 form.
      const before = await dbSnapshot(s)
      const r = await s.call('GET', '/oauth/token')
      expect(r.status).toBe(405)
      expect(r.headers.allow).toBe('POST')
      expect(r.body.error).toBe('invalid_request')
      expect(await dbSnapshot(s)).toEqual(before)
    })
  })
})

describe('certificates.allowed_key_types is enforced', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start({ certificates: { allowed_key_types: ['ec-p256', 'ec-p384'] } })
  })
  afterAll(() => s.close())

  it.each(['ed25519', 'rsa-2048'] as const)(
    'a %s CSR → 400 naming the allowed types; the token still works',
    async (key) => {
      const entryId = await s.createEntry(`spiffe://example.org/keytypes/${key}`)
      const token = await s.joinToken(entryId)
      const before = await dbSnapshot(s)
      const r = await enrollWith(s, token, { csr: makeCsr({ key }).csrPem })
      const detail = expectProblem(r, 400)
      expect(detail).toContain(key)
      expect(detail).toContain('ec-p256, ec-p384')
      expect(await dbSnapshot(s)).toEqual(before)
      expect((await enrollWith(s, token, { csr: makeCsr({ key: 'ec-p384' }).csrPem })).status).toBe(
        201,
      )
    },
  )
})
