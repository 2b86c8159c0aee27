import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { childrenOf, readDer } from '../../src/x509/der-reader.js'
import * as w from '../../src/x509/der-writer.js'
import { foreignCredential, query } from '../helpers/ca.js'
import { curlOcsp, ocspRequest, readOcspResponse } from '../helpers/ocsp.js'
import { TestServer } from '../helpers/server.js'

// The OCSP responder against openssl ocsp and curl (RFC 6960, RFC 8954).
describe('OCSP responder', () => {
  let s: TestServer
  let trust: { bundlePem: string; issuerPem: string }
  beforeAll(async () => {
    s = await TestServer.start()
    trust = { bundlePem: s.bundlePem, issuerPem: s.intermediatePem }
  })
  afterAll(() => s.close())

  it('good, without a nonce: signed by a delegated responder, stored, the same bytes again', async () => {
    const cred = await s.enroll('spiffe://example.org/ocsp/good')
    const req = ocspRequest(cred.certPem, s.intermediatePem, { nonce: false })
    const a = await curlOcsp(s.url, s.bundlePem, req)
    expect(a.headers).toMatch(/content-type: application\/ocsp-response/i)
    expect(a.headers).toMatch(/cache-control: max-age=\d+, public/i)
    const r = readOcspResponse(a.der, trust, { certPem: cred.certPem })
    expect(r.out).toContain('Response verify OK')
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/cert\.pem: good/)
    expect(r.out).toMatch(/This Update: .+\n\s+Next Update: .+/)
    // The responder is a delegated one: id-kp-OCSPSigning and ocsp-nocheck, sent in `certs`.
    expect(r.out).toContain('OCSP Signing')
    expect(r.out).toContain('OCSP No Check')
    expect(r.out).toMatch(/Responder Id: [0-9A-F]{40}/)
    // Pre-signed: a second request is answered with the stored bytes, over GET too.
    const b = await curlOcsp(s.url, s.bundlePem, req)
    expect(b.der.equals(a.der)).toBe(true)
    const g = await curlOcsp(s.url, s.bundlePem, req, 'GET')
    expect(g.der.equals(a.der)).toBe(true)
    const rows = await query(s, 'SELECT status FROM ocsp_responses WHERE serial = ?', cred.serial)
    expect(rows).toEqual([{ status: 'good' }])
  })

  it('a nonce (openssl default) is echoed in an answer signed on demand', async () => {
    const cred = await s.enroll('spiffe://example.org/ocsp/nonce')
    const req = ocspRequest(cred.certPem, s.intermediatePem)
    const a = await curlOcsp(s.url, s.bundlePem, req)
    expect(a.headers).toMatch(/cache-control: no-store/i)
    const r = readOcspResponse(a.der, trust, { reqDer: req })
    expect(r.code, r.out).toBe(0)
    expect(r.out).toContain('Response verify OK')
    expect(r.out).toMatch(/OCSP Nonce:\s*\n\s*[0-9A-F]{4,}/)
    expect(r.out).not.toMatch(/WARNING: no nonce/i)
    expect(r.out).toMatch(/: good/)
    // A different nonce gets a different answer, never the stored one.
    const b = await curlOcsp(s.url, s.bundlePem, ocspRequest(cred.certPem, s.intermediatePem))
    expect(b.der.equals(a.der)).toBe(false)
  })

  it('revoked: the very next answer says revoked, with the time and reason', async () => {
    const cred = await s.enroll('spiffe://example.org/ocsp/revoked')
    const req = ocspRequest(cred.certPem, s.intermediatePem, { nonce: false })
    expect(readOcspResponse((await curlOcsp(s.url, s.bundlePem, req)).der, trust).out).toMatch(
      /good/,
    )
    const rv = await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
      as: s.admin,
      json: { reason: 'keyCompromise' },
    })
    expect(rv.status).toBe(200)
    const r = readOcspResponse((await curlOcsp(s.url, s.bundlePem, req)).der, trust, {
      certPem: cred.certPem,
    })
    expect(r.code, r.out).toBe(0)
    expect(r.out).toMatch(/cert\.pem: revoked/)
    expect(r.out).toMatch(/Reason: keyCompromise/)
    expect(r.out).toMatch(/Revocation Time: /)
    const n = readOcspResponse(
      (await curlOcsp(s.url, s.bundlePem, ocspRequest(cred.certPem, s.intermediatePem))).der,
      trust,
    )
    expect(n.out).toMatch(/revoked/)
  })

  it('unknown serial: unknown; another CA: unauthorized', async () => {
    const cred = await s.enroll('spiffe://example.org/ocsp/unknown')
    const req = ocspRequest(cred.certPem, s.intermediatePem, {
      nonce: false,
      serialHex: '4e0123456789abcdef',
    })
    const r = readOcspResponse((await curlOcsp(s.url, s.bundlePem, req)).der, trust)
    expect(r.out).toContain('Response verify OK')
    expect(r.out).toMatch(/Cert Status: unknown/)
    const foreign = foreignCredential()
    const other = ocspRequest(foreign.certPem, foreign.certPem, { nonce: false })
    const u = readOcspResponse((await curlOcsp(s.url, s.bundlePem, other)).der, trust)
    expect(u.out).toMatch(/Responder Error: unauthorized \(6\)/)
  })

  it('garbage, a bad GET path and an over-long nonce: malformedRequest, never a crash', async () => {
    for (const body of [
      Buffer.from('not an OCSP request'),
      Buffer.alloc(0),
      Buffer.of(0x30, 0x80),
    ]) {
      const r = readOcspResponse((await curlOcsp(s.url, s.bundlePem, body)).der, trust)
      expect(r.out).toMatch(/Responder Error: malformedrequest \(1\)/i)
    }
    const bad = await s.call('GET', '/v1/ocsp/%%%not-base64')
    expect(bad.status).toBe(200)
    expect(Buffer.from(bad.text, 'latin1').toString('hex')).toBe('3003' + '0a0101')
    // RFC 8954 §2.1: a nonce of more than 32 octets is refused with malformedRequest.
    const cred = await s.enroll('spiffe://example.org/ocsp/long-nonce')
    const plain = ocspRequest(cred.certPem, s.intermediatePem, { nonce: false })
    const withNonce = (n: number) => {
      // OCSPRequest { TBSRequest { requestList, [2] EXPLICIT Extensions { nonce } } }
      const tbs = childrenOf(plain, readDer(plain))[0]!
      const list = childrenOf(plain, tbs)[0]!
      const nonce = w.sequence(
        w.oid('1.3.6.1.5.5.7.48.1.2'),
        w.octetString(w.octetString(Buffer.alloc(n, 7))),
      )
      const requestList = plain.subarray(list.offset, list.end)
      return w.sequence(w.sequence(requestList, w.tlv(0xa2, w.sequence(nonce))))
    }
    const ok = readOcspResponse((await curlOcsp(s.url, s.bundlePem, withNonce(32))).der, trust)
    expect(ok.out).toContain('Response verify OK')
    const tooLong = readOcspResponse((await curlOcsp(s.url, s.bundlePem, withNonce(33))).der, trust)
    expect(tooLong.out).toMatch(/Responder Error: malformedrequest \(1\)/i)
    expect((await s.call('GET', '/healthz')).status).toBe(200)
  })
})
