import { request } from 'undici'
import { describe, expect, it } from 'vitest'
import { verifyLeaf } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { verifyCrl, x509Text } from '../helpers/ca.js'

/** ca.key_type decides how the CA signs: explicit hashes, pure EdDSA, never SHA-1. */
describe.each([
  { keyType: 'ec-p256', sig: 'ecdsa-with-SHA256' },
  { keyType: 'ec-p384', sig: 'ecdsa-with-SHA384' },
  { keyType: 'ed25519', sig: 'ED25519' },
  { keyType: 'rsa-2048', sig: 'sha256WithRSAEncryption' },
])('a CA with ca.key_type $keyType', ({ keyType, sig }) => {
  it(`signs leaves and the CRL with ${sig}; openssl verifies both`, async () => {
    const s = await TestServer.start({ ca: { key_type: keyType } })
    try {
      const inter = x509Text(s.intermediatePem)
      expect(inter).toContain(`Signature Algorithm: ${sig}`)
      expect(x509Text(s.bundlePem)).toContain(`Signature Algorithm: ${sig}`)
      expect(inter).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE, pathlen:0/)
      expect(inter).toMatch(
        /X509v3 Key Usage: critical\n\s+(Digital Signature, )?Certificate Sign, CRL Sign\n/,
      )

      const cred = await s.enroll(`spiffe://example.org/ca-key/${keyType}`, { key: 'ec-p256' })
      const v = verifyLeaf(cred.certPem, s.bundlePem, s.intermediatePem)
      expect(v.code, v.out).toBe(0)
      const text = x509Text(cred.certPem)
      expect(text.match(/Signature Algorithm: .+/g)).toEqual([
        `Signature Algorithm: ${sig}`,
        `Signature Algorithm: ${sig}`,
      ])
      expect(text).not.toMatch(/sha1/i)

      // Renewal over mTLS works with a chain signed this way.
      expect((await s.renew(cred)).status).toBe(201)

      expect(
        (
          await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
            as: s.admin,
            json: { reason: 'keyCompromise' },
          })
        ).status,
      ).toBe(200)
      const res = await request(`${s.url}/v1/crl`, { dispatcher: s.agent() })
      const crl = verifyCrl(s, Buffer.from(await res.body.arrayBuffer()))
      expect(crl).toContain(`Signature Algorithm: ${sig}`)
      expect(crl).toContain(`Serial Number: ${cred.serial.toUpperCase()}`)
    } finally {
      await s.close()
    }
  })
})
