import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { issueAdminCredential } from '../../src/ca/init.js'
import { testApp } from '../helpers/app.js'
import { dbSnapshot, expectServing } from '../helpers/ca.js'
import { curlOcsp, readOcspResponse } from '../helpers/ocsp.js'
import { sleep, TestServer, type ApiResponse, type Credential } from '../helpers/server.js'
import { CORPUS } from '../hostile/corpus.js'
import {
  ROUTES,
  routeContext,
  routeKey,
  type Access,
  type RouteContext,
  type RouteRequest,
} from './route-table.js'

/*
 * Issue 14, security regression suite: the routes come from the router itself, so a route added
 * without a row in ROUTES (and in the hostile corpus) fails here. Every admin route refuses every
 * credential that is not a current admin certificate presented directly; every mTLS route
 * refuses every certificate that is not current; no bearer token stands in for either.
 */

const PROXY = '127.0.0.2'
const dirs: string[] = []
let s: TestServer
let ctx: RouteContext
let routes: Set<string>
let creds: Record<string, { certPem: string; keyPem: string } | undefined>

/** The routes the router serves (middleware excluded), as `METHOD /path`. */
async function routerRoutes(): Promise<Set<string>> {
  const t = await testApp()
  try {
    return new Set(
      t.app.routes.filter((r) => r.method !== 'ALL').map((r) => routeKey(r.method, r.path)),
    )
  } finally {
    await t.close()
  }
}

/** An admin credential issued by the CA at `at` with `ttlMs`, into a directory of its own. */
async function adminCredential(at: number, ttlMs: number): Promise<Credential> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-admin-'))
  dirs.push(dir)
  const config = { ...s.config, dataDir: dir, admin: { ...s.config.admin, credentialTtlMs: ttlMs } }
  const issued = await issueAdminCredential(
    { config, store: s.store, clock: { now: () => new Date(at) } },
    s.running.ca,
  )
  const read = (f: string) => readFileSync(join(dir, 'admin', f), 'utf8')
  const certPem = read('admin.pem')
  return { certPem, keyPem: read('admin-key.pem'), serial: issued.serial, chainPem: certPem }
}

beforeAll(async () => {
  routes = await routerRoutes()
  s = await TestServer.start({ server: { trusted_proxies: [PROXY] } })
  const workload = await s.enroll('spiffe://example.org/routes/workload')
  const t = await s.call('POST', '/oauth/token', {
    as: workload,
    form: { grant_type: 'client_credentials' },
  })
  ctx = await routeContext(s, workload, t.body, 'spiffe://example.org/routes')
  const expiredAdmin = await adminCredential(Date.now() - 600_000, 60_000)
  const revokedAdmin = await adminCredential(Date.now(), 3_600_000)
  const r = await s.call('POST', `/v1/certificates/${revokedAdmin.serial}/revoke`, {
    as: s.admin,
    json: {},
  })
  expect(r.status, r.text).toBe(200)
  const expiring = await s.enroll('spiffe://example.org/routes/expiring', { ttl: '1s' })
  const revokedWorkload = await s.enroll('spiffe://example.org/routes/revoked')
  await s.call('POST', `/v1/certificates/${revokedWorkload.serial}/revoke`, {
    as: s.admin,
    json: {},
  })
  creds = {
    none: undefined,
    workload,
    expiredAdmin,
    revokedAdmin,
    expiredWorkload: expiring,
    revokedWorkload,
  }
  await sleep(1_100) // `expiring` is past its notAfter now
})
afterAll(async () => {
  await s.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/**
 * The requests of every served route of `access`, built first: building one may enrol or mint
 * a join token, which must happen before a test takes its database snapshot.
 */
async function prepared(access: Access): Promise<[string, RouteRequest][]> {
  const rows = Object.entries(ROUTES).filter(
    ([key, row]) => row.access === access && routes.has(key),
  )
  return Promise.all(
    rows.map(async ([key, row]) => [key, await row.request(ctx)] as [string, RouteRequest]),
  )
}

/** Sends a route's request as `as` (or through `agent`), with extra headers. */
function send(
  key: string,
  req: RouteRequest,
  opts: {
    as?: { certPem: string; keyPem: string }
    agent?: Agent
    headers?: Record<string, string>
  },
): Promise<ApiResponse> {
  return s.call(key.split(' ')[0]!, req.path, {
    ...(opts.agent ? { agent: opts.agent } : { as: opts.as }),
    json: req.json,
    form: req.form,
    body: req.body,
    headers: { ...req.headers, ...opts.headers },
  })
}

/** A refusal with `status`: problem+json on the CA API, RFC 6749 JSON on /oauth/*. */
function expectRefused(r: ApiResponse, status: number, what: string): void {
  expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBe(status)
  if (String(r.headers['content-type']).startsWith('application/problem+json'))
    expect(r.body.detail.length, what).toBeGreaterThan(10)
  else expect(r.body.error, what).toMatch(/^(invalid_client|unauthorized_client|invalid_request)$/)
}

describe('the route table is the router', () => {
  it('every route the app serves has a row here and in the hostile corpus', () => {
    expect(routes.size).toBeGreaterThan(10)
    for (const key of routes) {
      expect(ROUTES[key], `${key} has no row in test/security/route-table.ts`).toBeDefined()
      expect(
        CORPUS.some((c) => c.route === key),
        `${key} has no row in test/hostile/corpus.ts`,
      ).toBe(true)
    }
    // A row for a route that is gone is stale (and a corpus row would test nothing).
    for (const key of Object.keys(ROUTES))
      expect(routes.has(key), `${key} is not served`).toBe(true)
    for (const { route } of CORPUS)
      expect(routes.has(route), `corpus row ${route} is not served`).toBe(true)
  })

  it('each row is a real request: its rightful caller gets an answer, not a refusal', async () => {
    for (const [key, row] of Object.entries(ROUTES)) {
      const as = row.access === 'admin' ? s.admin : row.access === 'mtls' ? ctx.workload : undefined
      const r = await send(key, await row.request(ctx), { as })
      expect(r.status, `${key}: ${r.text.slice(0, 300)}`).toBeLessThan(300)
    }
  })
})

describe('the OCSP rows are real OCSP requests', () => {
  it.for(['POST', 'GET'] as const)(
    '%s: openssl verifies the answer, "good" for the workload',
    async (method) => {
      const { der, headers } = await curlOcsp(s.url, s.bundlePem, ctx.ocspRequest, method)
      expect(headers).toMatch(/^content-type: application\/ocsp-response\r$/im)
      const trust = { bundlePem: s.bundlePem, issuerPem: s.intermediatePem }
      const r = readOcspResponse(der, trust, {
        reqDer: ctx.ocspRequest,
        certPem: ctx.workload.certPem,
      })
      expect(r.code, r.out).toBe(0)
      expect(r.out).toMatch(/Response verify OK/)
      expect(r.out).toMatch(/Cert Status: good/)
    },
  )
})

describe('admin routes refuse everything but a current admin certificate, presented directly', () => {
  it.for([
    ['no certificate', 401, 'none'],
    ['a workload certificate', 403, 'workload'],
    ['an expired admin certificate', 401, 'expiredAdmin'],
    ['a revoked admin certificate', 401, 'revokedAdmin'],
  ] as const)('%s → %i on every admin route', async ([, status, who]) => {
    const requests = await prepared('admin')
    const before = await dbSnapshot(s)
    for (const [key, req] of requests)
      expectRefused(await send(key, req, { as: creds[who] }), status, key)
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('a bearer token never stands in for the admin certificate (none, or a workload’s)', async () => {
    const requests = await prepared('admin')
    const before = await dbSnapshot(s)
    const headers = { authorization: `Bearer ${ctx.accessToken}` }
    for (const [key, req] of requests) {
      expectRefused(await send(key, req, { headers }), 401, `${key} bearer only`)
      expectRefused(
        await send(key, req, { as: ctx.workload, headers }),
        403,
        `${key} bearer + workload`,
      )
    }
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('a forwarded admin identity: 403 from a trusted proxy (server.proxy_admin off), 401 from anyone else', async () => {
    const requests = await prepared('admin')
    const before = await dbSnapshot(s)
    const forwarded = {
      'client-cert': `:${new X509Certificate(s.admin.certPem).raw.toString('base64')}:`,
    }
    const viaProxy = new Agent({ localAddress: PROXY, connect: { ca: s.bundlePem } })
    try {
      for (const [key, req] of requests) {
        expectRefused(
          await send(key, req, { agent: viaProxy, headers: forwarded }),
          403,
          `${key} via proxy`,
        )
        expectRefused(await send(key, req, { headers: forwarded }), 401, `${key} spoofed`)
      }
    } finally {
      await viaProxy.close()
    }
    expect(await dbSnapshot(s)).toEqual(before)
    await expectServing(s)
  })
})

describe('mTLS routes refuse every certificate that is not current', () => {
  it.for([
    ['no certificate', 'none'],
    ['an expired workload certificate', 'expiredWorkload'],
    ['a revoked workload certificate', 'revokedWorkload'],
    ['an expired admin certificate', 'expiredAdmin'],
  ] as const)('%s → 401 on every mTLS route', async ([, who]) => {
    const requests = await prepared('mtls')
    const before = await dbSnapshot(s)
    for (const [key, req] of requests)
      expectRefused(await send(key, req, { as: creds[who] }), 401, key)
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('a forwarded certificate from a peer that is not a trusted proxy → 401', async () => {
    const forwarded = {
      'client-cert': `:${new X509Certificate(ctx.workload.certPem).raw.toString('base64')}:`,
    }
    for (const [key, req] of await prepared('mtls'))
      expectRefused(await send(key, req, { headers: forwarded }), 401, key)
  })

  it('join-token routes: no token, an access token or a certificate instead → 401', async () => {
    const requests = await prepared('join-token')
    const before = await dbSnapshot(s)
    for (const [key, req] of requests) {
      for (const [what, opts] of [
        ['no token', { headers: { authorization: '' } }],
        ['an access token', { headers: { authorization: `Bearer ${ctx.accessToken}` } }],
        ['the admin certificate', { as: s.admin, headers: { authorization: '' } }],
      ] as const)
        expectRefused(await send(key, req, opts), 401, `${key} ${what}`)
    }
    expect(await dbSnapshot(s)).toEqual(before)
  })
})

describe('a page on another site cannot use the browser’s client certificate (CSRF)', () => {
  const rightful = (access: Access) =>
    access === 'admin' ? s.admin : access === 'mtls' ? ctx.workload : undefined
  const changing = async () =>
    (
      await Promise.all(
        (['admin', 'mtls', 'join-token'] as const).map(async (a) =>
          (await prepared(a)).map(([k, r]) => [k, r, a] as const),
        ),
      )
    )
      .flat()
      .filter(([key]) => !key.startsWith('GET '))

  it.for([
    ['Origin of another site', { origin: 'https://evil.example' }],
    ['Sec-Fetch-Site: cross-site', { 'sec-fetch-site': 'cross-site' }],
    ['Sec-Fetch-Site: same-site', { 'sec-fetch-site': 'same-site' }],
    ['Origin: null (a sandboxed page)', { origin: 'null' }],
  ] as const)('%s → 403 on every state-changing route, nothing changed', async ([, headers]) => {
    const requests = await changing()
    const before = await dbSnapshot(s)
    for (const [key, req, access] of requests)
      expectRefused(await send(key, req, { as: rightful(access), headers }), 403, key)
    expect(await dbSnapshot(s)).toEqual(before)
  })

  it('the classic one: a bodiless no-cors POST that would revoke a certificate', async () => {
    const serial = await ctx.revocable()
    const r = await s.call('POST', `/v1/certificates/${serial}/revoke`, {
      as: s.admin,
      headers: {
        origin: 'https://evil.example',
        'sec-fetch-site': 'cross-site',
        'sec-fetch-mode': 'no-cors',
      },
    })
    expectRefused(r, 403, 'revoke')
    expect((await s.call('GET', `/v1/certificates/${serial}`, { as: s.admin })).body.status).toBe(
      'valid',
    )
  })

  it('the same origin, and clients that send no Origin (CLI, agent, curl), are unaffected', async () => {
    const host = new URL(s.url).host
    const variants: Record<string, string>[] = [
      { origin: `https://${host}` },
      { 'sec-fetch-site': 'same-origin' },
      {},
    ]
    for (const headers of variants) {
      const r = await s.call('POST', '/v1/entries', {
        as: s.admin,
        headers,
        json: { spiffe_id: `spiffe://example.org/routes/same-origin/${Math.random()}` },
      })
      expect(r.status, r.text).toBe(201)
    }
  })
})
