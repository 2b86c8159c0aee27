import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../../../src/crypto/keys.js'
import { buildCrl } from '../../../src/x509/crl.js'
import { childrenOf, readDer } from '../../../src/x509/der-reader.js'
import { lintCertificateTbs, lintCrlTbs, LintError } from '../../../src/x509/lint.js'
import { pemToDer } from '../../../src/x509/pem.js'
import { PROFILES, withUrls } from '../../../src/x509/profiles.js'
import { newSerial } from '../../../src/x509/serial.js'
import { buildCertificateFast } from '../../../src/x509/template.js'
import { spiffeIdProblem } from '../../../src/identity/spiffe-id.js'
import { makeChain, openssl, tempDir, type TestChain } from '../../helpers/x509.js'

const tmp = tempDir()
afterAll(() => tmp.cleanup())
const HOUR = 3600_000
const leaf = withUrls(PROFILES.leaf, {
  crl: ['https://ca.example/v1/ca/ab/crl'],
  ocsp: ['https://ca.example/v1/ocsp'],
  caIssuers: ['https://ca.example/v1/ca/ab.crt'],
})
const rules = {
  profile: leaf,
  maxLifetimeMs: 24 * HOUR,
  spiffeIdProblem: (u: string) => spiffeIdProblem(u, 'example.org'),
}

function violations(fn: () => void): readonly string[] {
  try {
    fn()
  } catch (e) {
    if (e instanceof LintError) return e.violations
    throw e
  }
  return []
}

const tbsOf = (der: Uint8Array) => {
  const t = childrenOf(der, readDer(der))[0]!
  return der.subarray(t.offset, t.end)
}

describe('pre-issuance lint', () => {
  let chain: TestChain
  let key: Awaited<ReturnType<typeof generateKeyPair>>
  beforeAll(async () => {
    chain = await makeChain('ec-p256')
    key = await generateKeyPair('ec-p256')
  })
  const params = (extra: Record<string, unknown> = {}) => ({
    profile: leaf,
    subject: { organization: 'example.org', commonName: 'w' },
    publicKey: key.publicKey,
    serial: newSerial(),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + HOUR),
    uris: ['spiffe://example.org/w'],
    issuer: chain.intermediate,
    ...extra,
  })

  it('a leaf of the template encoder passes; the lint sees exactly the signed TBS', () => {
    let seen: Uint8Array | undefined
    const der = buildCertificateFast(params(), (tbs) => {
      seen = tbs
      lintCertificateTbs(tbs, rules)
    })
    expect(Buffer.from(tbsOf(der)).equals(Buffer.from(seen!))).toBe(true)
  })

  it('a second URI SAN, a foreign trust domain, a short serial, a long life: refused, never signed', () => {
    const lint = (tbs: Uint8Array) => lintCertificateTbs(tbs, rules)
    const two = violations(() =>
      buildCertificateFast(
        params({ uris: ['spiffe://example.org/a', 'spiffe://example.org/b'] }),
        lint,
      ),
    )
    expect(two).toContain('a leaf certificate carries exactly one URI SAN, not 2')
    expect(
      violations(() =>
        buildCertificateFast(params({ uris: ['spiffe://other.org/a'] }), lint),
      ).join(),
    ).toMatch(/not a SPIFFE ID of the trust domain/)
    expect(
      violations(() =>
        buildCertificateFast(params({ serial: Uint8Array.of(0x40, 1, 2, 3) }), lint),
      ),
    ).toContain('the serial must be a positive integer of 64-159 bits, not 31')
    expect(
      violations(() =>
        buildCertificateFast(params({ notAfter: new Date(Date.now() + 48 * HOUR) }), lint),
      ).join(),
    ).toMatch(/lifetime over/)
    // Another profile's extensions (no AIA, no CDP) are not this profile's.
    const bare = violations(() => buildCertificateFast(params({ profile: PROFILES.leaf }), lint))
    expect(bare).toEqual([
      'authorityInfoAccess must be present',
      'cRLDistributionPoints must be present',
    ])
  })

  it('a multi-valued RDN and two URI SANs made by openssl: refused', () => {
    const keyFile = tmp.path('k.pem')
    const cert = tmp.path('c.pem')
    const r = openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      keyFile,
      '-out',
      cert,
      '-days',
      '1',
      '-multivalue-rdn',
      '-subj',
      '/O=example.org+CN=two values',
      '-addext',
      'subjectAltName=URI:spiffe://example.org/a,URI:spiffe://example.org/b',
    ])
    expect(r.code, r.out).toBe(0)
    const der = pemToDer(tmp.read('c.pem'), 'CERTIFICATE')
    const v = violations(() => lintCertificateTbs(tbsOf(der), rules))
    expect(v).toContain('subject has an RDN with other than one attribute')
    expect(v).toContain('issuer has an RDN with other than one attribute')
    expect(v).toContain('a leaf certificate carries exactly one URI SAN, not 2')
  })

  it('validity: UTCTime and GeneralizedTime read; a non-digit or a wrong Time form is refused', () => {
    const long = { ...rules, maxLifetimeMs: 100 * 365 * 24 * HOUR }
    let tbs: Uint8Array | undefined
    // notAfter in 2051: a GeneralizedTime (RFC 5280 §4.1.2.5), notBefore a UTCTime.
    buildCertificateFast(params({ notAfter: new Date(Date.UTC(2051, 0, 2, 3, 4, 5)) }), (t) => {
      tbs = t
    })
    expect(violations(() => lintCertificateTbs(tbs!, long))).toEqual([])
    expect(violations(() => lintCertificateTbs(tbs!, rules)).join()).toMatch(/lifetime over/)
    const validity = childrenOf(tbs!, readDer(tbs!))[4]!
    const [, na] = childrenOf(tbs!, validity)
    expect(na!.tag).toBe(0x18)
    const broken = (change: (t: Uint8Array) => void): readonly string[] => {
      const copy = Uint8Array.from(tbs!)
      change(copy)
      return violations(() => lintCertificateTbs(copy, long))
    }
    const bad = ['notBefore must be before notAfter']
    expect(broken((t) => (t[na!.start + 5] = 0x41))).toEqual(bad) // a letter in the month
    expect(broken((t) => (t[na!.end - 1] = 0x30))).toEqual(bad) // no Z
    expect(broken((t) => (t[na!.offset] = 0x17))).toEqual(bad) // 4-digit year as a UTCTime
  })

  it('CRLs: a good one passes; a window over the maximum is refused', () => {
    const now = new Date()
    const p = {
      issuer: chain.intermediate,
      crlNumber: 1n,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + 24 * HOUR),
      revoked: [],
    }
    expect(() => buildCrl(p, (tbs) => lintCrlTbs(tbs, { maxValidityMs: 24 * HOUR }))).not.toThrow()
    expect(() => buildCrl(p, (tbs) => lintCrlTbs(tbs, { maxValidityMs: HOUR }))).toThrow(LintError)
  })

  it('costs little next to signing (measured, not asserted)', () => {
    let tbs: Uint8Array | undefined
    buildCertificateFast(params(), (t) => (tbs = t))
    const n = 2000
    let t = performance.now()
    for (let i = 0; i < n; i++) lintCertificateTbs(tbs!, rules)
    const lintUs = ((performance.now() - t) * 1000) / n
    t = performance.now()
    for (let i = 0; i < 200; i++) buildCertificateFast(params())
    const buildUs = ((performance.now() - t) * 1000) / 200
    console.log(
      `lint ${lintUs.toFixed(1)} µs per certificate; template issuance ${buildUs.toFixed(1)} µs`,
    )
  })
})
