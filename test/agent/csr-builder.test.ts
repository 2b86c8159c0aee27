import { generateKeyPair } from '../../src/crypto/keys.js'
import type { KeyType } from '../../src/crypto/keys.js'
import { buildCsr } from '../../src/x509/csr-builder.js'
import { parseCsr } from '../../src/x509/csr.js'
import { describe, expect, it } from 'vitest'
import { openssl } from '../helpers/openssl.js'

// The agent's CSR builder (src/x509/csr-builder.ts), checked by openssl and by the CA's parser.

const SPIFFE_ID = 'spiffe://example.org/agent/csr'

describe('buildCsr', () => {
  it.each(['ec-p256', 'ec-p384', 'ed25519', 'rsa-2048'] as KeyType[])(
    'builds a self-signed PKCS#10 request for %s that openssl verifies',
    async (type) => {
      const keys = await generateKeyPair(type)
      const pem = buildCsr({ ...keys, uris: [SPIFFE_ID] })
      const verify = openssl(['req', '-verify', '-noout'], pem)
      expect(verify.code, verify.out).toBe(0)
      expect(verify.out).toContain('verify OK')

      const text = openssl(['req', '-noout', '-text'], pem).out
      expect(text).toMatch(/Subject:\s*\n/) // empty subject: the CA builds its own
      expect(text).toContain('X509v3 Subject Alternative Name: critical')
      expect(text).toContain(`URI:${SPIFFE_ID}`)
      expect(text).not.toMatch(/sha1|md5/i)
      if (type === 'ec-p384') expect(text).toContain('ecdsa-with-SHA384')
      if (type === 'ed25519') expect(text).toContain('ED25519')

      const parsed = parseCsr(pem)
      expect(parsed.keyType).toBe(type)
      expect(parsed.uris).toEqual([SPIFFE_ID])
      expect(parsed.requestsCA).toBe(false)
    },
  )

  it('adds DNS names and an optional CN (the SAN is then not critical)', async () => {
    const keys = await generateKeyPair('ec-p256')
    const pem = buildCsr({
      ...keys,
      uris: [SPIFFE_ID],
      dnsNames: ['api.example.org'],
      commonName: 'agent/csr',
    })
    expect(openssl(['req', '-verify', '-noout'], pem).code).toBe(0)
    const text = openssl(['req', '-noout', '-text'], pem).out
    expect(text).toMatch(/Subject: CN ?= ?agent\/csr/)
    expect(text).toContain('X509v3 Subject Alternative Name: \n')
    expect(parseCsr(pem).dnsNames).toEqual(['api.example.org'])
  })

  it('refuses a public key that is not the private key’s, and a public key as the private one', async () => {
    const a = await generateKeyPair('ec-p256')
    const b = await generateKeyPair('ec-p256')
    expect(() => buildCsr({ privateKey: a.privateKey, publicKey: b.publicKey, uris: [] })).toThrow(
      TypeError,
    )
    expect(() => buildCsr({ privateKey: a.publicKey, publicKey: a.publicKey, uris: [] })).toThrow(
      TypeError,
    )
  })
})
