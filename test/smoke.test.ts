import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseCertificate } from '../src/x509/certificate.js'
import { verifyLeaf } from './helpers/openssl.js'
import { TestServer } from './helpers/server.js'

describe('smoke: enrol over real HTTPS', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('enrols, and openssl verifies the certificate', async () => {
    const cred = await s.enroll('spiffe://example.org/smoke', { key: 'ed25519' })
    expect(verifyLeaf(cred.certPem, s.bundlePem, s.intermediatePem).code).toBe(0)
    const r = await s.renew(cred)
    expect(r.status).toBe(201)
  })

  it('the stored record (computed at issuance, not parsed back) matches the certificate', async () => {
    for (const key of ['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as const) {
      const cred = await s.enroll(`spiffe://example.org/record/${key}`, { key })
      const record = (await s.store.certificates.get(cred.serial))!
      const view = parseCertificate(record.der)
      expect(record).toMatchObject({
        serial: view.serialHex,
        thumbprint: view.thumbprint,
        spkiSha256: view.spkiSha256Hex,
        notBefore: view.notBefore.getTime(),
        notAfter: view.notAfter.getTime(),
      })
    }
  })
})
