import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { generateKeyPair } from '../../../src/crypto/keys.js'
import { parseCertificate } from '../../../src/x509/certificate.js'
import { REASON_CODES, buildCrl } from '../../../src/x509/crl.js'
import type { RevocationReason } from '../../../src/x509/crl.js'
import { derToPem } from '../../../src/x509/pem.js'
import { makeChain, makeLeaf, openssl, tempDir } from '../../helpers/x509.js'
import type { TestChain } from '../../helpers/x509.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

const DAY = 24 * 3600_000

describe.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const)(
  'CRL signed by a %s intermediate',
  (type) => {
    let chain: TestChain
    let caFile: string
    beforeAll(async () => {
      chain = await makeChain(type)
      caFile = tmp.write(`ca-${type}.pem`, chain.rootPem + chain.intermediatePem)
    })

    function check(crl: Uint8Array, name: string): string {
      const path = tmp.write(`${name}-${type}.crl`, crl)
      const verified = openssl([
        'crl',
        '-inform',
        'DER',
        '-in',
        path,
        '-CAfile',
        caFile,
        '-verify',
        '-noout',
      ])
      expect(verified.out).toContain('verify OK')
      expect(verified.code).toBe(0)
      const text = openssl(['crl', '-inform', 'DER', '-in', path, '-noout', '-text']).out
      expect(text.toLowerCase()).not.toContain('sha1')
      expect(text).toContain('Version 2 (0x1)')
      expect(text).toMatch(/X509v3 Authority Key Identifier: \s+[0-9A-F:]{59}/)
      return text
    }

    it('with revoked entries: CRL number, reasons, dates', async () => {
      const { publicKey } = await generateKeyPair('ec-p256')
      const leaves = [0, 1, 2].map(() => parseCertificate(makeLeaf(chain, publicKey)))
      const reasons: RevocationReason[] = ['keyCompromise', 'unspecified', 'cessationOfOperation']
      const thisUpdate = new Date(Date.UTC(2030, 0, 1, 12, 0, 0))
      const crl = buildCrl({
        issuer: chain.intermediate,
        crlNumber: 4242n,
        thisUpdate,
        nextUpdate: new Date(thisUpdate.getTime() + DAY),
        revoked: leaves.map((l, i) => ({
          serialHex: l.serialHex,
          revokedAt: thisUpdate,
          reason: reasons[i]!,
        })),
      })
      const text = check(crl, 'revoked')
      expect(text).toMatch(/X509v3 CRL Number: \s+4242/)
      expect(text).toContain('Last Update: Jan  1 12:00:00 2030 GMT')
      expect(text).toContain('Next Update: Jan  2 12:00:00 2030 GMT')
      for (const leaf of leaves)
        expect(text).toContain(`Serial Number: ${leaf.serialHex.toUpperCase()}`)
      expect(text).toMatch(/X509v3 CRL Reason Code:\s+Key Compromise/)
      expect(text).toMatch(/X509v3 CRL Reason Code:\s+Cessation Of Operation/)
      // 'unspecified' carries no reasonCode (RFC 5280 §5.3.1): 2 reason codes for 3 entries.
      expect(text.match(/CRL Reason Code/g)).toHaveLength(2)
      expect(text).not.toContain('Unspecified')
    })

    it('empty: omits revokedCertificates', () => {
      const now = new Date()
      const crl = buildCrl({
        issuer: chain.intermediate,
        crlNumber: 1n,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + DAY),
        revoked: [],
      })
      const text = check(crl, 'empty')
      expect(text).toContain('No Revoked Certificates.')
      expect(text).toMatch(/X509v3 CRL Number: \s+1\n/)
    })
  },
)

describe('buildCrl details', () => {
  let chain: TestChain
  beforeAll(async () => {
    chain = await makeChain('ec-p256')
  })

  it('REASON_CODES follow RFC 5280 §5.3.1', () => {
    expect(REASON_CODES).toEqual({
      unspecified: 0,
      keyCompromise: 1,
      cACompromise: 2,
      affiliationChanged: 3,
      superseded: 4,
      cessationOfOperation: 5,
      certificateHold: 6,
      removeFromCRL: 8,
      privilegeWithdrawn: 9,
      aACompromise: 10,
    })
  })

  it('every reason encodes and a big CRL number uses the full range', () => {
    const now = new Date()
    const reasons = Object.keys(REASON_CODES) as RevocationReason[]
    const crl = buildCrl({
      issuer: chain.intermediate,
      crlNumber: 2n ** 100n,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + DAY),
      revoked: reasons.map((reason, i) => ({
        serialHex: `4${i.toString(16)}01`,
        revokedAt: now,
        reason,
      })),
    })
    const text = check(crl)
    expect(text).toMatch(new RegExp(`CRL Number: \\s+${2n ** 100n}\n`))
    expect(text.match(/CRL Reason Code/g)).toHaveLength(reasons.length - 1)
    expect(text).toContain('Privilege Withdrawn')
    expect(text).toContain('AA Compromise')

    function check(der: Uint8Array): string {
      const path = tmp.write('all-reasons.crl', der)
      const ca = tmp.write('ca-details.pem', chain.rootPem + chain.intermediatePem)
      expect(
        openssl(['crl', '-inform', 'DER', '-in', path, '-CAfile', ca, '-verify', '-noout']).out,
      ).toContain('verify OK')
      return openssl(['crl', '-inform', 'DER', '-in', path, '-noout', '-text']).out
    }
  })

  it('refuses misuse', () => {
    const now = new Date()
    const base = {
      issuer: chain.intermediate,
      crlNumber: 1n,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + DAY),
      revoked: [],
    }
    expect(() => buildCrl({ ...base, crlNumber: -1n })).toThrow(TypeError)
    expect(() => buildCrl({ ...base, nextUpdate: now })).toThrow(TypeError)
    expect(() =>
      buildCrl({ ...base, revoked: [{ serialHex: 'zz', revokedAt: now, reason: 'superseded' }] }),
    ).toThrow(TypeError)
    const leaf = {
      certDer: makeLeaf(chain, chain.intermediate.privateKey),
      privateKey: chain.intermediate.privateKey,
    }
    expect(() => buildCrl({ ...base, issuer: leaf })).toThrow(/not a CA/)
    // The issuer name is the issuing CA's subject, byte for byte.
    const crl = buildCrl(base)
    const issuer = openssl(['crl', '-inform', 'DER', '-noout', '-issuer'], crl).out
    const subject = openssl(['x509', '-noout', '-subject'], chain.intermediatePem).out
    expect(issuer.replace(/^issuer=/, '')).toBe(subject.replace(/^subject=/, ''))
    expect(subject).toContain('CN = example.org intermediate')
    expect(derToPem(crl, 'X509 CRL')).toMatch(/^-----BEGIN X509 CRL-----/)
  })
})
