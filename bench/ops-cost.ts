/**
 * What the operations features cost, measured (not asserted):
 *   node --conditions=certbound-source --import tsx bench/ops-cost.ts [--postgres]
 * 1. A refused request (bad join token) over HTTPS keep-alive, against a refused request the
 *    limiter never sees (an unknown route): under the limit (one upsert each), and over it
 *    (answered from the process's memory).
 * 2. The limiter's store calls alone: one upsert, one primary-key read (SQLite; PostgreSQL with
 *    --postgres, on a throwaway cluster).
 * 3. Per-request metrics: Metrics.request() and the observe middleware's other work.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Agent, request } from 'undici'
import { OcspResponder } from '../src/ca/ocsp.js'
import { OcspSigners } from '../src/ca/ocsp-signers.js'
import { systemClock } from '../src/clock.js'
import { configFromObject } from '../src/config/load.js'
import { openStore } from '../src/db/store.js'
import { startServer } from '../src/main.js'
import { Metrics } from '../src/ops/metrics.js'
import { Authority } from '../src/ca/authority.js'
import { CrlPublisher } from '../src/ca/crl.js'
import { EntryService } from '../src/ca/entries.js'
import { loadKeyEncryptionKey } from '../src/ca/files.js'
import { createApp } from '../src/http/app.js'
import { initialize } from '../src/main.js'
import { SigningKeys } from '../src/tokens/keys.js'

const silent = pino({ level: 'silent' })

async function perRequest(url: string, agent: Agent, path: string, n: number, init: object) {
  for (let i = 0; i < 50; i++)
    await (await request(`${url}${path}`, { dispatcher: agent, ...init })).body.dump()
  const t0 = performance.now()
  for (let i = 0; i < n; i++)
    await (await request(`${url}${path}`, { dispatcher: agent, ...init })).body.dump()
  return ((performance.now() - t0) / n) * 1000 // µs
}

async function refusedRequests(failedAuth: number) {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-opscost-'))
  const config = configFromObject({
    data_dir: dir,
    log_level: 'silent',
    server: { listen: '127.0.0.1:0' },
    limits: { failed_auth: failedAuth },
  })
  const running = await startServer(config, { logger: silent })
  const agent = new Agent({ connect: { rejectUnauthorized: false } })
  const bad = {
    method: 'POST',
    headers: { authorization: `Bearer ${'A'.repeat(43)}`, 'content-type': 'application/json' },
    body: '{}',
  }
  try {
    const n = 2000
    const unknownRoute = await perRequest(running.url, agent, '/v1/nothing-here', n, {})
    const refused = await perRequest(running.url, agent, '/v1/enroll', n, bad)
    return { unknownRoute, refused }
  } finally {
    await agent.close()
    await running.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function storeCalls(url?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-opscost-'))
  const store = await openStore(dir, url ? { url } : {})
  try {
    const n = 2000
    let t0 = performance.now()
    for (let i = 0; i < n; i++)
      await store.authFailures.record(`198.51.100.${i % 200}`, Date.now(), 60_000)
    const upsert = ((performance.now() - t0) / n) * 1000
    t0 = performance.now()
    // 32 at once: what a flood from many addresses looks like to SQLite's group commit.
    for (let i = 0; i < n; i += 32)
      await Promise.all(
        Array.from({ length: 32 }, (_, j) =>
          store.authFailures.record(`203.0.113.${(i + j) % 250}`, Date.now(), 60_000),
        ),
      )
    const upsertConcurrent = ((performance.now() - t0) / n) * 1000
    t0 = performance.now()
    for (let i = 0; i < n; i++)
      await store.authFailures.current(`198.51.100.${i % 200}`, Date.now(), 60_000)
    const read = ((performance.now() - t0) / n) * 1000
    return { upsert, upsertConcurrent, read }
  } finally {
    await store.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

function metricsCost() {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-opscost-'))
  const m = new Metrics({
    store: undefined as never,
    clock: systemClock,
    crlThisUpdate: async () => undefined,
  })
  const routes = ['/oauth/token', '/v1/renew', '/v1/entries/:id', '/oauth/introspect']
  const n = 1_000_000
  for (let i = 0; i < 10_000; i++) m.request(routes[i % 4]!, 'POST', 200, 0.001)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    m.request(routes[i % 4]!, 'POST', 200, 0.0012)
    if (i % 4 === 0) m.tokenGranted('client_credentials')
  }
  const ns = ((performance.now() - t0) / n) * 1e6
  m.close()
  rmSync(dir, { recursive: true, force: true })
  return ns
}

/** The app's own per-request work (no TLS, no socket): GET /v1/bundle through app.request(). */
async function appRequestCost(withMetrics: boolean) {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-opscost-'))
  const config = configFromObject({
    data_dir: dir,
    log_level: 'silent',
    server: { listen: '127.0.0.1:0' },
  })
  const store = await openStore(dir, {})
  const clock = systemClock
  const ca = await initialize(config, store, clock)
  const deps = { config, store, clock }
  const crl = new CrlPublisher({ store, clock, ca, validityMs: config.crl.validityMs })
  const metrics = withMetrics
    ? new Metrics({ store, clock, crlThisUpdate: async () => undefined })
    : undefined
  const kek = loadKeyEncryptionKey(dir)
  const ocsp = new OcspResponder({ ...deps, ca, signers: new OcspSigners({ ...deps, ca, kek }) })
  const app = createApp({
    ...deps,
    ca,
    crl,
    ocsp,
    logger: silent,
    metrics,
    keys: new SigningKeys({ ...deps, kek }),
    authority: new Authority({ ...deps, ca, crl }),
    entries: new EntryService(deps),
  })
  const n = 50_000
  for (let i = 0; i < 5_000; i++) await (await app.request('/v1/bundle')).text()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await (await app.request('/v1/bundle')).text()
  const us = ((performance.now() - t0) / n) * 1000
  metrics?.close()
  await store.close()
  rmSync(dir, { recursive: true, force: true })
  return us
}

const fmt = (us: number) => `${us.toFixed(1)} µs`
{
  // Alternate to spread the shared machine's drift over both.
  const off: number[] = []
  const on: number[] = []
  for (let round = 0; round < 3; round++) {
    off.push(await appRequestCost(false))
    on.push(await appRequestCost(true))
  }
  const best = (xs: number[]) => Math.min(...xs)
  console.log(
    `app.request GET /v1/bundle: ${fmt(best(off))} without metrics, ${fmt(best(on))} with (best of 3 each)`,
  )
}
console.log(
  `metrics: Metrics.request() (+ a grant counter every 4th): ${metricsCost().toFixed(0)} ns per request`,
)
for (const [label, limit] of [
  ['under the limit (each failure one upsert)', 1_000_000],
  ['over the limit (answered from memory)', 1],
] as const) {
  const r = await refusedRequests(limit)
  console.log(
    `HTTPS keep-alive, ${label}: refused join token ${fmt(r.refused)}, unknown route ${fmt(r.unknownRoute)} → limiter ${fmt(r.refused - r.unknownRoute)} per refused request (incl. the token check)`,
  )
}
const s = await storeCalls()
console.log(
  `SQLite: upsert ${fmt(s.upsert)} sequential, ${fmt(s.upsertConcurrent)} each when 32 arrive together; primary-key read ${fmt(s.read)}`,
)
if (process.argv.includes('--postgres')) {
  const { startCluster, stopCluster } = await import('../test/helpers/postgres-cluster.js')
  const base = mkdtempSync(join(tmpdir(), 'certbound-opscost-pg-'))
  const cluster = await startCluster(base)
  try {
    const p = await storeCalls(
      `postgres://${cluster.user}:${encodeURIComponent(cluster.password)}@${cluster.host}:${cluster.port}/postgres`,
    )
    console.log(
      `PostgreSQL: upsert ${fmt(p.upsert)} sequential, ${fmt(p.upsertConcurrent)} each when 32 arrive together; primary-key read ${fmt(p.read)}`,
    )
  } finally {
    stopCluster(cluster)
    rmSync(base, { recursive: true, force: true })
  }
}
