import { X509Certificate } from 'node:crypto'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CaSet } from '../../src/ca/ca-set.js'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { caCertificateLint } from '../../src/ca/lint.js'
import { intermediateProfile } from '../../src/ca/profiles.js'
import { createIntermediateCsr, importIntermediate, rotateIssuer } from '../../src/ca/rotation.js'
import { ServerCredentials } from '../../src/ca/server-credential.js'
import { systemClock } from '../../src/clock.js'
import { derToPem } from '../../src/x509/pem.js'
import { tempFiles } from '../helpers/ca.js'
import { curlOcsp, ocspRequest } from '../helpers/ocsp.js'
import { openssl } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'

// RFC 5280 §7.1 (and §4.1.2.4, §5.1.2.3): path building matches an issuer Name to its CA's
// subject Name; strict verifiers (pyca/cryptography, Go) compare the DER bytes. So every
// certificate and CRL certbound signs must carry its signing CA's subject Name exactly as the
// CA certificate encodes it: the same RDN structure (multi-valued RDNs stay one SET) and the
// same string types (a PrintableString stays one). The Names are cut out of the DER here by a
// reader of this file's own, not by the product's.

/** The TLVs directly inside the constructed TLV at `offset` (X.690 §8.1, definite lengths). */
function children(der: Uint8Array, offset = 0): Uint8Array[] {
  const head = (at: number) => {
    const first = der[at + 1]!
    if (first < 0x80) return { header: 2, length: first }
    const n = first & 0x7f
    let length = 0
    for (let i = 0; i < n; i++) length = length * 256 + der[at + 2 + i]!
    return { header: 2 + n, length }
  }
  const outer = head(offset)
  const out: Uint8Array[] = []
  for (let at = offset + outer.header; at < offset + outer.header + outer.length;) {
    const { header, length } = head(at)
    out.push(der.subarray(at, at + header + length))
    at += header + length
  }
  return out
}

/** issuer and subject Name DER of a certificate (TBSCertificate, RFC 5280 §4.1). */
function certNames(der: Uint8Array): { issuer: Buffer; subject: Buffer } {
  const tbs = children(children(der)[0]!)
  const fields = tbs[0]![0] === 0xa0 ? tbs.slice(1) : tbs // version [0] EXPLICIT
  // serialNumber, signature, issuer, validity, subject
  return { issuer: Buffer.from(fields[2]!), subject: Buffer.from(fields[4]!) }
}

/** issuer Name DER of a CRL (TBSCertList, RFC 5280 §5.1: version INTEGER OPTIONAL first). */
function crlIssuer(der: Uint8Array): Buffer {
  const tbs = children(children(der)[0]!)
  const fields = tbs[0]![0] === 0x02 ? tbs.slice(1) : tbs
  return Buffer.from(fields[1]!)
}

const derOf = (pem: string) => new Uint8Array(new X509Certificate(pem).raw)
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex')

/** Asserts `issued` names `ca`'s subject as its issuer, byte for byte. */
function expectIssuedBy(what: string, issuedDer: Uint8Array, caDer: Uint8Array): void {
  expect(hex(certNames(issuedDer).issuer), `${what}: issuer Name DER`).toBe(
    hex(certNames(caDer).subject),
  )
}

function expectCrlOf(what: string, crlDer: Uint8Array, caDer: Uint8Array): void {
  expect(hex(crlIssuer(crlDer)), `${what}: CRL issuer Name DER`).toBe(hex(certNames(caDer).subject))
}

const keyIdOf = (pem: string) =>
  openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier'], pem)
    .out.split('\n')[1]!
    .trim()
    .replace(/:/g, '')
    .toLowerCase()

describe('issuer Names are the issuing CA subject Names, byte for byte (RFC 5280 §7.1)', () => {
  let s: TestServer

  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  const get = async (path: string) => {
    const res = await request(`${s.url}${path}`, { dispatcher: s.agent() })
    expect(res.statusCode, path).toBe(200)
    return new Uint8Array(await res.body.arrayBuffer())
  }

  /** The TLS certificate the server presents on a handshake now. */
  const servedCertificate = async () => {
    const socket = connect({
      host: '127.0.0.1',
      port: s.running.address.port,
      ca: s.bundlePem,
      servername: 'localhost',
      rejectUnauthorized: false,
    })
    await once(socket, 'secureConnect')
    const raw = new Uint8Array(socket.getPeerCertificate().raw)
    socket.destroy()
    return raw
  }

  /** Every delegated OCSP responder, checked against the CA its row names. */
  const expectOcspSigners = async () => {
    const cas = await s.query<{ key_id: string; der: Uint8Array }>(
      'SELECT key_id, der FROM issuing_cas',
    )
    const signers = await s.query<{ der: Uint8Array; issuer_key_id: string; serial: string }>(
      'SELECT der, issuer_key_id, serial FROM ocsp_signers',
    )
    for (const row of signers) {
      const ca = cas.find((c) => c.key_id === row.issuer_key_id)
      expect(ca, `OCSP signer ${row.serial}: its CA`).toBeDefined()
      expectIssuedBy(`OCSP signer ${row.serial}`, new Uint8Array(row.der), new Uint8Array(ca!.der))
    }
    return signers.map((r) => r.issuer_key_id)
  }

  it("init's CA: leaves by template, admin and server TLS certificates, both OCSP responders, both CRLs", async () => {
    const root = derOf(s.bundlePem)
    const inter = derOf(s.intermediatePem)
    expectIssuedBy('root (self-issued)', root, root)
    expectIssuedBy('intermediate', inter, root)
    for (const key of ['ec-p256', 'rsa-2048', 'ed25519'] as const) {
      const leaf = await s.enroll(`spiffe://example.org/names/${key}`, { key })
      expectIssuedBy(`leaf ${key}`, derOf(leaf.certPem), inter)
    }
    expectIssuedBy('admin credential', derOf(s.admin.certPem), inter)
    expectIssuedBy('served TLS certificate', await servedCertificate(), inter)
    const rootId = keyIdOf(s.bundlePem)
    const interId = keyIdOf(s.intermediatePem)
    // The root's responder answers for issuing CAs, the intermediate's for leaves.
    expect((await expectOcspSigners()).sort()).toEqual([rootId, interId].sort())
    expectCrlOf('intermediate CRL', await get('/v1/crl'), inter)
    expectCrlOf('root CRL', await get(`/v1/ca/${rootId}/crl`), root)
  })

  it('a rotated issuing CA, and one signed offline with PrintableString and IA5String attributes: what each signs', async () => {
    const ca = s.running.ca as CaSet
    const deps = {
      config: s.config,
      store: s.store,
      clock: systemClock,
      kek: loadKeyEncryptionKey(s.dataDir),
      ca,
    }
    const root = derOf(s.bundlePem)
    const rootId = keyIdOf(s.bundlePem)

    const rotated = await rotateIssuer(deps)
    const rotatedDer = ca.byKeyId(rotated.keyId)!.view.der
    expectIssuedBy('rotated intermediate', rotatedDer, root)
    const rotatedLeaf = await s.enroll('spiffe://example.org/names/rotated')
    expectIssuedBy('leaf of the rotated CA', derOf(rotatedLeaf.certPem), rotatedDer)

    // An issuing CA whose Name certbound did not write: the offline root's operator chose it
    // (openssl writes countryName and serialNumber as PrintableString, emailAddress IA5String).
    const csr = tempFiles({ 'inter.csr': await createIntermediateCsr(deps) })['inter.csr']!
    const signOffline = (subject: string) => {
      const f = tempFiles({
        'ext.cnf': [
          'basicConstraints=critical,CA:TRUE,pathlen:0',
          'keyUsage=critical,digitalSignature,keyCertSign,cRLSign',
          'subjectKeyIdentifier=hash',
          'authorityKeyIdentifier=keyid:always',
          `crlDistributionPoints=URI:${s.config.server.publicUrl}/v1/ca/${rootId}/crl`,
          `authorityInfoAccess=OCSP;URI:${s.config.server.publicUrl}/v1/ocsp,caIssuers;URI:${s.config.server.publicUrl}/v1/ca/${rootId}.crt`,
          '',
        ].join('\n'),
        'inter.pem': '',
      })
      const signed = openssl([
        'x509',
        '-req',
        '-in',
        csr,
        '-CA',
        join(s.dataDir, 'ca/root.pem'),
        '-CAkey',
        join(s.dataDir, 'ca/root-key.pem'),
        '-subj',
        subject,
        '-extfile',
        f['ext.cnf']!,
        '-days',
        '30',
        '-sha256',
        '-out',
        f['inter.pem']!,
      ])
      expect(signed.code, signed.out).toBe(0)
      return readFileSync(f['inter.pem']!, 'utf8')
    }
    // What `certbound ca import-intermediate` lints a new issuing CA against (src/cli/ca.ts).
    const lintCa = caCertificateLint(
      s.config,
      intermediateProfile(rootId, s.config.server.publicUrl),
    )
    // A multi-valued RDN is refused at import (lint.ts), so no issuance ever meets one.
    const multi = signOffline('/C=US/O=example.org+OU=workloads/CN=Example Issuing CA')
    await expect(importIntermediate({ ...deps, lintCa }, multi)).rejects.toThrow(
      /subject has an RDN with other than one attribute/,
    )
    expect(ca.current.keyId).toBe(rotated.keyId)

    const offlinePem = signOffline(
      '/C=US/O=example.org/OU=workloads/serialNumber=7/emailAddress=ca@example.org/CN=Example Issuing CA',
    )
    const offline = derOf(offlinePem)
    // The string types are what this case is about: see that openssl wrote them.
    const types = children(certNames(offline).subject).map(
      (rdn) => children(children(rdn)[0]!)[1]![0],
    )
    expect(types).toEqual([0x13, 0x0c, 0x0c, 0x13, 0x16, 0x0c])
    const imported = await importIntermediate({ ...deps, lintCa }, offlinePem)
    expect(imported.keyId).toBe(keyIdOf(offlinePem))
    expect(ca.current.keyId).toBe(imported.keyId)
    expectIssuedBy('offline-signed intermediate', offline, root)

    for (const key of ['ec-p256', 'rsa-2048', 'ed25519'] as const) {
      const leaf = await s.enroll(`spiffe://example.org/names/offline-${key}`, { key })
      expectIssuedBy(`leaf ${key} of the offline-signed CA`, derOf(leaf.certPem), offline)
    }
    const tls = await new ServerCredentials(deps).fresh(true)
    expectIssuedBy('server TLS certificate of the offline-signed CA', derOf(tls.certPem), offline)
    // The first OCSP question about its leaves makes its responder.
    const leaf = await s.enroll('spiffe://example.org/names/offline-ocsp')
    const answer = await curlOcsp(
      s.url,
      s.bundlePem,
      ocspRequest(leaf.certPem, offlinePem, { nonce: false }),
    )
    expect(answer.der.length).toBeGreaterThan(0)
    const ids = await expectOcspSigners()
    expect(ids).toContain(imported.keyId)
    expectCrlOf('CRL of the offline-signed CA', await get(`/v1/ca/${imported.keyId}/crl`), offline)
    expectCrlOf('CRL of the rotated CA', await get(`/v1/ca/${rotated.keyId}/crl`), rotatedDer)
    expectCrlOf('root CRL after both', await get(`/v1/ca/${rootId}/crl`), root)
    // openssl agrees: the responder chains to the root through the offline-signed CA.
    const [signer] = await s.query<{ der: Uint8Array }>(
      'SELECT der FROM ocsp_signers WHERE issuer_key_id = ?',
      imported.keyId,
    )
    const files = tempFiles({
      'root.pem': s.bundlePem,
      'inter.pem': offlinePem,
      'signer.pem': derToPem(new Uint8Array(signer!.der), 'CERTIFICATE'),
    })
    const verified = openssl([
      'verify',
      '-x509_strict',
      '-CAfile',
      files['root.pem']!,
      '-untrusted',
      files['inter.pem']!,
      files['signer.pem']!,
    ])
    expect(verified.out).toContain(': OK')
  })
})
