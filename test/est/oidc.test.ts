import { X509Certificate } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  curl,
  estCsr,
  estDir,
  pemCertificates,
  pkcs7Certificates,
  writeTemp,
} from '../helpers/est.js'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { githubClaims } from '../helpers/oidc/platforms.js'
import { AUDIENCE, issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

// EST simpleenroll with an OIDC identity token as the Bearer credential (issue 13): the entry
// is the one of the CSR's URI SAN, the same checks and single use as /v1/enroll. curl and
// openssl only on the client side.

const EST = '/.well-known/est'
let s: TestServer
let issuer: LoopbackIssuer
let dir: string
let bundle: string
let n = 0

beforeAll(async () => {
  issuer = await LoopbackIssuer.start({ alg: 'ES256' })
  s = await TestServer.start({ federation: { oidc_issuers: [issuerConfig('github', issuer)] } })
  dir = estDir()
  bundle = writeTemp(dir, 'bundle.pem', s.bundlePem)
})
afterAll(async () => {
  await s?.close()
  await issuer?.close()
})

async function oidcEntry() {
  const spiffeId = `spiffe://example.org/est-oidc/${++n}`
  await s.createEntry(spiffeId, {
    oidc: { issuer: 'github', claims: { repository: 'acme/api', ref: 'refs/heads/main' } },
  })
  return spiffeId
}

const enrol = (csrFile: string, token: string) =>
  curl(dir, bundle, `${s.url}${EST}/simpleenroll`, [
    '-H',
    'content-type: application/pkcs10',
    '-H',
    `authorization: Bearer ${token}`,
    '--data-binary',
    `@${csrFile}`,
  ])

const certificateCount = async (spiffeId: string) =>
  (
    await s.query<{ n: number }>(
      'SELECT COUNT(*) AS n FROM certificates WHERE spiffe_id = ?',
      spiffeId,
    )
  )[0]!.n

describe('EST simpleenroll with an OIDC identity token', () => {
  it('enrols the entry of the CSR URI SAN once; the replay is refused', async () => {
    const spiffeId = await oidcEntry()
    const token = await issuer.mint({ ...githubClaims(), aud: AUDIENCE })
    const { csrFile } = estCsr(dir, `ok-${n}`, { san: `URI:${spiffeId}` })
    const r = await enrol(csrFile, token)
    expect(r.status, r.body).toBe(200)
    const [leaf] = pemCertificates(pkcs7Certificates(r.body))
    expect(new X509Certificate(leaf!).subjectAltName).toBe(`URI:${spiffeId}`)

    const again = estCsr(dir, `replay-${n}`, { san: `URI:${spiffeId}` })
    const replay = await enrol(again.csrFile, token)
    expect(replay.status, replay.body).toBe(401)
    expect(JSON.parse(replay.body)).toMatchObject({
      code: 'ERR_OIDC_TOKEN_INVALID',
      check: 'replay',
    })
    expect(replay.body).not.toContain(token.split('.')[2]!)
    expect(await certificateCount(spiffeId)).toBe(1)
  })

  it('a CSR without a URI SAN is a 400 and spends nothing: the same token enrols afterwards', async () => {
    const spiffeId = await oidcEntry()
    const token = await issuer.mint({ ...githubClaims(), aud: AUDIENCE })
    const bare = estCsr(dir, `bare-${n}`)
    const refused = await enrol(bare.csrFile, token)
    expect(refused.status, refused.body).toBe(400)
    expect(await certificateCount(spiffeId)).toBe(0)
    const { csrFile } = estCsr(dir, `after-${n}`, { san: `URI:${spiffeId}` })
    expect((await enrol(csrFile, token)).status).toBe(200)
  })

  it('a token whose claims do not match the entry is refused by claim, with the Bearer challenge', async () => {
    const spiffeId = await oidcEntry()
    const token = await issuer.mint({ ...githubClaims(), ref: 'refs/heads/feature', aud: AUDIENCE })
    const { csrFile } = estCsr(dir, `claims-${n}`, { san: `URI:${spiffeId}` })
    const r = await enrol(csrFile, token)
    expect(r.status, r.body).toBe(401)
    expect(JSON.parse(r.body)).toMatchObject({ check: 'claims' })
    expect(r.headers).toMatch(
      /^www-authenticate: Bearer realm="certbound", error="invalid_token"\r?$/im,
    )
    expect(await certificateCount(spiffeId)).toBe(0)
  })

  it('a token for an entry without an OIDC rule is refused', async () => {
    const spiffeId = `spiffe://example.org/est-oidc/plain-${++n}`
    await s.createEntry(spiffeId)
    const token = await issuer.mint({ ...githubClaims(), aud: AUDIENCE })
    const { csrFile } = estCsr(dir, `plain-${n}`, { san: `URI:${spiffeId}` })
    const r = await enrol(csrFile, token)
    expect(r.status, r.body).toBe(401)
    expect(await certificateCount(spiffeId)).toBe(0)
  })
})
