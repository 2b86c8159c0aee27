import { X509Certificate } from 'node:crypto'

import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { profileForKind } from '../../../src/ca/profiles.js'
import { buildCertificate } from '../../../src/x509/certificate.js'
import type { CertificateParams } from '../../../src/x509/certificate.js'
import { EKU } from '../../../src/x509/oids.js'
import { PROFILES, withUrls } from '../../../src/x509/profiles.js'
import { derToPem } from '../../../src/x509/pem.js'
import { newSerial } from '../../../src/x509/serial.js'
import { FIXTURE_KEYS } from './fixture-keys.js'
import { makeChain, openssl, tempDir } from '../../helpers/x509.js'
import type { TestChain } from '../../helpers/x509.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let chain: TestChain
beforeAll(async () => {
  chain = await makeChain('ec-p256')
})

function leaf(
  profile: CertificateParams['profile'],
  extra: Partial<CertificateParams> = {},
): Uint8Array {
  return buildCertificate({
    profile,
    subject: { organization: 'example.org' },
    publicKey: FIXTURE_KEYS['ec-p256'][2]!.publicKey,
    serial: newSerial(),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3600_000),
    uris: ['spiffe://example.org/w'],
    issuer: chain.intermediate,
    ...extra,
  })
}

const text = (der: Uint8Array): string =>
  openssl(['x509', '-noout', '-text'], derToPem(der, 'CERTIFICATE')).out

function verifyStrict(der: Uint8Array): number {
  const root = tmp.write('root.pem', chain.rootPem)
  const inter = tmp.write('inter.pem', chain.intermediatePem)
  const cert = tmp.write('cert.pem', derToPem(der, 'CERTIFICATE'))
  return openssl(['verify', '-x509_strict', '-CAfile', root, '-untrusted', inter, cert]).code
}

describe('certificate profiles as data', () => {
  it('maps each certificate kind to its profile', () => {
    const url = 'https://ca.example:8443'
    for (const [kind, base] of [
      ['workload', PROFILES.leaf],
      ['admin', PROFILES.admin],
      ['server', PROFILES.server],
    ] as const) {
      const p = profileForKind(kind, 'ab12', url)
      expect({ ...p, aia: base.aia, crlDistributionPoints: [] }).toEqual(base)
      expect(p.crlDistributionPoints).toEqual([`${url}/v1/ca/ab12/crl`])
      expect(p.aia).toEqual({ ocsp: [`${url}/v1/ocsp`], caIssuers: [`${url}/v1/ca/ab12.crt`] })
      // The same value each time: the template encoder keeps its pieces per profile object.
      expect(profileForKind(kind, 'ab12', url)).toBe(p)
    }
    for (const p of Object.values(PROFILES)) expect(Object.isFrozen(p)).toBe(true)
  })

  it('one more EKU is one more OID in the profile value', () => {
    const marker = '1.3.6.1.4.1.55555.1'
    const profile = {
      ...PROFILES.server,
      extKeyUsage: { purposes: [EKU.serverAuth, marker], critical: false },
    }
    const der = leaf(profile, { uris: [], dnsNames: ['ca.example.org'] })
    expect(text(der)).toMatch(
      /Extended Key Usage: *\n *TLS Web Server Authentication, 1\.3\.6\.1\.4\.1\.55555\.1\n/,
    )
    expect(verifyStrict(der)).toBe(0)
  })

  it('critical flags come from the profile', () => {
    const profile = {
      ...PROFILES.leaf,
      extKeyUsage: { ...PROFILES.leaf.extKeyUsage!, critical: true },
    }
    expect(text(leaf(profile))).toContain('X509v3 Extended Key Usage: critical')
  })

  it('fills the AIA and CRL distribution point slots', () => {
    const profile = withUrls(PROFILES.leaf, {
      ocsp: ['http://ocsp.example.org/'],
      caIssuers: ['http://ca.example.org/intermediate.der'],
      crl: ['http://ca.example.org/crl', 'http://mirror.example.org/crl'],
    })
    expect(PROFILES.leaf.aia.ocsp).toEqual([]) // the standard value is untouched
    const der = leaf(profile)
    const out = text(der)
    expect(out).toMatch(
      /Authority Information Access: *\n *OCSP - URI:http:\/\/ocsp\.example\.org\/\n *CA Issuers - URI:http:\/\/ca\.example\.org\/intermediate\.der\n/,
    )
    expect(out).toMatch(
      /CRL Distribution Points: *\n *Full Name:\n *URI:http:\/\/ca\.example\.org\/crl\n *URI:http:\/\/mirror\.example\.org\/crl\n/,
    )
    expect(new X509Certificate(der).infoAccess).toContain('OCSP - URI:http://ocsp.example.org/')
    expect(verifyStrict(der)).toBe(0)
  })

  it('the OCSP signer profile: OCSPSigning, nocheck, a subject, a short life', () => {
    const der = leaf(PROFILES['ocsp-signer'], {
      uris: [],
      subject: { organization: 'example.org', commonName: 'OCSP responder' },
    })
    const out = text(der)
    expect(out).toMatch(/Extended Key Usage: *\n *OCSP Signing\n/)
    expect(out).toContain('OCSP No Check')
    expect(out).toMatch(/Key Usage: critical\s+Digital Signature\n/)
    expect(() =>
      leaf(PROFILES['ocsp-signer'], {
        uris: [],
        subject: { commonName: 'OCSP responder' },
        notAfter: new Date(Date.now() + 31 * 86_400_000),
      }),
    ).toThrow(/lives at most/)
  })

  it('refuses names a profile does not allow', () => {
    expect(() => leaf(PROFILES.server)).toThrow(/no uri SAN/)
    expect(() => leaf(PROFILES.admin, { dnsNames: ['a.example'] })).toThrow(/no dns SAN/)
    expect(() => leaf(PROFILES.leaf, { uris: [] })).toThrow(/at least one SAN/)
    expect(() => leaf(PROFILES['ocsp-signer'], { uris: [], subject: {} })).toThrow(
      /non-empty subject/,
    )
    expect(() => leaf(PROFILES.intermediate, { uris: [], subject: {} })).toThrow(
      /non-empty subject/,
    )
    expect(() => leaf(PROFILES.intermediate, { subject: { commonName: 'x' } })).toThrow(
      /no uri SAN/,
    )
    expect(() => leaf('nope' as 'leaf')).toThrow(/unknown profile/)
  })
})
