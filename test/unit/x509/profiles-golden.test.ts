// Byte-for-byte golden values for every certificate profile and key type, generated from the
// encoder as it was before profiles became data. Fixed keys, serials and dates give a fixed
// TBSCertificate; Ed25519 and RSA PKCS#1 v1.5 signatures are deterministic too, so for those
// issuers the whole certificate is pinned (ECDSA signatures are randomised: TBS only, and the
// signature is checked instead). Regenerate deliberately (CERTBOUND_GOLDEN_WRITE=1) only for
// an intended encoding change, and check the new output with openssl first.
import { X509Certificate, createHash } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'

import * as asn1js from 'asn1js'
import { describe, expect, it } from 'vitest'

import { KEY_TYPES } from '../../../src/crypto/keys.js'
import type { KeyType } from '../../../src/crypto/keys.js'
import { buildCertificate } from '../../../src/x509/certificate.js'
import type { CertificateParams, Issuer } from '../../../src/x509/certificate.js'
import { FIXTURE_KEYS } from './fixture-keys.js'

const GOLDEN = new URL('./fixtures/profiles-golden.json', import.meta.url)
const T0 = new Date('2030-01-01T00:00:00Z')
const T1 = new Date('2031-01-01T00:00:00Z')
const serial = (first: number): Uint8Array =>
  Uint8Array.from({ length: 16 }, (_, i) => (first + i) & 0x7f || 1)
const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const deterministic = (type: KeyType): boolean => type !== 'ec-p256' && type !== 'ec-p384'

function tbsOf(der: Uint8Array): Uint8Array {
  const { result } = asn1js.fromBER(der)
  const seq = result as asn1js.Sequence
  return new Uint8Array(seq.valueBlock.value[0]!.valueBeforeDecodeView)
}

interface Case {
  readonly name: string
  readonly issuerType: KeyType
  readonly der: Uint8Array
  readonly signedBy: Uint8Array
}

/** Every profile for every issuer key type, and every leaf profile for every subject key type. */
function buildCases(): Case[] {
  const cases: Case[] = []
  for (const it of KEY_TYPES) {
    const [rootKey, interKey] = FIXTURE_KEYS[it]
    const rootDer = buildCertificate({
      profile: 'root',
      subject: { organization: 'example.org', commonName: `golden root ${it}` },
      publicKey: rootKey!.publicKey,
      serial: serial(0x40),
      notBefore: T0,
      notAfter: T1,
      selfPrivateKey: rootKey!.privateKey,
    })
    cases.push({ name: `root/${it}`, issuerType: it, der: rootDer, signedBy: rootDer })
    const root: Issuer = { certDer: rootDer, privateKey: rootKey!.privateKey }
    const interDer = buildCertificate({
      profile: 'intermediate',
      subject: { organization: 'example.org', commonName: `golden intermediate ${it}` },
      publicKey: interKey!.publicKey,
      serial: serial(0x50),
      notBefore: T0,
      notAfter: T1,
      issuer: root,
    })
    cases.push({ name: `intermediate/${it}`, issuerType: it, der: interDer, signedBy: rootDer })
    const issuer: Issuer = { certDer: interDer, privateKey: interKey!.privateKey }
    for (const st of KEY_TYPES) {
      const publicKey = FIXTURE_KEYS[st][2]!.publicKey
      const leaves: [string, Omit<CertificateParams, 'publicKey' | 'issuer' | 'serial'>][] = [
        [
          'leaf',
          {
            profile: 'leaf',
            subject: { organization: 'example.org' },
            notBefore: T0,
            notAfter: T1,
            uris: ['spiffe://example.org/ns/prod/sa/api'],
            dnsNames: ['api.example.org', 'api.internal'],
          },
        ],
        [
          'server',
          {
            profile: 'server',
            subject: { organization: 'example.org' },
            notBefore: T0,
            notAfter: T1,
            dnsNames: ['ca.example.org', 'localhost'],
            ipAddresses: ['127.0.0.1', '::1', '2001:db8::7'],
          },
        ],
        [
          // Admin credentials had the leaf profile before profiles were data: same bytes.
          'admin',
          {
            profile: 'admin',
            subject: { organization: 'example.org' },
            notBefore: T0,
            notAfter: T1,
            uris: ['spiffe://example.org/admin/alice'],
          },
        ],
        [
          // Empty subject: the SAN turns critical. Dates across 2050: GeneralizedTime.
          'leaf-empty-subject-2050',
          {
            profile: 'leaf',
            subject: {},
            notBefore: new Date('2049-12-31T23:00:00Z'),
            notAfter: new Date('2050-01-02T00:00:00Z'),
            uris: ['spiffe://example.org/w'],
          },
        ],
      ]
      leaves.forEach(([name, params], i) => {
        const der = buildCertificate({ ...params, publicKey, issuer, serial: serial(0x60 + i) })
        cases.push({ name: `${name}/${it}/${st}`, issuerType: it, der, signedBy: interDer })
      })
    }
  }
  return cases
}

function goldenOf(cases: readonly Case[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (const c of cases) {
    out[`${c.name} tbs`] = sha256(tbsOf(c.der))
    if (deterministic(c.issuerType)) out[`${c.name} der`] = sha256(c.der)
  }
  return out
}

describe('certificate profiles: golden bytes', () => {
  const cases = buildCases()

  it('every certificate verifies under its issuer', () => {
    for (const c of cases) {
      const x = new X509Certificate(c.der)
      expect(x.verify(new X509Certificate(c.signedBy).publicKey), c.name).toBe(true)
    }
  })

  it('TBS (and, for deterministic signatures, the whole DER) is byte-identical', () => {
    const actual = goldenOf(cases)
    if (process.env.CERTBOUND_GOLDEN_WRITE === '1') {
      writeFileSync(GOLDEN, `${JSON.stringify(actual, null, 2)}\n`)
    }
    const expected = JSON.parse(readFileSync(GOLDEN, 'utf8')) as Record<string, string>
    // 6 issuer types × (root + intermediate + 6 subject types × 4 leaves).
    expect(Object.keys(expected)).toHaveLength(cases.length + 4 * 26)
    expect(actual).toEqual(expected)
  })
})
