import { execFile } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

const TSX = join(process.cwd(), 'node_modules/.bin/tsx')
const CLI = join(process.cwd(), 'src/cli/index.ts')

/** Entries carry an `oidc` rule: set by POST and PATCH /v1/entries and the CLI, checked, audited. */
describe('entries with an OIDC rule (admin API and CLI)', () => {
  let s: TestServer
  let github: LoopbackIssuer
  let n = 0
  const id = () => `spiffe://example.org/oidc-entry/${++n}`
  const admin = (method: string, path: string, json?: unknown) =>
    s.call(method, path, { as: s.admin, ...(json === undefined ? {} : { json }) })

  beforeAll(async () => {
    github = await LoopbackIssuer.start()
    s = await TestServer.start({ federation: { oidc_issuers: [issuerConfig('github', github)] } })
  })
  afterAll(async () => {
    await s?.close()
    await github?.close()
  })

  it('POST with a rule → 201 showing it; GET shows it; PATCH replaces, keeps and clears it; audited', async () => {
    const oidc = {
      issuer: 'github',
      claims: { repository: 'acme/api', ref: 'refs/heads/*', '/kubernetes.io/namespace': 'ci' },
    }
    const created = await admin('POST', '/v1/entries', { spiffe_id: id(), oidc })
    expect(created.status, created.text).toBe(201)
    expect(created.body.oidc).toEqual(oidc)
    const entryId = created.body.id
    expect((await admin('GET', `/v1/entries/${entryId}`)).body.oidc).toEqual(oidc)
    const next = { issuer: 'github', claims: { repository_owner_id: '65' } }
    expect((await admin('PATCH', `/v1/entries/${entryId}`, { oidc: next })).body.oidc).toEqual(next)
    expect((await admin('PATCH', `/v1/entries/${entryId}`, { ttl: '1h' })).body.oidc).toEqual(next)
    expect((await admin('PATCH', `/v1/entries/${entryId}`, { oidc: null })).body.oidc).toBeNull()
    const plain = await admin('POST', '/v1/entries', { spiffe_id: id() })
    expect(plain.body.oidc).toBeNull()
    const events = await s.store.audit.list({ subject: created.body.spiffe_id })
    expect(events.find((e) => e.action === 'entry.create')!.details!.oidc).toEqual(oidc)
    expect(events.filter((e) => e.details?.oidc !== undefined)).toHaveLength(3) // create, 2 patches
  })

  it.each([
    [
      { issuer: 'gitlab', claims: { a: 'b' } },
      /"oidc.issuer" "gitlab" is not in federation.oidc_issuers \(one of github\)/,
    ],
    [{ issuer: 'github', claims: {} }, /"oidc.claims" must name 1 to 32 claims/],
    [{ issuer: 'github', claims: { repository: '*' } }, /pin at least one claim to more than "\*"/],
    [{ issuer: 'github', claims: { '/a~2b': 'x' } }, /not a JSON Pointer/],
    [{ issuer: 'github', claims: { repository: '' } }, /must be a string of 1 to 1024/],
    [
      { issuer: 'github', claims: { repository: 7 } },
      /"oidc.claims.repository" must map claim names to strings/,
    ],
    [{ issuer: 'github', claims: { a: 'b' }, extra: 1 }, /unknown field "extra"/],
    [{ claims: { a: 'b' } }, /"oidc.issuer" is required/],
    ['github', /"oidc" must be null or/],
  ])('refuses a bad rule with 400 and creates nothing: %j', async (oidc, message) => {
    const spiffeId = id()
    const r = await admin('POST', '/v1/entries', { spiffe_id: spiffeId, oidc })
    expect([r.status, r.body.code], r.text).toEqual([400, 'ERR_BAD_REQUEST'])
    expect(r.body.detail).toMatch(message)
    expect(await s.store.entries.getBySpiffeId(spiffeId)).toBeUndefined()
  })

  it('CLI: entry create --oidc-issuer --claim NAME=PATTERN, entry update --claim, --no-oidc', async () => {
    const config = join(s.dataDir, 'cli-config.yaml')
    writeFileSync(config, `trust_domain: example.org\ndata_dir: ${s.dataDir}\n`)
    const cli = (...args: string[]) =>
      new Promise<{ code: number; out: any; err: string }>((resolve) => {
        execFile(
          TSX,
          [CLI, '--config', config, ...args, '--server', s.url],
          { timeout: 30_000 },
          (error, stdout, stderr) => {
            let out: unknown = stdout
            try {
              out = JSON.parse(stdout)
            } catch {
              // not JSON
            }
            resolve({
              code: error ? ((error as { code?: number }).code ?? 1) : 0,
              out,
              err: stderr,
            })
          },
        )
      })
    const spiffeId = id()
    const made = await cli(
      'entry',
      'create',
      spiffeId,
      '--oidc-issuer',
      'github',
      '--claim',
      'repository=acme/api',
      '--claim',
      'ref=refs/heads/main',
      '--claim',
      '/kubernetes.io/namespace=ci=prod',
    )
    expect(made.code, made.err).toBe(0)
    expect(made.out.oidc).toEqual({
      issuer: 'github',
      claims: {
        repository: 'acme/api',
        ref: 'refs/heads/main',
        '/kubernetes.io/namespace': 'ci=prod',
      },
    })
    const updated = await cli(
      'entry',
      'update',
      made.out.id,
      '--oidc-issuer',
      'github',
      '--claim',
      'sub=repo:acme/*',
    )
    expect(updated.out.oidc).toEqual({ issuer: 'github', claims: { sub: 'repo:acme/*' } })
    const cleared = await cli('entry', 'update', made.out.id, '--no-oidc')
    expect(cleared.out.oidc).toBeNull()
    const bad = await cli('entry', 'create', id(), '--oidc-issuer', 'nope', '--claim', 'a=b')
    expect(bad.code).toBe(1)
    expect(bad.err).toMatch(/"oidc.issuer" "nope" is not in federation.oidc_issuers/)
    const noIssuer = await cli('entry', 'create', id(), '--claim', 'a=b')
    expect([noIssuer.code, noIssuer.err]).toEqual([1, 'certbound: --claim needs --oidc-issuer\n'])
  })
})
