// Golden vectors: Ed25519 signatures are deterministic, so fixed keys, serials and dates give
// byte-identical DER. A change here means the encoding changed: check it with openssl first.
import { createHash, createPrivateKey, createPublicKey } from 'node:crypto'

import { describe, expect, it } from 'vitest'

import { buildCertificate } from '../../../src/x509/certificate.js'
import { buildCrl } from '../../../src/x509/crl.js'
import { derToPem } from '../../../src/x509/pem.js'
import { openssl, tempDir } from '../../helpers/x509.js'

function ed25519FromSeed(byte: number) {
  const pkcs8 = Buffer.concat([
    Buffer.from('302e020100300506032b657004220420', 'hex'),
    Buffer.alloc(32, byte),
  ])
  const privateKey = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
  return { privateKey, publicKey: createPublicKey(privateKey) }
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')
const T0 = new Date('2030-01-01T00:00:00Z')
const T1 = new Date('2031-01-01T00:00:00Z')

function goldenChain() {
  const rootKey = ed25519FromSeed(1)
  const interKey = ed25519FromSeed(2)
  const leafKey = ed25519FromSeed(3)
  const rootDer = buildCertificate({
    profile: 'root',
    subject: { organization: 'example.org', commonName: 'golden root' },
    publicKey: rootKey.publicKey,
    serial: Uint8Array.from({ length: 16 }, (_, i) => 0x40 + i),
    notBefore: T0,
    notAfter: T1,
    selfPrivateKey: rootKey.privateKey,
  })
  const root = { certDer: rootDer, privateKey: rootKey.privateKey }
  const interDer = buildCertificate({
    profile: 'intermediate',
    subject: { organization: 'example.org', commonName: 'golden intermediate' },
    publicKey: interKey.publicKey,
    serial: Uint8Array.from({ length: 16 }, (_, i) => 0x50 + i),
    notBefore: T0,
    notAfter: T1,
    issuer: root,
  })
  const intermediate = { certDer: interDer, privateKey: interKey.privateKey }
  const leafDer = buildCertificate({
    profile: 'leaf',
    subject: { organization: 'example.org' },
    publicKey: leafKey.publicKey,
    serial: Uint8Array.from({ length: 16 }, (_, i) => 0x60 + i),
    notBefore: T0,
    notAfter: T1,
    uris: ['spiffe://example.org/golden'],
    issuer: intermediate,
  })
  const crlDer = buildCrl({
    issuer: intermediate,
    crlNumber: 7n,
    thisUpdate: T0,
    nextUpdate: T1,
    revoked: [
      { serialHex: '606162636465666768696a6b6c6d6e6f', revokedAt: T0, reason: 'superseded' },
    ],
  })
  return { rootDer, interDer, leafDer, crlDer }
}

describe('golden Ed25519 chain', () => {
  it('is deterministic and byte-stable', () => {
    const a = goldenChain()
    const b = goldenChain()
    expect(a).toEqual(b)
    const hashes = Object.fromEntries(Object.entries(a).map(([k, v]) => [k, sha256(v)]))
    expect(hashes).toMatchInlineSnapshot(`
      {
        "crlDer": "57914109fb3d83de0d2a0dc9c9c0cb96f02ca08881c2502b0483880d28f7898f",
        "interDer": "1c8c49088b2a5047cf134ea7877ba51cda84832466019e7c92a9f58c51a7abab",
        "leafDer": "f33ff81395ada6cea0a3bfe3073542d8d9ae507e6b147428a7581423fe5a77e3",
        "rootDer": "ffbf04f37e87db017147b6a7786c16bafc43ed5dfb88b52a0e87c40edb9f2b46",
      }
    `)
  })

  it('verifies with openssl at a time inside its validity', () => {
    const { rootDer, interDer, leafDer } = goldenChain()
    const tmp = tempDir()
    try {
      const root = tmp.write('root.pem', derToPem(rootDer, 'CERTIFICATE'))
      const inter = tmp.write('inter.pem', derToPem(interDer, 'CERTIFICATE'))
      const leaf = tmp.write('leaf.pem', derToPem(leafDer, 'CERTIFICATE'))
      const at = String(Date.UTC(2030, 5, 1) / 1000)
      const args = ['verify', '-x509_strict', '-attime', at, '-CAfile', root, '-untrusted', inter]
      expect(openssl([...args, leaf]).code).toBe(0)
      const serial = openssl(['x509', '-noout', '-serial', '-in', leaf]).out
      expect(serial.trim()).toBe('serial=606162636465666768696A6B6C6D6E6F')
    } finally {
      tmp.cleanup()
    }
  })
})
