import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyLeaf } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { x509Field, x509Text } from '../helpers/ca.js'
import {
  asn1parse,
  curl,
  type CurlResult,
  estCsr,
  estDir,
  pemCertificates,
  pkcs7Certificates,
  writeTemp,
} from '../helpers/est.js'

// EST (RFC 7030) round trips with curl and openssl only, against a real server over HTTPS:
// the same identities, policy, database and audit as /v1/enroll and /v1/renew.

let s: TestServer
let dir: string
let bundle: string
let n = 0
const EST = '/.well-known/est'

beforeAll(async () => {
  s = await TestServer.start()
  dir = estDir()
  bundle = writeTemp(dir, 'bundle.pem', s.bundlePem)
})
afterAll(() => s?.close())

async function fresh() {
  const spiffeId = `spiffe://example.org/est/${++n}`
  const entryId = await s.createEntry(spiffeId)
  return { spiffeId, entryId, token: await s.joinToken(entryId) }
}

const post = (csrFile: string, ...args: string[]) => [
  '-H',
  'content-type: application/pkcs10',
  '--data-binary',
  `@${csrFile}`,
  ...args,
]

/** The one certificate of an enrolment response, checked as openssl sees it. */
function issuedCertificate(r: CurlResult, spiffeId: string): string {
  expect(r.status, r.body).toBe(200)
  expect(r.headers).toMatch(/^content-type: application\/pkcs7-mime; smime-type=certs-only\r?$/im)
  expect(r.headers).toMatch(/^content-transfer-encoding: base64\r?$/im)
  const certs = pemCertificates(pkcs7Certificates(r.body))
  expect(certs).toHaveLength(1) // RFC 7030 §4.2.3: only the issued certificate
  const leaf = certs[0]!
  const verified = verifyLeaf(leaf, s.bundlePem, s.intermediatePem)
  expect(verified.code, verified.out).toBe(0)
  expect(x509Text(leaf)).toContain(`URI:${spiffeId}`)
  return leaf
}

async function certificateRow(leaf: string) {
  const serial = x509Field(leaf, 'serial').toLowerCase()
  const [row] = await s.query(
    'SELECT serial, entry_id, renewed_from, status FROM certificates WHERE serial = ?',
    serial,
  )
  return row as { serial: string; entry_id: string; renewed_from: string | null; status: string }
}

describe('GET /.well-known/est/cacerts', () => {
  it('is the issuing CA and the root as a base64 certs-only PKCS#7 (openssl pkcs7 -print_certs)', async () => {
    const r = await curl(dir, bundle, `${s.url}${EST}/cacerts`, [])
    expect(r.status).toBe(200)
    expect(r.headers).toMatch(/^content-type: application\/pkcs7-mime\r?$/im)
    expect(r.headers).toMatch(/^content-transfer-encoding: base64\r?$/im)
    const certs = pemCertificates(pkcs7Certificates(r.body))
    expect(certs).toEqual([s.intermediatePem, s.bundlePem]) // issuing CA first, then the root
  })
})

describe('POST /.well-known/est/simpleenroll', () => {
  it('with the join token as Bearer: a certificate for the entry, token spent, audited as /v1/enroll', async () => {
    const w = await fresh()
    const { csrFile } = estCsr(dir, `bearer${n}`, { san: `URI:${w.spiffeId}` })
    const r = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simpleenroll`,
      post(csrFile, '-H', `authorization: Bearer ${w.token}`),
    )
    const leaf = issuedCertificate(r, w.spiffeId)
    const row = await certificateRow(leaf)
    expect(row).toMatchObject({ entry_id: w.entryId, renewed_from: null, status: 'valid' })
    const tokens = await s.query('SELECT used_by FROM join_tokens WHERE used_by = ?', row.serial)
    expect(tokens).toHaveLength(1)
    const audit = await s.query(
      'SELECT actor, action FROM audit_events WHERE subject = ? ORDER BY id',
      row.serial,
    )
    expect(audit).toEqual([
      { actor: expect.stringMatching(/^join-token:/), action: 'certificate.enroll' },
    ])
  })

  it('a CSR without SANs gets the identity of the entry', async () => {
    const w = await fresh()
    const { csrFile } = estCsr(dir, `nosan${n}`, { key: 'ed25519' })
    const r = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simpleenroll`,
      post(csrFile, '-H', `authorization: Bearer ${w.token}`),
    )
    issuedCertificate(r, w.spiffeId)
  })

  it('with Basic (entry id : join token), sent up front', async () => {
    const w = await fresh()
    const { csrFile } = estCsr(dir, `basic${n}`, { san: `URI:${w.spiffeId}`, key: 'rsa-2048' })
    const r = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simpleenroll`,
      post(csrFile, '-u', `${w.entryId}:${w.token}`),
    )
    const row = await certificateRow(issuedCertificate(r, w.spiffeId))
    expect(row.entry_id).toBe(w.entryId)
  })

  it('with Basic only after a 401 that challenges Basic and Bearer (curl --anyauth, as libest does)', async () => {
    const w = await fresh()
    const { csrFile } = estCsr(dir, `challenge${n}`, { san: `URI:${w.spiffeId}` })
    const r = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simpleenroll`,
      post(csrFile, '--anyauth', '-u', `${w.entryId}:${w.token}`),
    )
    // The first answer was the challenge, the second the certificate.
    expect(r.headers).toMatch(/^HTTP\/1\.1 401/m)
    expect(r.headers).toMatch(/^www-authenticate: Basic realm="certbound EST"/im)
    expect(r.headers).toMatch(/^www-authenticate: Bearer realm="certbound"\r?$/im)
    expect(r.headers.search(/^www-authenticate: Basic/im)).toBeLessThan(
      r.headers.search(/^www-authenticate: Bearer/im),
    ) // libest reads the first challenge
    expect(r.headers).toMatch(/^HTTP\/1\.1 200/m)
    issuedCertificate(r, w.spiffeId)
  })
})

describe('POST /.well-known/est/simplereenroll', () => {
  it('over mTLS with the current certificate: the next certificate, renewed from it, same identity', async () => {
    const w = await fresh()
    const first = estCsr(dir, `re${n}a`, { san: `URI:${w.spiffeId}` })
    const enrolled = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simpleenroll`,
      post(first.csrFile, '-H', `authorization: Bearer ${w.token}`),
    )
    const leaf = issuedCertificate(enrolled, w.spiffeId)
    const certFile = writeTemp(dir, `re${n}.pem`, leaf)
    const next = estCsr(dir, `re${n}b`, { san: `URI:${w.spiffeId}` })
    const r = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simplereenroll`,
      post(next.csrFile, '--cert', certFile, '--key', first.keyFile),
    )
    const renewed = issuedCertificate(r, w.spiffeId)
    const row = await certificateRow(renewed)
    expect(row.renewed_from).toBe((await certificateRow(leaf)).serial)
    const audit = await s.query('SELECT action FROM audit_events WHERE subject = ?', row.serial)
    expect(audit).toEqual([{ action: 'certificate.renew' }])
  })
})

describe('POST /.well-known/est/simplereenroll and lineages', () => {
  it('a retired generation asking to renew over EST is the clone alarm, as on /v1/renew', async () => {
    const w = await fresh()
    const first = estCsr(dir, `cl${n}a`, { san: `URI:${w.spiffeId}` })
    const enrolled = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simpleenroll`,
      post(first.csrFile, '-H', `authorization: Bearer ${w.token}`),
    )
    const cert1 = writeTemp(dir, `cl${n}-1.pem`, issuedCertificate(enrolled, w.spiffeId))
    const second = estCsr(dir, `cl${n}b`, { san: `URI:${w.spiffeId}` })
    const renewed = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simplereenroll`,
      post(second.csrFile, '--cert', cert1, '--key', first.keyFile),
    )
    const cert2 = writeTemp(dir, `cl${n}-2.pem`, issuedCertificate(renewed, w.spiffeId))
    // The first use of generation 2 retires generation 1.
    const token = await curl(dir, bundle, `${s.url}/oauth/token`, [
      '--cert',
      cert2,
      '--key',
      second.keyFile,
      '-d',
      'grant_type=client_credentials',
    ])
    expect(token.status, token.body).toBe(200)
    // The copy of generation 1 renews: refused, and the whole lineage revoked.
    const third = estCsr(dir, `cl${n}c`, { san: `URI:${w.spiffeId}` })
    const clone = await curl(
      dir,
      bundle,
      `${s.url}${EST}/simplereenroll`,
      post(third.csrFile, '--cert', cert1, '--key', first.keyFile),
    )
    expect(clone.status, clone.body).toBe(403)
    expect(JSON.parse(clone.body).code).toBe('clone_suspected')
    const rows = await s.query<{ status: string; revocation_reason: string }>(
      'SELECT status, revocation_reason FROM certificates WHERE spiffe_id = ? ORDER BY id',
      w.spiffeId,
    )
    expect(rows).toEqual([
      { status: 'revoked', revocation_reason: 'keyCompromise' },
      { status: 'revoked', revocation_reason: 'keyCompromise' },
    ])
  })
})

describe('GET /.well-known/est/csrattrs', () => {
  it('names the allowed key types and the subjectAltName (openssl asn1parse)', async () => {
    const r = await curl(dir, bundle, `${s.url}${EST}/csrattrs`, [])
    expect(r.status).toBe(200)
    expect(r.headers).toMatch(/^content-type: application\/csrattrs\r?$/im)
    expect(r.headers).toMatch(/^content-transfer-encoding: base64\r?$/im)
    const parsed = asn1parse(r.body)
    for (const name of [
      'id-ecPublicKey',
      'prime256v1',
      'secp384r1',
      'rsaEncryption',
      'ED25519',
      'X509v3 Subject Alternative Name',
    ]) {
      expect(parsed).toContain(`:${name}`)
    }
    expect(parsed).toMatch(/INTEGER\s+:0800/) // RSA 2048
    expect(parsed).not.toContain('Extension Request') // no identity without a certificate
  })

  it('to a caller with its certificate: the exact URI SAN in an extensionRequest (RFC 9908)', async () => {
    const cred = await s.enroll('spiffe://example.org/est/attrs')
    const cert = writeTemp(dir, 'attrs.pem', cred.certPem)
    const key = writeTemp(dir, 'attrs.key', cred.keyPem)
    const r = await curl(dir, bundle, `${s.url}${EST}/csrattrs`, ['--cert', cert, '--key', key])
    expect(r.status).toBe(200)
    const parsed = asn1parse(r.body)
    expect(parsed).toContain(':Extension Request')
    const hex = Buffer.from('spiffe://example.org/est/attrs').toString('hex').toUpperCase()
    expect(parsed).toContain(hex)
  })

  it('follows certificates.allowed_key_types', async () => {
    const only = await TestServer.start({ certificates: { allowed_key_types: ['ed25519'] } })
    try {
      const b = writeTemp(dir, 'only-bundle.pem', only.bundlePem)
      const parsed = asn1parse((await curl(dir, b, `${only.url}${EST}/csrattrs`, [])).body)
      expect(parsed).toContain(':ED25519')
      expect(parsed).not.toContain('id-ecPublicKey')
      expect(parsed).not.toContain('rsaEncryption')
    } finally {
      await only.close()
    }
  })
})
