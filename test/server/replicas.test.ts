import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { createTestDatabase, testPostgres, type TestDatabase } from '../helpers/postgres.js'
import { ProcessServer } from '../helpers/process-server.js'
import type { ApiClient, Credential } from '../helpers/server.js'

const postgres = await testPostgres()

/**
 * Two replicas — two `certbound serve` processes, each on its own port — on one PostgreSQL
 * database and one data_dir, started at the same moment (CONTRACT "Processes, replicas and
 * storage"). Requests alternate between them; the lifecycle invariants hold across both.
 */
describe.skipIf(!postgres.cluster)(`two replicas on one PostgreSQL${postgres.skipped}`, () => {
  let db: TestDatabase
  let dir: string
  let a: ProcessServer
  let b: ProcessServer
  const replicas = () => [a, b] as const
  beforeAll(async () => {
    db = await createTestDatabase(postgres.cluster!)
    dir = mkdtempSync(join(tmpdir(), 'certbound-replicas-'))
    const config = (name: string) => ({
      database: { url: db.url },
      log_level: 'info',
      // Replicas behind one name share one issuer (its default names each replica's own port),
      // and rotation stays off the clock: the test rotates by hand.
      tokens: { issuer: 'https://ca.example.org', signing_key_rotation: 'off' },
      _name: name,
    })
    ;[a, b] = await Promise.all(
      ['a', 'b'].map((name) => {
        const { _name, ...c } = config(name)
        return ProcessServer.start(c, { dir, configName: `replica-${_name}.yaml` })
      }),
    )
  })
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()])
    await db?.drop()
    rmSync(dir, { recursive: true, force: true })
  })

  const token = (s: ApiClient, cred: Credential, form: Record<string, string>) =>
    s.call('POST', '/oauth/token', { as: cred, form })

  it('started together, they share one CA', async () => {
    const bundles = await Promise.all(
      replicas().map(async (s) => (await s.call('GET', '/v1/bundle', { agent: s.agent() })).text),
    )
    expect(bundles[0]).toMatch(/BEGIN CERTIFICATE/)
    expect(bundles[1]).toBe(bundles[0])
    expect(a.bundlePem).toBe(b.bundlePem)
  })

  it('50 redemptions of one join token split across both → exactly one certificate', async () => {
    const spiffeId = 'spiffe://example.org/replicas/race'
    const entryId = await a.createEntry(spiffeId)
    const joinToken = await b.joinToken(entryId)
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        replicas()[i % 2]!.call('POST', '/v1/enroll', {
          agent: replicas()[i % 2]!.agent(),
          headers: { authorization: `Bearer ${joinToken}` },
          json: { csr: makeCsr().csrPem },
        }),
      ),
    )
    expect(results.filter((r) => r.status === 201)).toHaveLength(1)
    expect(results.filter((r) => r.status === 401)).toHaveLength(49)
    const listed = await b.call(
      'GET',
      `/v1/certificates?spiffe_id=${encodeURIComponent(spiffeId)}`,
      { as: b.admin },
    )
    expect(listed.body.items).toHaveLength(1)
  })

  it('20 refreshes of one refresh token split across both → one success, the family dead', async () => {
    const cred = await a.enroll('spiffe://example.org/replicas/refresh')
    const granted = await token(b, cred, { grant_type: 'client_credentials' })
    expect(granted.status, granted.text).toBe(200)
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        token(replicas()[i % 2]!, cred, {
          grant_type: 'refresh_token',
          refresh_token: granted.body.refresh_token,
        }),
      ),
    )
    const ok = results.filter((r) => r.status === 200)
    expect(ok).toHaveLength(1)
    expect(results.filter((r) => r.body.error === 'invalid_grant')).toHaveLength(19)
    const after = await token(a, cred, {
      grant_type: 'refresh_token',
      refresh_token: ok[0]!.body.refresh_token,
    })
    expect(after.body.error).toBe('invalid_grant')
  })

  it('a revocation on replica A is in the CRL and introspection of replica B at the next request', async () => {
    const cred = await a.enroll('spiffe://example.org/replicas/revoked')
    const observer = await b.enroll('spiffe://example.org/replicas/observer')
    const t = await token(a, cred, { grant_type: 'client_credentials' })
    expect(t.status, t.text).toBe(200)
    const first = await b.call('POST', '/oauth/introspect', {
      as: observer,
      form: { token: t.body.access_token },
    })
    expect(first.body.active, first.text).toBe(true)
    expect(
      (
        await b.call('POST', '/oauth/introspect', {
          as: observer,
          form: { token: t.body.access_token },
        })
      ).body.active,
    ).toBe(true)
    const r = await a.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
      as: a.admin,
      json: { reason: 'superseded' },
    })
    expect(r.status, r.text).toBe(200)
    const crl = await request(`${b.url}/v1/crl`, { dispatcher: b.agent() })
    expect(
      Buffer.from(await crl.body.arrayBuffer()).includes(Buffer.from(cred.serial, 'hex')),
    ).toBe(true)
    const seen = await b.call('POST', '/oauth/introspect', {
      as: observer,
      form: { token: t.body.access_token },
    })
    expect(seen.body).toEqual({ active: false })
  })

  it('an emergency key rotation on one replica is published by both at once', async () => {
    const cred = await b.enroll('spiffe://example.org/replicas/keys')
    const before = await token(a, cred, { grant_type: 'client_credentials' })
    const kidOf = (jwt: string) =>
      JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString()).kid as string
    const { execFileSync } = await import('node:child_process')
    execFileSync(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'keys', 'rotate', '--now', '--config', a.configFile],
      { encoding: 'utf8' },
    )
    const jwks = await Promise.all(
      replicas().map(
        async (s) => (await s.call('GET', '/.well-known/jwks.json', { agent: s.agent() })).body,
      ),
    )
    expect(jwks[1]).toEqual(jwks[0])
    const kids = (jwks[0]!.keys as { kid: string }[]).map((k) => k.kid)
    expect(kids).not.toContain(kidOf(before.body.access_token))
    const afterA = await token(a, cred, { grant_type: 'client_credentials' })
    const afterB = await token(b, cred, { grant_type: 'client_credentials' })
    expect(kidOf(afterA.body.access_token)).toBe(kidOf(afterB.body.access_token))
    expect(kids).toContain(kidOf(afterA.body.access_token))
  })

  it('a replica killed under load loses nothing it acknowledged; the other keeps serving; it restarts', async () => {
    const entryId = await a.createEntry('spiffe://example.org/replicas/load')
    const issued: string[] = []
    let stop = false
    const load = (s: ApiClient) =>
      (async () => {
        while (!stop) {
          const jt = await s
            .call('POST', `/v1/entries/${entryId}/join-tokens`, { as: s.admin })
            .catch(() => undefined)
          if (!jt || jt.status !== 201) continue
          const r = await s
            .call('POST', '/v1/enroll', {
              agent: s.agent(),
              headers: { authorization: `Bearer ${jt.body.token}` },
              json: { csr: makeCsr().csrPem },
            })
            .catch(() => undefined)
          if (r?.status === 201) issued.push(r.body.serial)
        }
      })()
    const loads = [load(a), load(b), load(b)]
    await new Promise((r) => setTimeout(r, 1500))
    a.child.kill('SIGKILL')
    await new Promise((r) => setTimeout(r, 1500))
    const health = await b.call('GET', '/healthz', { agent: b.agent() })
    expect(health.status).toBe(200)
    stop = true
    await Promise.all(loads)
    a = await ProcessServer.restart(a)
    expect(issued.length).toBeGreaterThan(0)
    for (const serial of issued) {
      const shown = await a.call('GET', `/v1/certificates/${serial}`, { as: a.admin })
      expect(shown.status, serial).toBe(200)
      expect(shown.body.status).toBe('valid')
    }
  })
})
