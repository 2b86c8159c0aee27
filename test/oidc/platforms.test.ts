import { X509Certificate } from 'node:crypto'
import { pino } from 'pino'
import { Authority } from '../../src/ca/authority.js'
import type { CrlPublisher } from '../../src/ca/crl.js'
import { systemClock } from '../../src/clock.js'
import { isCAError } from '../../src/errors.js'
import { OidcFederation } from '../../src/federation/federation.js'
import { pemToDer } from '../../src/x509/pem.js'
import { makeCsr } from '../helpers/openssl.js'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { githubClaims, gitlabClaims, kubernetesClaims } from '../helpers/oidc/platforms.js'
import { AUDIENCE, enrollWithOidc, issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

/**
 * Enrolment by tokens shaped exactly like GitHub Actions', Kubernetes' and GitLab's, from
 * loopback issuers serving discovery and a JWKS over HTTPS (RS256 and ES256 keys).
 */
describe('OIDC enrolment with platform-shaped tokens', () => {
  let s: TestServer
  const issuers: Record<string, LoopbackIssuer> = {}
  let n = 0
  const id = (name: string) => `spiffe://example.org/oidc/${name}-${++n}`

  beforeAll(async () => {
    issuers.github = await LoopbackIssuer.start({ alg: 'RS256' })
    issuers.k8s = await LoopbackIssuer.start({ alg: 'ES256' })
    issuers.k8srsa = await LoopbackIssuer.start({ alg: 'RS256' })
    issuers.gitlab = await LoopbackIssuer.start({ alg: 'RS256', path: '/gitlab' })
    s = await TestServer.start({
      federation: {
        oidc_issuers: Object.entries(issuers).map(([name, i]) => issuerConfig(name, i)),
      },
    })
  })
  afterAll(async () => {
    await s?.close()
    await Promise.all(Object.values(issuers).map((i) => i.close()))
  })

  it('GitHub Actions (RS256): the pinned repository, ref, workflow_ref and owner id enrol; the audit records issuer, sub and the matched claims, never the token', async () => {
    const spiffeId = id('github')
    const claims = {
      repository: 'acme/api',
      ref: 'refs/heads/main',
      workflow_ref: 'acme/api/.github/workflows/*@refs/heads/main',
      repository_owner_id: '65',
    }
    const entryId = await s.createEntry(spiffeId, { oidc: { issuer: 'github', claims } })
    const token = await issuers.github!.mint({ ...githubClaims(), aud: AUDIENCE })
    const r = await enrollWithOidc(s, token, spiffeId)
    expect(r.status, r.text).toBe(201)
    expect(r.body.spiffe_id).toBe(spiffeId)
    expect(new X509Certificate(r.body.certificate).subjectAltName).toBe(`URI:${spiffeId}`)

    const [event] = (await s.store.audit.list({ action: 'certificate.enroll' })).filter(
      (e) => e.details?.entry_id === entryId,
    )
    expect(event!.actor).toBe('oidc:github')
    expect(event!.details!.oidc).toMatchObject({
      issuer: 'github',
      iss: issuers.github!.url,
      sub: 'repo:acme/api:ref:refs/heads/main',
      claims: {
        repository: 'acme/api',
        ref: 'refs/heads/main',
        workflow_ref: 'acme/api/.github/workflows/deploy.yml@refs/heads/main',
        repository_owner_id: '65',
      },
    })
    const signature = token.split('.')[2]!
    const stored = (await s.storedValues()).join('\n')
    expect(stored).not.toContain(token)
    expect(stored).not.toContain(signature)
    expect(JSON.stringify(event)).not.toContain(signature)
  })

  it('GitHub Actions: an environment pin, and a token of another branch or repository is refused by claim', async () => {
    const spiffeId = id('github-env')
    await s.createEntry(spiffeId, {
      oidc: { issuer: 'github', claims: { repository: 'acme/*', environment: 'production' } },
    })
    const mint = (o: Parameters<typeof githubClaims>[0]) =>
      issuers.github!.mint({ ...githubClaims(o), aud: AUDIENCE })
    const branch = await enrollWithOidc(s, await mint({ ref: 'refs/heads/dev' }), spiffeId)
    expect([branch.status, branch.body.check]).toEqual([401, 'claims'])
    expect(branch.body.detail).toMatch(/"environment"/)
    const other = await mint({ repository: 'evil/api', environment: 'production' })
    const r = await enrollWithOidc(s, other, spiffeId)
    expect([r.status, r.body.check, r.body.code]).toEqual([401, 'claims', 'ERR_OIDC_TOKEN_INVALID'])
    expect(r.body.detail).toMatch(/"repository" does not match/)
    expect(r.text).not.toContain(other)
    const good = await enrollWithOidc(s, await mint({ environment: 'production' }), spiffeId)
    expect(good.status, good.text).toBe(201)
  })

  it.each(['k8s', 'k8srsa'])(
    'Kubernetes projected token (%s): namespace and service account by JSON Pointer, and sub',
    async (name) => {
      const spiffeId = id(name)
      await s.createEntry(spiffeId, {
        oidc: {
          issuer: name,
          claims: {
            '/kubernetes.io/namespace': 'ci',
            '/kubernetes.io/serviceaccount/name': 'runner',
            sub: 'system:serviceaccount:ci:runner',
          },
        },
      })
      const issuer = issuers[name]!
      const token = await issuer.mint(kubernetesClaims())
      expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toEqual({
        alg: issuer.keys[0]!.alg,
        kid: issuer.keys[0]!.kid,
      })
      const r = await enrollWithOidc(s, token, spiffeId)
      expect(r.status, r.text).toBe(201)
      const otherNs = await issuer.mint(kubernetesClaims({ namespace: 'default' }))
      const refused = await enrollWithOidc(s, otherNs, spiffeId)
      expect([refused.status, refused.body.check]).toEqual([401, 'claims'])
      expect(refused.body.detail).toContain('"/kubernetes.io/namespace"')
    },
  )

  it('GitLab id_tokens (issuer with a path): project_path, ref and ref_protected; a number claim never matches', async () => {
    const spiffeId = id('gitlab')
    await s.createEntry(spiffeId, {
      oidc: {
        issuer: 'gitlab',
        claims: { project_path: 'acme/api', ref: 'main', ref_protected: 'true' },
      },
    })
    const gitlab = issuers.gitlab!
    expect(gitlab.url).toMatch(/\/gitlab$/)
    const unprotected = await gitlab.mint(gitlabClaims({ protectedRef: false }))
    const r1 = await enrollWithOidc(s, unprotected, spiffeId)
    expect([r1.status, r1.body.check]).toEqual([401, 'claims'])
    expect((await enrollWithOidc(s, await gitlab.mint(gitlabClaims()), spiffeId)).status).toBe(201)

    const numeric = id('gitlab-runner')
    await s.createEntry(numeric, {
      oidc: { issuer: 'gitlab', claims: { project_path: 'acme/api', runner_id: '1' } },
    })
    const r2 = await enrollWithOidc(s, await gitlab.mint(gitlabClaims()), numeric)
    expect([r2.status, r2.body.check]).toEqual([401, 'claims'])
    expect(r2.body.detail).toMatch(/no string claim "runner_id"/)
  })

  it('a refused token consumes nothing: refused by claim for one entry, by CSR for another, it enrols once where it matches', async () => {
    const token = await issuers.github!.mint({ ...githubClaims(), aud: AUDIENCE })
    const strict = id('strict')
    await s.createEntry(strict, { oidc: { issuer: 'github', claims: { repository: 'acme/web' } } })
    expect((await enrollWithOidc(s, token, strict)).status).toBe(401)
    const target = id('target')
    await s.createEntry(target, { oidc: { issuer: 'github', claims: { repository: 'acme/api' } } })
    const badCsr = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${token}` },
      json: { spiffe_id: target, csr: 'not a csr' },
    })
    expect(badCsr.status).toBe(400)
    const ttl = await enrollWithOidc(s, token, target, { ttl: '48h' })
    expect(ttl.status).toBe(400)
    expect((await enrollWithOidc(s, token, target)).status).toBe(201)
    const replay = await enrollWithOidc(s, token, target)
    expect([replay.status, replay.body.check]).toEqual([401, 'replay'])
    expect(replay.headers['www-authenticate']).toBe(
      'Bearer realm="certbound", error="invalid_token"',
    )
  })

  it('a disabled entry refuses (403) without spending the token; enabled again, the token enrols', async () => {
    const spiffeId = id('disabled')
    const entryId = await s.createEntry(spiffeId, {
      oidc: { issuer: 'github', claims: { repository: 'acme/api' } },
    })
    const patch = (enabled: boolean) =>
      s.call('PATCH', `/v1/entries/${entryId}`, { as: s.admin, json: { enabled } })
    expect((await patch(false)).status).toBe(200)
    const token = await issuers.github!.mint({ ...githubClaims(), aud: AUDIENCE })
    const r = await enrollWithOidc(s, token, spiffeId)
    expect([r.status, r.body.code]).toEqual([403, 'ERR_ENTRY_DISABLED'])
    expect((await patch(true)).status).toBe(200)
    expect((await enrollWithOidc(s, token, spiffeId)).status).toBe(201)
  })

  it('an entry without an oidc rule, or no entry at all, refuses OIDC tokens (check "entry")', async () => {
    const token = await issuers.github!.mint({ ...githubClaims(), aud: AUDIENCE })
    const plain = id('plain')
    await s.createEntry(plain)
    for (const spiffeId of [plain, id('nobody')]) {
      const r = await enrollWithOidc(s, token, spiffeId)
      expect([r.status, r.body.check]).toEqual([401, 'entry'])
    }
    // Without a valid token, nothing is learnt about entries: the token's own checks come first.
    const forged = await issuers.github!.mint(
      { ...githubClaims(), aud: AUDIENCE },
      { key: issuers.k8s!.keys[0] },
    )
    const probe = await enrollWithOidc(s, forged, id('nobody'))
    expect([probe.status, probe.body.check]).toEqual([401, 'signature'])
    const nobodyIss = await enrollWithOidc(s, 'eyJhbGciOiJSUzI1NiJ9.e30.c2ln', id('nobody'))
    expect([nobodyIss.status, nobodyIss.body.check]).toEqual([401, 'iss'])
    const noId = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${token}` },
      json: { csr: 'x' },
    })
    expect(noId.status).toBe(400)
    expect(noId.body.detail).toMatch(/"spiffe_id" is required with an OIDC token/)
  })

  it('for EST (no spiffe_id in the request): the domain call takes the SPIFFE ID from the CSR, which must name one', async () => {
    const federation = new OidcFederation(s.config, pino({ level: 'silent' }))
    const authority = new Authority({
      config: s.config,
      store: s.store,
      clock: systemClock,
      ca: s.running.ca,
      crl: undefined as unknown as CrlPublisher, // only revocations use it
      federation,
    })
    try {
      const spiffeId = id('est')
      await s.createEntry(spiffeId, {
        oidc: { issuer: 'github', claims: { repository: 'acme/api' } },
      })
      const token = await issuers.github!.mint({ ...githubClaims(), aud: AUDIENCE })
      const csr = pemToDer(makeCsr({ san: `URI:${spiffeId}` }).csrPem, 'CERTIFICATE REQUEST')
      const grant = await authority.authenticateOidcTokenForCsr(token, csr)
      expect(grant.entry.spiffeId).toBe(spiffeId)
      const issued = await authority.enroll(grant, { csr })
      expect(issued.certificate.spiffeId).toBe(spiffeId)
      for (const san of [undefined, `URI:${spiffeId},URI:spiffe://example.org/other`]) {
        const bare = pemToDer(makeCsr(san ? { san } : {}).csrPem, 'CERTIFICATE REQUEST')
        const e = await authority.authenticateOidcTokenForCsr(token, bare).catch((x: unknown) => x)
        expect(isCAError(e, 'ERR_BAD_REQUEST'), String(e)).toBe(true)
      }
      const replay = await authority
        .authenticateOidcTokenForCsr(token, csr)
        .catch((x: unknown) => x)
      expect(isCAError(replay, 'ERR_OIDC_TOKEN_INVALID')).toBe(true)
    } finally {
      await federation.close()
    }
  })
})
