// Equivalence of the template encoder (template.ts) with the pkijs encoder (certificate.ts):
// byte-identical output for every issuer key type, subject key type, profile, SAN combination,
// subject and date; the same reading by pkijs (parseCertificate) and node's X509Certificate;
// openssl verify -x509_strict on a sample. ECDSA signatures are randomised, so for ECDSA
// issuers the pkijs certificate is re-encoded by pkijs with the template's signature value.
import { X509Certificate } from 'node:crypto'

import * as asn1js from 'asn1js'
import fc from 'fast-check'
import * as pkijs from 'pkijs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { KEY_TYPES } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'
import { buildCertificate, parseCertificate } from '../../../src/x509/certificate.js'
import type { CertificateParams, Issuer } from '../../../src/x509/certificate.js'
import { derToPem } from '../../../src/x509/pem.js'
import { PROFILES, withUrls } from '../../../src/x509/profiles.js'
import { buildCertificateFast } from '../../../src/x509/template.js'
import { FIXTURE_KEYS } from './fixture-keys.js'
import { openssl, tempDir } from '../../helpers/x509.js'

const HOUR = 3600_000
const tmp = tempDir()
afterAll(() => tmp.cleanup())

interface Chain {
  readonly rootDer: Uint8Array
  readonly intermediate: Issuer
}
const chains = new Map<KeyType, Chain>()
beforeAll(() => {
  const now = Date.now()
  for (const type of KEY_TYPES) {
    const [rootKey, interKey] = FIXTURE_KEYS[type]
    const rootDer = buildCertificate({
      profile: 'root',
      subject: { organization: 'example.org', commonName: `root ${type}` },
      publicKey: rootKey!.publicKey,
      serial: Uint8Array.of(1),
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 1000 * 24 * HOUR),
      selfPrivateKey: rootKey!.privateKey,
    })
    const interDer = buildCertificate({
      profile: 'intermediate',
      subject: { organization: 'example.org', commonName: `issuing ${type}` },
      publicKey: interKey!.publicKey,
      serial: Uint8Array.of(2),
      notBefore: new Date(now - HOUR),
      notAfter: new Date(now + 1000 * 24 * HOUR),
      issuer: { certDer: rootDer, privateKey: rootKey!.privateKey },
    })
    chains.set(type, {
      rootDer,
      intermediate: { certDer: interDer, privateKey: interKey!.privateKey },
    })
  }
})

const deterministic = (t: KeyType): boolean => t !== 'ec-p256' && t !== 'ec-p384'

/** The pkijs certificate re-encoded by pkijs with another signature value. */
function withSignature(der: Uint8Array, signature: Uint8Array): Uint8Array {
  const cert = new pkijs.Certificate({ schema: asn1js.fromBER(der).result })
  cert.signatureValue = new asn1js.BitString({ valueHex: signature })
  return new Uint8Array(cert.toSchema(false).toBER())
}

function signatureOf(der: Uint8Array): Uint8Array {
  const cert = new pkijs.Certificate({ schema: asn1js.fromBER(der).result })
  return new Uint8Array(cert.signatureValue.valueBlock.valueHexView)
}

// --- arbitraries --------------------------------------------------------------------------

const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,12}[a-z0-9])?$/)
const dnsName = fc.array(label, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'))
const uri = fc
  .array(fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/), { minLength: 1, maxLength: 4 })
  .map((p) => `spiffe://example.org/${p.join('/')}`)
const ipv4 = fc.ipV4()
const ipv6 = fc.ipV6()
const ip = fc.oneof(ipv4, ipv6)
const attr = fc.option(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), {
  nil: undefined,
})
// Positive, non-zero, minimal INTEGER contents: 01..7F first, or 00 before a high bit.
const serial = fc.oneof(
  fc
    .tuple(fc.integer({ min: 1, max: 0x7f }), fc.uint8Array({ maxLength: 19 }))
    .map(([first, rest]) => Uint8Array.of(first, ...rest)),
  fc
    .tuple(fc.integer({ min: 0x80, max: 0xff }), fc.uint8Array({ maxLength: 18 }))
    .map(([second, rest]) => Uint8Array.of(0, second, ...rest)),
)
// 1950..2100 with milliseconds: both Time types and the rounding to whole seconds.
const start = fc.integer({ min: Date.UTC(1950, 0, 1), max: Date.UTC(2100, 0, 1) })

const profileCase = fc.oneof(
  fc.record({
    profile: fc.constantFrom(PROFILES.leaf, withUrls(PROFILES.leaf, aiaUrls())),
    uris: uri.map((u) => [u]),
    dnsNames: fc.array(dnsName, { maxLength: 3 }),
    ipAddresses: fc.array(ip, { maxLength: 2 }),
  }),
  fc.record({ profile: fc.constant(PROFILES.admin), uris: uri.map((u) => [u]) }),
  fc
    .record({
      profile: fc.constant(PROFILES.server),
      dnsNames: fc.array(dnsName, { maxLength: 3 }),
      ipAddresses: fc.array(ip, { maxLength: 3 }),
    })
    .filter((r) => r.dnsNames.length + r.ipAddresses.length > 0),
  fc.record({ profile: fc.constant(PROFILES['ocsp-signer']) }),
)

function aiaUrls() {
  return {
    ocsp: ['http://ocsp.example.org/'],
    caIssuers: ['http://ca.example.org/ca.der'],
    crl: ['http://ca.example.org/ca.crl'],
  }
}

const params = fc
  .record({
    issuerType: fc.constantFrom(...KEY_TYPES),
    subjectType: fc.constantFrom(...KEY_TYPES),
    keyIndex: fc.integer({ min: 0, max: 2 }),
    names: profileCase,
    organization: attr,
    commonName: attr,
    serial,
    notBefore: start,
    lifetime: fc.integer({ min: 1000, max: 20 * 365 * 24 * HOUR }),
  })
  .map((r) => {
    const ocsp = r.names.profile.name === 'ocsp-signer'
    const lifetime = ocsp ? Math.min(r.lifetime, 29 * 24 * HOUR) : r.lifetime
    const p: CertificateParams = {
      ...r.names,
      subject: {
        organization: r.organization,
        commonName: ocsp ? (r.commonName ?? 'OCSP responder') : r.commonName,
      },
      publicKey: FIXTURE_KEYS[r.subjectType][r.keyIndex]!.publicKey,
      serial: r.serial,
      notBefore: new Date(r.notBefore),
      notAfter: new Date(r.notBefore + lifetime),
      issuer: chains.get(r.issuerType)!.intermediate,
    }
    return { issuerType: r.issuerType, p }
  })

// --- properties ---------------------------------------------------------------------------

function nodeView(der: Uint8Array) {
  const x = new X509Certificate(der)
  return {
    subject: x.subject,
    issuer: x.issuer,
    san: x.subjectAltName,
    serial: x.serialNumber,
    validFrom: x.validFrom,
    validTo: x.validTo,
    keyUsage: x.keyUsage,
    infoAccess: x.infoAccess,
    ca: x.ca,
    publicKey: x.publicKey.export({ type: 'spki', format: 'der' }).toString('hex'),
  }
}

describe('template encoder ≡ pkijs encoder', () => {
  it('byte-identical, read identically, for every key type, profile and SAN combination', () => {
    fc.assert(
      fc.property(params, ({ issuerType, p }) => {
        const fast = buildCertificateFast(p)
        const ref = buildCertificate(p)
        if (deterministic(issuerType)) expect(Buffer.from(fast)).toEqual(Buffer.from(ref))
        // pkijs re-encodes its own certificate unchanged, and with the template's signature
        // value it produces exactly the template's bytes.
        expect(Buffer.from(withSignature(ref, signatureOf(ref)))).toEqual(Buffer.from(ref))
        expect(Buffer.from(withSignature(ref, signatureOf(fast)))).toEqual(Buffer.from(fast))
        const issuerCert = new X509Certificate(p.issuer!.certDer)
        expect(new X509Certificate(fast).verify(issuerCert.publicKey)).toBe(true)
        expect(new X509Certificate(fast).checkIssued(issuerCert)).toBe(true)
        const { der: _a, thumbprint: _b, publicKey: _e, ...fastView } = parseCertificate(fast)
        const { der: _c, thumbprint: _d, publicKey: _f, ...refView } = parseCertificate(ref)
        expect(fastView).toEqual(refView)
        expect(nodeView(fast)).toEqual(nodeView(ref))
        expect(fastView.uris).toEqual(p.uris ?? [])
        expect(fastView.dnsNames).toEqual(p.dnsNames ?? [])
      }),
      { numRuns: 250 },
    )
  })

  it('refuses misuse with the same TypeErrors', () => {
    const issuer = chains.get('ec-p256')!.intermediate
    const base: CertificateParams = {
      profile: 'leaf',
      subject: { organization: 'example.org' },
      publicKey: FIXTURE_KEYS['ec-p256'][2]!.publicKey,
      serial: Uint8Array.of(5),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + HOUR),
      uris: ['spiffe://example.org/w'],
      issuer,
    }
    const bad: Partial<CertificateParams>[] = [
      { uris: [] },
      { uris: ['spiffe://ex/é'] },
      { dnsNames: ['a\nb'] },
      { ipAddresses: ['example.org'] },
      { serial: Uint8Array.of(0x80) },
      { serial: Uint8Array.of(0, 1) },
      { notAfter: base.notBefore },
      { subject: { organization: '' } },
      { issuer: undefined },
      { issuer: { certDer: issuer.certDer, privateKey: FIXTURE_KEYS['ec-p256'][2]!.privateKey } },
      { issuer: { certDer: chains.get('ec-p256')!.rootDer, privateKey: issuer.privateKey } },
      { profile: 'server' },
      { profile: 'nope' as 'leaf' },
    ]
    for (const change of bad) {
      const p = { ...base, ...change }
      let expected = ''
      try {
        buildCertificate(p)
      } catch (e) {
        expected = (e as Error).message
      }
      expect(expected, JSON.stringify(change)).not.toBe('')
      expect(() => buildCertificateFast(p)).toThrow(TypeError)
      expect(() => buildCertificateFast(p)).toThrow(expected)
    }
    expect(() => buildCertificateFast({ ...base, profile: 'root' })).toThrow(/self-signed/)
  })

  it('a sample for every issuer key type and profile passes openssl verify -x509_strict', () => {
    const now = Date.now()
    for (const type of KEY_TYPES) {
      const chain = chains.get(type)!
      const root = tmp.write(`root-${type}.pem`, derToPem(chain.rootDer, 'CERTIFICATE'))
      const inter = tmp.write(
        `inter-${type}.pem`,
        derToPem(chain.intermediate.certDer, 'CERTIFICATE'),
      )
      const samples = fc.sample(params, { numRuns: 6, seed: 42 }).map(({ p }, i) => {
        const der = buildCertificateFast({
          ...p,
          issuer: chain.intermediate,
          notBefore: new Date(now - 60_000),
          notAfter: new Date(now + HOUR),
        })
        return tmp.write(`leaf-${type}-${i}.pem`, derToPem(der, 'CERTIFICATE'))
      })
      const r = openssl([
        'verify',
        '-x509_strict',
        '-CAfile',
        root,
        '-untrusted',
        inter,
        ...samples,
      ])
      expect(r.out.match(/: OK$/gm), r.out).toHaveLength(samples.length)
      expect(r.code).toBe(0)
    }
  })
})
