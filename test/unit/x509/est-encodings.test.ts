import { readFileSync } from 'node:fs'

import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

import { csrAttributes } from '../../../src/x509/csrattrs.js'
import { certsOnlyPkcs7 } from '../../../src/x509/pkcs7.js'
import { makeChain, openssl, tempDir } from '../../helpers/x509.js'
import type { TestChain } from '../../helpers/x509.js'

// The EST encodings against independent implementations: openssl's own certs-only PKCS#7
// (crl2pkcs7 -nocrl) byte for byte, pkijs's SignedData parser, openssl asn1parse for CsrAttrs.

const tmp = tempDir()
afterAll(() => tmp.cleanup())

let chain: TestChain
beforeAll(async () => {
  chain = await makeChain('ec-p256')
})

describe('certsOnlyPkcs7', () => {
  it('is byte for byte what `openssl crl2pkcs7 -nocrl` makes (certificates in the given order)', () => {
    const certs = tmp.write('certs.pem', chain.intermediatePem + chain.rootPem)
    const ref = openssl([
      'crl2pkcs7',
      '-nocrl',
      '-certfile',
      certs,
      '-outform',
      'DER',
      '-out',
      tmp.path('ref.p7'),
    ])
    expect(ref.code, ref.out).toBe(0)
    const reference = readFileSync(tmp.path('ref.p7'))
    const ders = [chain.intermediate.certDer, chain.root.certDer]
    expect(Buffer.from(certsOnlyPkcs7(ders)).equals(reference)).toBe(true)
    expect(Buffer.from(certsOnlyPkcs7([...ders].reverse())).equals(reference)).toBe(false)
  })

  it('parses with pkijs as a SignedData without signers, holding the certificates', () => {
    const der = certsOnlyPkcs7([chain.root.certDer, chain.intermediate.certDer])
    const info = new pkijs.ContentInfo({ schema: asn1js.fromBER(der).result })
    expect(info.contentType).toBe(pkijs.ContentInfo.SIGNED_DATA)
    const signed = new pkijs.SignedData({ schema: info.content })
    expect(signed.version).toBe(1)
    expect(signed.signerInfos).toEqual([])
    expect(signed.encapContentInfo.eContentType).toBe(pkijs.ContentInfo.DATA)
    expect(signed.encapContentInfo.eContent).toBeUndefined()
    const got = (signed.certificates ?? []).map((c) =>
      Buffer.from((c as pkijs.Certificate).toSchema().toBER()).toString('hex'),
    )
    expect(got.sort()).toEqual(
      [chain.root.certDer, chain.intermediate.certDer]
        .map((d) => Buffer.from(d).toString('hex'))
        .sort(),
    )
  })

  it('refuses no certificate and a non-certificate', () => {
    expect(() => certsOnlyPkcs7([])).toThrow(/needs a certificate/)
    expect(() => certsOnlyPkcs7([Uint8Array.of(0x02, 0x01, 0x00)])).toThrow(/SEQUENCE/)
  })
})

describe('csrAttributes', () => {
  const parse = (der: Uint8Array) => {
    const r = openssl(['asn1parse', '-inform', 'DER', '-in', tmp.write('attrs.der', der)])
    expect(r.code, r.out).toBe(0)
    return r.out
  }

  it('lists EC curves and RSA sizes as attribute values in DER order, Ed25519 as an OID', () => {
    const out = parse(csrAttributes({ keyTypes: ['rsa-4096', 'ec-p256', 'ed25519', 'ec-p384'] }))
    const lines = out.split('\n')
    const at = (s: string) => lines.findIndex((l) => l.includes(s))
    expect(at(':secp384r1')).toBeLessThan(at(':prime256v1')) // SET OF sorted (X.690 §11.6)
    expect(out).toMatch(/INTEGER\s+:1000/)
    expect(out).not.toMatch(/INTEGER\s+:0800/)
    expect(out).toContain(':ED25519')
    expect(out).toContain(':X509v3 Subject Alternative Name')
  })

  it('with a SPIFFE ID: an extensionRequest whose subjectAltName is that URI', () => {
    const der = csrAttributes({ keyTypes: ['ec-p256'], spiffeId: 'spiffe://example.org/w' })
    const out = parse(der)
    expect(out).toContain(':Extension Request')
    const octets = /OCTET STRING\s+\[HEX DUMP\]:([0-9A-F]+)/.exec(out)![1]!
    const san = openssl([
      'asn1parse',
      '-inform',
      'DER',
      '-in',
      tmp.write('san.der', Buffer.from(octets, 'hex')),
    ])
    expect(san.out).toMatch(/cont \[ 6 \]/) // uniformResourceIdentifier
    expect(octets).toContain(Buffer.from('spiffe://example.org/w').toString('hex').toUpperCase())
  })
})
