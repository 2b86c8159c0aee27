import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr, openssl, verifyLeaf, type CsrKey } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { enrollWith, extensionBlock, tempFiles, x509Field, x509Text } from '../helpers/ca.js'

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/
const BACKDATE_MS = 60_000

/** Splits a PEM bundle into its certificates (each with its END line and newline). */
function pemBlocks(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []
}

describe('enrolment: the issued certificate follows the contract profile', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  const cases: { key: CsrKey; keyUsage: string }[] = [
    { key: 'ec-p256', keyUsage: 'Digital Signature' },
    { key: 'ec-p384', keyUsage: 'Digital Signature' },
    { key: 'ed25519', keyUsage: 'Digital Signature' },
    { key: 'rsa-2048', keyUsage: 'Digital Signature, Key Encipherment' },
  ]

  it.each(cases)(
    '$key: 201, response shape, openssl verify, and the exact profile',
    async ({ key, keyUsage }) => {
      const spiffeId = `spiffe://example.org/enroll/${key}`
      const entryId = await s.createEntry(spiffeId, { dns_names: [`${key}.svc.example.org`] })
      const token = await s.joinToken(entryId)
      const { csrPem } = makeCsr({ key, san: `URI:${spiffeId},DNS:${key}.svc.example.org` })
      const ttlMs = 10 * 60_000
      const before = Date.now()
      const r = await enrollWith(s, token, { csr: csrPem, ttl: '10m' })
      const after = Date.now()
      expect(r.status, r.text).toBe(201)
      expect(r.headers['content-type']).toMatch(/^application\/json/)

      // Response shape (CONTRACT "Certificate response").
      expect(Object.keys(r.body).sort()).toEqual([
        'certificate',
        'chain',
        'generation',
        'lineage_id',
        'not_after',
        'not_before',
        'serial',
        'spiffe_id',
      ])
      expect(r.body.spiffe_id).toBe(spiffeId)
      // An enrolment starts a lineage (CONTRACT "Lineages").
      expect(r.body.generation).toBe(1)
      expect(r.body.lineage_id).toMatch(/^[0-9a-f-]{36}$/)
      expect(r.body.serial).toMatch(/^([0-9a-f]{2})+$/)
      expect(r.body.serial).toBe(x509Field(r.body.certificate, 'serial').toLowerCase())
      const blocks = pemBlocks(r.body.chain)
      expect(blocks).toHaveLength(2)
      expect(blocks[0]!.trim()).toBe(r.body.certificate.trim())
      expect(blocks[1]!.trim()).toBe(s.intermediatePem.trim())
      expect(r.body.not_before).toMatch(RFC3339)
      expect(r.body.not_after).toMatch(RFC3339)
      expect(new Date(r.body.not_before).getTime()).toBe(
        new Date(x509Field(r.body.certificate, 'startdate')).getTime(),
      )
      expect(new Date(r.body.not_after).getTime()).toBe(
        new Date(x509Field(r.body.certificate, 'enddate')).getTime(),
      )

      // openssl is the checker: strict chain verification, for both TLS purposes.
      const v = verifyLeaf(r.body.certificate, s.bundlePem, s.intermediatePem)
      expect(v.code, v.out).toBe(0)
      expect(v.out).toContain(': OK')
      const f = tempFiles({ root: s.bundlePem, inter: s.intermediatePem, leaf: r.body.certificate })
      for (const purpose of ['sslclient', 'sslserver']) {
        const p = openssl([
          'verify',
          '-x509_strict',
          '-purpose',
          purpose,
          '-CAfile',
          f.root!,
          '-untrusted',
          f.inter!,
          f.leaf!,
        ])
        expect(p.code, `${purpose}: ${p.out}`).toBe(0)
      }

      // The profile, as openssl reads it.
      const text = x509Text(r.body.certificate)
      // CONTRACT "Certificate profile additions": CN = the SPIFFE ID's path.
      const path = spiffeId.replace('spiffe://example.org/', '')
      expect(x509Field(r.body.certificate, 'subject')).toBe(`O = example.org, CN = ${path}`)
      expect(text).not.toContain('ignored-by-the-ca')
      // Where its status lives: the CRL and certificate of its own issuer, and the OCSP responder.
      const interKeyId = openssl(
        ['x509', '-noout', '-ext', 'subjectKeyIdentifier'],
        s.intermediatePem,
      )
        .out.split('\n')[1]!
        .trim()
        .replace(/:/g, '')
        .toLowerCase()
      const base = s.config.server.publicUrl
      expect(extensionBlock(text, 'X509v3 CRL Distribution Points')).toContain('Full Name:')
      expect(text).toContain(`URI:${base}/v1/ca/${interKeyId}/crl`)
      expect(text).toContain(`OCSP - URI:${base}/v1/ocsp`)
      expect(text).toContain(`CA Issuers - URI:${base}/v1/ca/${interKeyId}.crt`)
      expect(text).toContain('Version: 3 (0x2)')
      const san = extensionBlock(text, 'X509v3 Subject Alternative Name')
      expect(san).toContain(`URI:${spiffeId}`)
      expect(san).toContain(`DNS:${key}.svc.example.org`)
      expect(san.split('\n')[1]!.split(', ').sort()).toEqual([
        `DNS:${key}.svc.example.org`,
        `URI:${spiffeId}`,
      ])
      expect(extensionBlock(text, 'X509v3 Basic Constraints')).toBe(
        'X509v3 Basic Constraints: critical\nCA:FALSE',
      )
      expect(extensionBlock(text, 'X509v3 Key Usage')).toBe(
        `X509v3 Key Usage: critical\n${keyUsage}`,
      )
      const eku = extensionBlock(text, 'X509v3 Extended Key Usage')
        .split('\n')[1]!
        .split(', ')
        .sort()
      expect(eku).toEqual(['TLS Web Client Authentication', 'TLS Web Server Authentication'])
      const ski = extensionBlock(text, 'X509v3 Subject Key Identifier').split('\n')[1]!
      expect(ski).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/)
      // AKI = the intermediate's SKI: the leaf names its real issuer.
      const aki = extensionBlock(text, 'X509v3 Authority Key Identifier')
        .split('\n')[1]!
        .replace(/^keyid:/, '')
      const interSki = extensionBlock(
        x509Text(s.intermediatePem),
        'X509v3 Subject Key Identifier',
      ).split('\n')[1]
      expect(aki).toBe(interSki)
      // Signed by the P-256 intermediate: ECDSA with SHA-256, never SHA-1.
      expect(text.match(/Signature Algorithm: (.+)/g)).toEqual([
        'Signature Algorithm: ecdsa-with-SHA256',
        'Signature Algorithm: ecdsa-with-SHA256',
      ])
      expect(text).not.toMatch(/sha1/i)

      // Lifetime: notAfter ≤ now + ttl, notBefore = issue time − backdate (whole seconds).
      const notBefore = new Date(r.body.not_before).getTime()
      const notAfter = new Date(r.body.not_after).getTime()
      expect(notAfter).toBeLessThanOrEqual(after + ttlMs)
      expect(notAfter).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + ttlMs)
      expect(notAfter - notBefore).toBe(ttlMs + BACKDATE_MS)
      expect(notBefore).toBeLessThanOrEqual(after - BACKDATE_MS)
      expect(notBefore).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 - BACKDATE_MS)

      // Serial: positive, ≥ 64 bits.
      const serial = BigInt(`0x${r.body.serial}`)
      expect(serial >= 2n ** 63n).toBe(true)
      expect(Number.parseInt(r.body.serial.slice(0, 2), 16)).toBeLessThan(0x80)

      // The store has the same certificate.
      const stored = await s.store.certificates.get(r.body.serial)
      expect(stored?.spiffeId).toBe(spiffeId)
      expect(stored?.entryId).toBe(entryId)
      expect(stored?.status).toBe('valid')
      expect(Buffer.from(stored!.der).toString('base64')).toBe(
        r.body.certificate.replace(/-----[A-Z ]+-----|\s/g, ''),
      )
    },
  )

  it('a CSR without SANs gets the entry SPIFFE ID (and nothing else)', async () => {
    const spiffeId = 'spiffe://example.org/enroll/no-sans'
    const entryId = await s.createEntry(spiffeId, { dns_names: ['unused.example.org'] })
    const token = await s.joinToken(entryId)
    const { csrPem } = makeCsr()
    const r = await enrollWith(s, token, { csr: csrPem })
    expect(r.status, r.text).toBe(201)
    expect(r.body.spiffe_id).toBe(spiffeId)
    const san = extensionBlock(x509Text(r.body.certificate), 'X509v3 Subject Alternative Name')
    expect(san.split('\n')[1]).toBe(`URI:${spiffeId}`)
    expect(verifyLeaf(r.body.certificate, s.bundlePem, s.intermediatePem).code).toBe(0)
  })

  it('without a ttl: min(default_ttl, entry cap); a ttl equal to the cap is accepted', async () => {
    const entryId = await s.createEntry('spiffe://example.org/enroll/capped', { ttl: '10m' })
    let r = await enrollWith(s, await s.joinToken(entryId), { csr: makeCsr().csrPem })
    expect(r.status, r.text).toBe(201)
    const life = (b: any) =>
      new Date(b.not_after).getTime() - new Date(b.not_before).getTime() - BACKDATE_MS
    expect(life(r.body)).toBe(10 * 60_000)
    r = await enrollWith(s, await s.joinToken(entryId), { csr: makeCsr().csrPem, ttl: '10m' })
    expect(r.status, r.text).toBe(201)
    expect(life(r.body)).toBe(10 * 60_000)

    const uncapped = await s.createEntry('spiffe://example.org/enroll/uncapped')
    r = await enrollWith(s, await s.joinToken(uncapped), { csr: makeCsr().csrPem })
    expect(r.status, r.text).toBe(201)
    expect(life(r.body)).toBe(60 * 60_000) // certificates.default_ttl
    r = await enrollWith(s, await s.joinToken(uncapped), { csr: makeCsr().csrPem, ttl: '24h' })
    expect(r.status, r.text).toBe(201) // exactly certificates.max_ttl
    expect(life(r.body)).toBe(24 * 3_600_000)
    r = await enrollWith(s, await s.joinToken(uncapped), { csr: makeCsr().csrPem, ttl: '1s' })
    expect(r.status, r.text).toBe(201)
    expect(life(r.body)).toBe(1000)
  })

  it('every issued serial is unique and upper/lower case lookups find it', async () => {
    const cred = await s.enroll('spiffe://example.org/enroll/lookup')
    const upper = await s.call('GET', `/v1/certificates/${cred.serial.toUpperCase()}`, {
      as: s.admin,
    })
    expect(upper.status).toBe(200)
    expect(upper.body.serial).toBe(cred.serial)
  })

  it('GET /v1/bundle and /healthz need no client certificate', async () => {
    const bundle = await s.call('GET', '/v1/bundle')
    expect(bundle.status).toBe(200)
    expect(bundle.text).toBe(s.bundlePem)
    expect(pemBlocks(bundle.text)).toHaveLength(1)
    // The bundle is the self-signed root: openssl verifies the intermediate against it.
    const f = tempFiles({ root: bundle.text, inter: s.intermediatePem })
    expect(openssl(['verify', '-x509_strict', '-CAfile', f.root!, f.inter!]).code).toBe(0)
    const health = await s.call('GET', '/healthz')
    expect(health.status).toBe(200)
    expect(health.body).toEqual({ status: 'ok' })
  })

  it("subject CN: the entry's subject_cn, else the last 64 characters of the SPIFFE path", async () => {
    const named = await s.enroll('spiffe://example.org/cn/named', {
      entryId: await s.createEntry('spiffe://example.org/cn/named', { subject_cn: 'billing-api' }),
    })
    expect(x509Field(named.certPem, 'subject')).toBe('O = example.org, CN = billing-api')
    const long = `spiffe://example.org/cn/${'a'.repeat(50)}/${'b'.repeat(30)}`
    const tail = `${'a'.repeat(50)}/${'b'.repeat(30)}`.slice(-64)
    expect(x509Field((await s.enroll(long)).certPem, 'subject')).toBe(
      `O = example.org, CN = ${tail}`,
    )
    const entry = await s.call(
      'GET',
      `/v1/entries/${(await s.call('GET', '/v1/entries', { as: s.admin })).body.items.find((e: { spiffe_id: string }) => e.spiffe_id === 'spiffe://example.org/cn/named').id}`,
      { as: s.admin },
    )
    expect(entry.body.subject_cn).toBe('billing-api')
    const bad = await s.call('POST', '/v1/entries', {
      as: s.admin,
      json: { spiffe_id: 'spiffe://example.org/cn/bad', subject_cn: 'x'.repeat(65) },
    })
    expect(bad.status).toBe(400)
  })
})
