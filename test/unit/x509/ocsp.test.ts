import { createHash } from 'node:crypto'
import * as asn1js from 'asn1js'
import * as pkijs from 'pkijs'
import { beforeAll, describe, expect, it } from 'vitest'
import { generateKeyPair } from '../../../src/crypto/keys.js'
import { parseCertificate } from '../../../src/x509/certificate.js'
import * as w from '../../../src/x509/der-writer.js'
import { MalformedOcspRequest, parseOcspRequest } from '../../../src/x509/ocsp-request.js'
import { buildOcspResponse, type SingleAnswer } from '../../../src/x509/ocsp-response.js'
import { PROFILES } from '../../../src/x509/profiles.js'
import { newSerial } from '../../../src/x509/serial.js'
import { buildCertificateFast } from '../../../src/x509/template.js'
import { makeChain, type TestChain } from '../../helpers/x509.js'

// The DER-template OCSP encoder, read back by pkijs (the independent parser); the request reader
// against pkijs-built requests.

describe('OCSP encoding', () => {
  let chain: TestChain
  let signer: {
    certDer: Uint8Array
    privateKey: import('node:crypto').KeyObject
    includeCertificate: true
  }
  beforeAll(async () => {
    chain = await makeChain('ec-p256')
    const keys = await generateKeyPair('ec-p256')
    const certDer = buildCertificateFast({
      profile: PROFILES['ocsp-signer'],
      subject: { organization: 'example.org', commonName: 'responder' },
      publicKey: keys.publicKey,
      serial: newSerial(),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      issuer: chain.intermediate,
    })
    signer = { certDer, privateKey: keys.privateKey, includeCertificate: true }
  })

  function certId(serial: Uint8Array): Uint8Array {
    const inter = parseCertificate(chain.intermediate.certDer)
    const spki = new pkijs.PublicKeyInfo({ schema: asn1js.fromBER(inter.spkiDer).result })
    const sha1 = (b: Uint8Array) => createHash('sha1').update(b).digest()
    return w.sequence(
      w.sequence(w.oid('1.3.14.3.2.26'), w.NULL),
      w.octetString(sha1(inter.subjectDer)),
      w.octetString(sha1(spki.subjectPublicKey.valueBlock.valueHexView)),
      w.integerOf(serial),
    )
  }

  it('pkijs reads every field and verifies the signature with the responder certificate', async () => {
    const serial = newSerial()
    const now = new Date(Math.floor(Date.now() / 1000) * 1000)
    const answers: SingleAnswer[] = [
      {
        certIdDer: certId(serial),
        status: { kind: 'revoked', at: now, reason: 'keyCompromise' },
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 3600_000),
      },
      {
        certIdDer: certId(newSerial()),
        status: { kind: 'good' },
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 3600_000),
      },
    ]
    const nonce = w.sequence(
      w.oid('1.3.6.1.5.5.7.48.1.2'),
      w.octetString(w.octetString(Buffer.alloc(16, 5))),
    )
    const der = buildOcspResponse({ signer, producedAt: now, answers, nonceExtension: nonce })
    const response = new pkijs.OCSPResponse({ schema: asn1js.fromBER(der).result })
    expect(response.responseStatus.valueBlock.valueDec).toBe(0)
    const basic = new pkijs.BasicOCSPResponse({
      schema: asn1js.fromBER(response.responseBytes!.response.valueBlock.valueHexView).result,
    })
    expect(basic.tbsResponseData.responses).toHaveLength(2)
    const [revoked, good] = basic.tbsResponseData.responses
    expect(
      Buffer.from(revoked!.certID.serialNumber.valueBlock.valueHexView).equals(Buffer.from(serial)),
    ).toBe(true)
    expect(revoked!.certStatus.idBlock.tagNumber).toBe(1)
    expect(good!.certStatus.idBlock.tagNumber).toBe(0)
    expect(revoked!.thisUpdate.getTime()).toBe(now.getTime())
    expect(basic.tbsResponseData.responseExtensions![0]!.extnID).toBe('1.3.6.1.5.5.7.48.1.2')
    expect(basic.certs).toHaveLength(1)
    const ok = await basic.verify({
      trustedCerts: [
        new pkijs.Certificate({ schema: asn1js.fromBER(chain.intermediate.certDer).result }),
      ],
    })
    expect(ok).toBe(true)
  })

  it('requests built by pkijs are read; garbage is MalformedOcspRequest', () => {
    const req = new pkijs.OCSPRequest()
    req.tbsRequest.requestList = [
      new pkijs.Request({
        reqCert: new pkijs.CertID({
          schema: asn1js.fromBER(certId(Uint8Array.of(0x42, 1, 2, 3, 4, 5, 6, 7, 8))).result,
        }),
      }),
    ]
    const parsed = parseOcspRequest(new Uint8Array(req.toSchema(true).toBER()))
    expect(parsed.certIds.map((c) => c.serialHex)).toEqual(['420102030405060708'])
    expect(parsed.nonceExtension).toBeUndefined()
    for (const bad of [
      Uint8Array.of(),
      Uint8Array.of(0x30, 0x00),
      Uint8Array.of(0x30, 0x02, 0x30, 0x00),
      Buffer.from('junk'),
    ])
      expect(() => parseOcspRequest(bad)).toThrow(MalformedOcspRequest)
  })

  it('signing one answer costs one node:crypto signature (measured, not asserted)', () => {
    const now = new Date()
    const answers: SingleAnswer[] = [
      {
        certIdDer: certId(newSerial()),
        status: { kind: 'good' },
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 3600_000),
      },
    ]
    for (let i = 0; i < 50; i++) buildOcspResponse({ signer, producedAt: now, answers })
    const t = performance.now()
    for (let i = 0; i < 500; i++) buildOcspResponse({ signer, producedAt: now, answers })
    console.log(
      `OCSP response (template): ${(((performance.now() - t) * 1000) / 500).toFixed(1)} µs each`,
    )
  })
})
