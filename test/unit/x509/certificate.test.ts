import { X509Certificate } from 'node:crypto'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { generateKeyPair, spkiDer } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'
import { x5tS256 } from '../../../src/crypto/thumbprint.js'
import { isCAError } from '../../../src/errors.js'
import { buildCertificate, parseCertificate } from '../../../src/x509/certificate.js'
import { bytesToIp, ipToBytes } from '../../../src/x509/extensions.js'
import { derToPem } from '../../../src/x509/pem.js'
import { newSerial, serialToHex } from '../../../src/x509/serial.js'
import { makeChain, makeLeaf, openssl, tempDir } from '../../helpers/x509.js'
import type { TestChain } from '../../helpers/x509.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const SIG_NAMES: Record<string, string> = {
  'ec-p256': 'ecdsa-with-SHA256',
  'ec-p384': 'ecdsa-with-SHA384',
  ed25519: 'ED25519',
  'rsa-2048': 'sha256WithRSAEncryption',
}

describe.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const)(
  'chain with %s issuer keys',
  (type) => {
    let chain: TestChain
    let leafDer: Uint8Array
    let leafType: KeyType
    beforeAll(async () => {
      chain = await makeChain(type)
      // Leaf keys of another type than the CA's, to show the signature follows the issuer key.
      leafType = type === 'ec-p256' ? 'ed25519' : 'ec-p256'
      leafDer = makeLeaf(chain, (await generateKeyPair(leafType)).publicKey)
    })

    it('passes openssl verify -x509_strict', () => {
      const root = tmp.write(`root-${type}.pem`, chain.rootPem)
      const inter = tmp.write(`inter-${type}.pem`, chain.intermediatePem)
      const leaf = tmp.write(`leaf-${type}.pem`, derToPem(leafDer, 'CERTIFICATE'))
      const r = openssl(['verify', '-x509_strict', '-CAfile', root, '-untrusted', inter, leaf])
      expect(r.out).toContain(': OK')
      expect(r.code).toBe(0)
      // The intermediate alone also verifies against the root.
      expect(openssl(['verify', '-x509_strict', '-CAfile', root, inter]).code).toBe(0)
    })

    it('leaf has the profile extensions and the issuer-key signature algorithm', () => {
      const { out } = openssl(['x509', '-noout', '-text'], derToPem(leafDer, 'CERTIFICATE'))
      expect(out).toContain('Version: 3 (0x2)')
      expect(out).toContain(`Signature Algorithm: ${SIG_NAMES[type]}`)
      expect(out.toLowerCase()).not.toContain('sha1')
      expect(out).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/)
      expect(out).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/)
      expect(out).toMatch(
        /X509v3 Extended Key Usage: \s+TLS Web Client Authentication, TLS Web Server Authentication/,
      )
      expect(out).toMatch(
        /X509v3 Subject Alternative Name: \s+URI:spiffe:\/\/example.org\/w, DNS:a.example/,
      )
      expect(out).toContain('X509v3 Subject Key Identifier')
      expect(out).toContain('X509v3 Authority Key Identifier')
      expect(out).toContain('Subject: O = example.org\n')
    })

    it('CA certificates have the CA profiles', () => {
      const root = openssl(['x509', '-noout', '-text'], chain.rootPem).out
      expect(root).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE\n/)
      expect(root).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/)
      const inter = openssl(['x509', '-noout', '-text'], chain.intermediatePem).out
      expect(inter).toMatch(/X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/)
      expect(inter).toMatch(
        /X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/,
      )
      // Each attribute its own RDN (a multi-valued RDN would print as "O = x + CN = y").
      expect(inter).toContain(`Subject: O = example.org, CN = example.org intermediate (${type})`)
      expect(inter).toContain(`Issuer: O = example.org, CN = example.org root (${type})`)
    })

    it('parseCertificate reads back what was built', async () => {
      const view = parseCertificate(leafDer)
      expect(view.uris).toEqual(['spiffe://example.org/w'])
      expect(view.dnsNames).toEqual(['a.example'])
      expect(view.isCA).toBe(false)
      expect(view.thumbprint).toBe(x5tS256(leafDer))
      expect(view.subjectKeyId).toHaveLength(20)
      expect(view.authorityKeyId).toEqual(parseCertificate(chain.intermediate.certDer).subjectKeyId)
      expect(view.spkiSha256Hex).toMatch(/^[0-9a-f]{64}$/)
      const x = new X509Certificate(leafDer)
      expect(view.serialHex.toUpperCase()).toBe(x.serialNumber)
      expect(view.notAfter.getTime()).toBe(new Date(x.validTo).getTime())
      expect(Buffer.from(view.spkiDer)).toEqual(Buffer.from(spkiDer(x.publicKey)))
      expect(x.verify(parseCertificate(chain.intermediate.certDer).publicKey)).toBe(true)
      expect(parseCertificate(chain.root.certDer).isCA).toBe(true)
    })
  },
)

describe('buildCertificate details', () => {
  let chain: TestChain
  beforeAll(async () => {
    chain = await makeChain('ec-p256')
  })

  it('RSA leaf keys get keyEncipherment', async () => {
    const der = makeLeaf(chain, (await generateKeyPair('rsa-2048')).publicKey)
    const { out } = openssl(['x509', '-noout', '-text'], derToPem(der, 'CERTIFICATE'))
    expect(out).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment/)
  })

  it('server profile encodes IPv4 and IPv6 SANs as 4/16 octets', async () => {
    const der = buildCertificate({
      profile: 'server',
      subject: { organization: 'example.org', commonName: 'certbound' },
      publicKey: (await generateKeyPair('ec-p256')).publicKey,
      serial: newSerial(),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 3600_000),
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1', '::1', '2001:db8::ffff:1.2.3.4'],
      issuer: chain.intermediate,
    })
    const { out } = openssl(['x509', '-noout', '-text'], derToPem(der, 'CERTIFICATE'))
    expect(out).toMatch(
      /DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1, IP Address:2001:DB8:0:0:0:FFFF:102:304/,
    )
    // serverAuth and the certbound server marker, no clientAuth: the server's certificate is
    // never a client credential, and the marker is how clients recognise the CA server.
    expect(out).toMatch(
      /Extended Key Usage: *\n *TLS Web Server Authentication, 2\.25\.10365697400001155744715433452568906552\n/,
    )
    expect(parseCertificate(der).ipAddresses).toEqual([
      '127.0.0.1',
      '::1',
      '2001:db8::ffff:102:304',
    ])
    // node:crypto's own parser agrees.
    expect(new X509Certificate(der).checkIP('::1')).toBe('::1')
  })

  it('IP text ↔ octets follows RFC 5952 when printing', () => {
    const cases: [string, string][] = [
      ['::', '::'],
      ['1::', '1::'],
      ['fe80::1:0:0:0:1', 'fe80:0:0:1::1'],
      ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
      ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
      ['::ffff:10.0.0.1', '::ffff:a00:1'],
      ['10.1.2.3', '10.1.2.3'],
    ]
    for (const [input, printed] of cases) expect(bytesToIp(ipToBytes(input))).toBe(printed)
    expect(ipToBytes('::1')).toHaveLength(16)
    expect(() => ipToBytes('fe80::1%eth0')).toThrow(TypeError)
    expect(() => ipToBytes('example.org')).toThrow(TypeError)
  })

  it('uses UTCTime before 2050 and GeneralizedTime from 2050, without fractions', async () => {
    const der = buildCertificate({
      profile: 'leaf',
      subject: { organization: 'example.org' },
      publicKey: (await generateKeyPair('ec-p256')).publicKey,
      serial: newSerial(),
      notBefore: new Date(Date.UTC(2049, 11, 31, 23, 59, 59, 999)),
      notAfter: new Date(Date.UTC(2050, 0, 1, 0, 0, 1, 500)),
      uris: ['spiffe://example.org/w'],
      issuer: chain.intermediate,
    })
    const asn = openssl(['asn1parse', '-inform', 'DER'], der).out
    expect(asn).toContain('UTCTIME           :491231235959Z')
    expect(asn).toContain('GENERALIZEDTIME   :20500101000001Z')
    const view = parseCertificate(der)
    expect(view.notBefore.toISOString()).toBe('2049-12-31T23:59:59.000Z')
    expect(view.notAfter.toISOString()).toBe('2050-01-01T00:00:01.000Z')
  })

  it('refuses misuse with TypeError', async () => {
    const { publicKey, privateKey } = await generateKeyPair('ec-p256')
    const base = {
      subject: { organization: 'example.org' },
      publicKey,
      serial: newSerial(),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 3600_000),
      uris: ['spiffe://example.org/w'],
    }
    expect(() => buildCertificate({ ...base, profile: 'leaf' })).toThrow(TypeError)
    expect(() =>
      buildCertificate({ ...base, profile: 'leaf', issuer: chain.intermediate, uris: [] }),
    ).toThrow(/SAN/)
    const leafAsIssuer = { certDer: makeLeaf(chain, publicKey), privateKey }
    expect(() => buildCertificate({ ...base, profile: 'leaf', issuer: leafAsIssuer })).toThrow(
      /not a CA/,
    )
    const wrongKey = { certDer: chain.intermediate.certDer, privateKey }
    expect(() => buildCertificate({ ...base, profile: 'leaf', issuer: wrongKey })).toThrow(
      /does not match/,
    )
    expect(() =>
      buildCertificate({
        ...base,
        profile: 'leaf',
        issuer: chain.intermediate,
        notAfter: base.notBefore,
      }),
    ).toThrow(/notAfter/)
    expect(() =>
      buildCertificate({
        ...base,
        profile: 'leaf',
        issuer: chain.intermediate,
        uris: ['spiffe://ex/é'],
      }),
    ).toThrow(/ASCII/)
    expect(() =>
      buildCertificate({
        ...base,
        profile: 'leaf',
        issuer: chain.intermediate,
        serial: new Uint8Array([0x80]),
      }),
    ).toThrow(/positive/)
  })

  it('marks the SAN critical when the subject is empty (RFC 5280 §4.2.1.6)', async () => {
    const der = buildCertificate({
      profile: 'leaf',
      subject: {},
      publicKey: (await generateKeyPair('ec-p256')).publicKey,
      serial: newSerial(),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 3600_000),
      uris: ['spiffe://example.org/w'],
      issuer: chain.intermediate,
    })
    const { out } = openssl(['x509', '-noout', '-text'], derToPem(der, 'CERTIFICATE'))
    expect(out).toContain('X509v3 Subject Alternative Name: critical')
  })

  it('parseCertificate refuses garbage with ERR_PEM_INVALID', () => {
    const bad = [
      new Uint8Array(),
      new Uint8Array([0x30, 0x03, 0x02, 0x01]),
      Uint8Array.from([...chain.root.certDer, 0]),
    ]
    for (const der of bad) {
      let caught: unknown
      try {
        parseCertificate(der)
      } catch (e) {
        caught = e
      }
      expect(isCAError(caught, 'ERR_PEM_INVALID')).toBe(true)
    }
    expect(serialToHex(new Uint8Array([0x0a, 0xff]))).toBe('0aff')
  })
})
