// issueLeaf (the real issuance path) signs with the template encoder: its certificates are the
// pkijs encoder's, byte for byte, for every kind and CA key type, and its record matches them.
import { X509Certificate, createHash } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import * as asn1js from 'asn1js'
import { afterAll, describe, expect, it } from 'vitest'

import { issueLeaf } from '../../src/ca/issue.js'
import { caMaterialFromIssuers, type CaMaterial } from '../../src/ca/material.js'
import { commonNameFor, profileForKind } from '../../src/ca/profiles.js'
import { loadConfig } from '../../src/config/load.js'
import type { KeyType } from '../../src/crypto/keys.js'
import { x5tS256 } from '../../src/crypto/thumbprint.js'
import type { CertificateKind } from '../../src/db/types.js'
import { buildCertificate } from '../../src/x509/certificate.js'
import { buildCsr } from '../../src/x509/csr-builder.js'
import { parseCsr } from '../../src/x509/csr.js'
import { derToPem } from '../../src/x509/pem.js'
import { serialFromHex } from '../../src/x509/serial.js'
import { FIXTURE_KEYS } from '../unit/x509/fixture-keys.js'
import { openssl } from '../helpers/openssl.js'

const dir = mkdtempSync(join(tmpdir(), 'certbound-issue-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))
writeFileSync(join(dir, 'ca.yaml'), `trust_domain: example.org\ndata_dir: ${dir}\n`)
const config = loadConfig(join(dir, 'ca.yaml'))
const DAY = 86_400_000

function material(type: KeyType): CaMaterial {
  const [rootKey, interKey] = FIXTURE_KEYS[type]
  const now = Date.now()
  const rootDer = buildCertificate({
    profile: 'root',
    subject: { organization: 'example.org', commonName: 'root' },
    publicKey: rootKey!.publicKey,
    serial: Uint8Array.of(1),
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 100 * DAY),
    selfPrivateKey: rootKey!.privateKey,
  })
  const interDer = buildCertificate({
    profile: 'intermediate',
    subject: { organization: 'example.org', commonName: 'issuing' },
    publicKey: interKey!.publicKey,
    serial: Uint8Array.of(2),
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 50 * DAY),
    issuer: { certDer: rootDer, privateKey: rootKey!.privateKey },
  })
  return caMaterialFromIssuers(
    { certDer: rootDer, privateKey: rootKey!.privateKey },
    { certDer: interDer, privateKey: interKey!.privateKey },
  )
}

const tbsOf = (der: Uint8Array): Buffer =>
  Buffer.from(
    (asn1js.fromBER(der).result as asn1js.Sequence).valueBlock.value[0]!.valueBeforeDecodeView,
  )

const REQUESTS: Record<CertificateKind, { spiffeId: string | null; dns: string[]; ips: string[] }> =
  {
    workload: { spiffeId: 'spiffe://example.org/api', dns: ['api.example.org'], ips: [] },
    admin: { spiffeId: 'spiffe://example.org/admin/alice', dns: [], ips: [] },
    server: { spiffeId: null, dns: ['ca.example.org'], ips: ['127.0.0.1', '::1'] },
  }

describe.each(['ec-p256', 'ed25519', 'rsa-2048'] as const)('issueLeaf with a %s CA', (caType) => {
  const ca = material(caType)

  it.each(['workload', 'admin', 'server'] as const)('%s: the pkijs encoder’s bytes', (kind) => {
    const subjectKey = FIXTURE_KEYS['ec-p384'][2]!
    const r = REQUESTS[kind]
    const issued = issueLeaf(ca, config, {
      kind,
      publicKey: subjectKey.publicKey,
      spiffeId: r.spiffeId,
      dnsNames: r.dns,
      ipAddresses: r.ips,
      ttlMs: 3600_000,
      entryId: null,
      renewedFrom: null,
      now: new Date(),
    })
    const reference = buildCertificate({
      profile: profileForKind(kind, ca.current.keyId, config.server.publicUrl),
      subject: {
        organization: config.certificates.organization,
        ...(r.spiffeId ? { commonName: commonNameFor(r.spiffeId) } : {}),
      },
      publicKey: subjectKey.publicKey,
      serial: serialFromHex(issued.serial),
      notBefore: new Date(issued.notBefore),
      notAfter: new Date(issued.notAfter),
      uris: r.spiffeId ? [r.spiffeId] : [],
      dnsNames: r.dns,
      ipAddresses: r.ips,
      issuer: ca.issuer,
    })
    expect(tbsOf(issued.der)).toEqual(tbsOf(reference))
    if (caType !== 'ec-p256') expect(Buffer.from(issued.der)).toEqual(Buffer.from(reference))
    const x = new X509Certificate(issued.der)
    expect(x.verify(new X509Certificate(ca.issuer.certDer).publicKey)).toBe(true)
    expect(x.serialNumber.toLowerCase()).toBe(issued.serial)
    expect(issued.thumbprint).toBe(x5tS256(issued.der))
    expect(new Date(x.validTo).getTime()).toBe(issued.notAfter)
    const spki = x.publicKey.export({ type: 'spki', format: 'der' })
    expect(issued.spkiSha256).toBe(createHash('sha256').update(spki).digest('hex'))
  })
})

describe('issueLeaf from a CSR read by the fast reader', () => {
  it('records the SPKI hash openssl computes, and openssl verifies the chain', () => {
    const ca = material('ec-p256')
    for (const type of ['ec-p256', 'ed25519', 'rsa-3072'] as const) {
      const key = FIXTURE_KEYS[type][1]!
      const csr = parseCsr(buildCsr({ ...key, uris: ['spiffe://example.org/w'] }))
      const issued = issueLeaf(ca, config, {
        kind: 'workload',
        publicKey: csr.publicKey,
        spiffeId: csr.uris[0]!,
        dnsNames: [],
        ttlMs: 3600_000,
        entryId: null,
        renewedFrom: null,
        now: new Date(),
      })
      const pem = derToPem(issued.der, 'CERTIFICATE')
      const pub = openssl(['x509', '-noout', '-pubkey'], pem).out
      const spkiDer = Buffer.from(pub.replace(/-----[^-]+-----|\s/g, ''), 'base64')
      expect(issued.spkiSha256).toBe(createHash('sha256').update(spkiDer).digest('hex'))
      const leaf = join(dir, `${type}.pem`)
      writeFileSync(leaf, pem)
      writeFileSync(join(dir, 'root.pem'), ca.bundlePem)
      writeFileSync(join(dir, 'inter.pem'), ca.intermediatePem)
      const args = ['-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'inter.pem')]
      const v = openssl(['verify', '-x509_strict', ...args, leaf])
      expect(v.code, v.out).toBe(0)
    }
  })
})
