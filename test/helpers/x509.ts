// Test helper: OpenSSL as the independent checker of what the x509 layer produces.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import type { KeyObject } from 'node:crypto'

import { generateKeyPair } from '../../src/crypto/keys.js'
import type { KeyType } from '../../src/crypto/keys.js'
import { buildCertificate } from '../../src/x509/certificate.js'
import type { Issuer } from '../../src/x509/certificate.js'
import { derToPem } from '../../src/x509/pem.js'
import { newSerial } from '../../src/x509/serial.js'
import { openssl } from './openssl.js'

export { openssl }

export type OpensslResult = ReturnType<typeof openssl>

/** A temp dir for files handed to openssl; `cleanup()` in afterAll. */
export function tempDir(): {
  path(name: string): string
  write(name: string, data: string | Uint8Array): string
  read(name: string): string
  cleanup(): void
} {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-x509-'))
  return {
    path: (name) => join(dir, name),
    write: (name, data) => {
      const p = join(dir, name)
      writeFileSync(p, data)
      return p
    },
    read: (name) => readFileSync(join(dir, name), 'utf8'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export interface TestChain {
  readonly root: Issuer
  readonly intermediate: Issuer
  readonly rootPem: string
  readonly intermediatePem: string
}

const HOUR = 3600_000

/** A real root + intermediate with the given key type. */
export async function makeChain(type: KeyType, org = 'example.org'): Promise<TestChain> {
  const [rootKeys, interKeys] = await Promise.all([generateKeyPair(type), generateKeyPair(type)])
  const now = Date.now()
  const rootDer = buildCertificate({
    profile: 'root',
    subject: { organization: org, commonName: `${org} root (${type})` },
    publicKey: rootKeys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 10 * 24 * HOUR),
    selfPrivateKey: rootKeys.privateKey,
  })
  const root = { certDer: rootDer, privateKey: rootKeys.privateKey }
  const interDer = buildCertificate({
    profile: 'intermediate',
    subject: { organization: org, commonName: `${org} intermediate (${type})` },
    publicKey: interKeys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - HOUR),
    notAfter: new Date(now + 5 * 24 * HOUR),
    issuer: root,
  })
  return {
    root,
    intermediate: { certDer: interDer, privateKey: interKeys.privateKey },
    rootPem: derToPem(rootDer, 'CERTIFICATE'),
    intermediatePem: derToPem(interDer, 'CERTIFICATE'),
  }
}

/** A leaf for `publicKey` issued by the chain's intermediate. */
export function makeLeaf(
  chain: TestChain,
  publicKey: KeyObject,
  uri = 'spiffe://example.org/w',
): Uint8Array {
  const now = Date.now()
  return buildCertificate({
    profile: 'leaf',
    subject: { organization: 'example.org' },
    publicKey,
    serial: newSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + HOUR),
    uris: [uri],
    dnsNames: ['a.example'],
    issuer: chain.intermediate,
  })
}
