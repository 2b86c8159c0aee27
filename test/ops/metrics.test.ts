import { spawnSync } from 'node:child_process'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { countCloneAlarm } from '../../src/ops/events.js'
import { freePort, ProcessServer } from '../helpers/process-server.js'
import { TestServer, type ApiClient, type Credential } from '../helpers/server.js'

async function scrape(url: string): Promise<{ status: number; type: string; text: string }> {
  const res = await request(url)
  return {
    status: res.statusCode,
    type: String(res.headers['content-type']),
    text: await res.body.text(),
  }
}

/** The value of one sample (`name{labels} value`), or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

/** `promtool check metrics` (Debian's prometheus package) on the exposition text. */
function promtool(text: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' })
  if (r.error)
    throw new Error(`promtool is needed (apt-get install prometheus): ${r.error.message}`)
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

const token = (s: ApiClient, cred: Credential, form: Record<string, string>, agent?: Agent) =>
  s.call('POST', '/oauth/token', { ...(agent ? { agent } : { as: cred }), form })

describe('metrics.listen: GET /metrics in the Prometheus text format', () => {
  let s: TestServer
  let url: string
  beforeAll(async () => {
    s = await TestServer.start({ metrics: { listen: '127.0.0.1:0' } })
    url = s.running.metricsUrl!
  })
  afterAll(() => s.close())

  it('counts issuances, renewals, refusals, revocations, grants and token refusals; latency per route pattern', async () => {
    const cred = await s.enroll('spiffe://example.org/metrics/a')
    const renewed = await s.renew(cred)
    expect(renewed.status).toBe(201)
    const next = renewed.credential!
    expect((await token(s, next, { grant_type: 'client_credentials' })).status).toBe(200)
    expect((await token(s, next, { grant_type: 'password' })).status).toBe(400)
    expect((await token(s, next, { grant_type: 'refresh_token', refresh_token: 'x' })).status).toBe(
      400,
    )
    const bad = await s.call('POST', '/v1/enroll', { headers: { authorization: 'Bearer nope' } })
    expect(bad.status).toBe(401)
    const entry = await s.call('GET', `/v1/entries/${cred.entryId}`, { as: s.admin })
    expect(entry.status).toBe(200)
    await s.call('POST', `/v1/certificates/${next.serial}/revoke`, { as: s.admin, json: {} })

    const m = await scrape(url)
    expect(m.status).toBe(200)
    expect(m.type).toContain('text/plain; version=0.0.4')
    const t = m.text
    expect(sample(t, 'certbound_certificates_issued_total{operation="enroll"}')).toBe(1)
    expect(sample(t, 'certbound_certificates_issued_total{operation="renew"}')).toBe(1)
    expect(sample(t, 'certbound_token_grants_total{grant_type="client_credentials"}')).toBe(1)
    expect(sample(t, 'certbound_token_refusals_total{reason="unsupported_grant_type"}')).toBe(1)
    expect(sample(t, 'certbound_token_refusals_total{reason="invalid_grant"}')).toBe(1)
    expect(
      sample(t, 'certbound_refusals_total{route="/v1/enroll",reason="join_token_invalid"}'),
    ).toBe(1)
    // The renewed-from certificate was retired by nothing: revoking `next` revokes one.
    expect(sample(t, 'certbound_revocations_total')).toBe(1)
    // Route patterns, never paths (no entry ids, no serials in label values).
    expect(
      sample(
        t,
        'certbound_http_request_duration_seconds_count{route="/v1/entries/:id",method="GET",status="200"}',
      ),
    ).toBe(1)
    expect(t).not.toContain(cred.entryId)
    expect(t).not.toContain(next.serial)
    // Read from the database when scraped.
    expect(sample(t, 'certbound_certificates_expiring_24h')).toBeGreaterThanOrEqual(1)
    expect(sample(t, 'certbound_crl_age_seconds')).toBeGreaterThanOrEqual(0)
    expect(sample(t, 'certbound_database_size_bytes')).toBeGreaterThan(0)
    expect(sample(t, 'certbound_database_busy_retries_total')).toBeGreaterThanOrEqual(0)
    expect(t).toMatch(/^certbound_process_cpu_seconds_total /m)
  })

  it('promtool check metrics passes on the output', async () => {
    const { text } = await scrape(url)
    const checked = promtool(text)
    expect(checked.status, checked.out).toBe(0)
    // A control: promtool does refuse a malformed exposition.
    expect(promtool('certbound_bad{ 1\n').status).not.toBe(0)
  })

  it('clone alarms: countCloneAlarm() (called by the detection) counts in certbound_clone_alarms_total', async () => {
    const before = sample((await scrape(url)).text, 'certbound_clone_alarms_total')!
    countCloneAlarm()
    countCloneAlarm()
    expect(sample((await scrape(url)).text, 'certbound_clone_alarms_total')).toBe(before + 2)
  })

  it('only GET /metrics is served there', async () => {
    expect((await scrape(url.replace('/metrics', '/'))).status).toBe(404)
    expect((await request(url, { method: 'POST' })).statusCode).toBe(405)
  })
})

describe('metrics with server.workers: 2 (summed over the workers by the primary)', () => {
  let s: ProcessServer
  let url: string
  beforeAll(async () => {
    const port = await freePort()
    url = `http://127.0.0.1:${port}/metrics`
    s = await ProcessServer.start(
      { server: { workers: 2 }, metrics: { listen: `127.0.0.1:${port}` } },
      { workers: 2 },
    )
  })
  afterAll(() => s.close())

  it('counters are the sum over both workers; database gauges are not doubled', async () => {
    const cred = await s.enroll('spiffe://example.org/metrics/workers')
    // Each request on a connection of its own: the cluster spreads them over both workers.
    for (let i = 0; i < 10; i++) {
      const agent = s.agent(cred)
      expect((await token(s, cred, { grant_type: 'client_credentials' }, agent)).status).toBe(200)
      await agent.close()
    }
    const { status, text } = await scrape(url)
    expect(status).toBe(200)
    expect(sample(text, 'certbound_token_grants_total{grant_type="client_credentials"}')).toBe(10)
    expect(sample(text, 'certbound_certificates_issued_total{operation="enroll"}')).toBe(1)
    // The workload's certificate (1h) and nothing else expires within 24 h; not 2 (one per worker).
    const valid = await s.call('GET', '/v1/certificates?status=valid', { as: s.admin })
    const within24h = valid.body.items.filter(
      (c: { not_after: string }) => Date.parse(c.not_after) - Date.now() < 86_400_000,
    ).length
    expect(sample(text, 'certbound_certificates_expiring_24h')).toBe(within24h)
    const checked = promtool(text)
    expect(checked.status, checked.out).toBe(0)
  })
})

describe('the lean per-request metrics format like prom-client’s own', () => {
  it('a histogram: cumulative buckets, +Inf, sum and count; a counter per label set', async () => {
    const { Histogram, Registry } = await import('prom-client')
    const { LeanCounter, LeanHistogram } = await import('../../src/ops/lean-metrics.js')
    const lean = new Registry()
    const reference = new Registry()
    const h = new LeanHistogram('h_seconds', 'h', ['route'], lean, [0.01, 0.1, 1])
    const ref = new Histogram({
      name: 'h_seconds',
      help: 'h',
      labelNames: ['route'],
      buckets: [0.01, 0.1, 1],
      registers: [reference],
    })
    for (const [route, v] of [
      ['/a', 0.005],
      ['/a', 0.05],
      ['/a', 0.05],
      ['/b', 3],
      ['/a', 0.01],
    ] as const) {
      h.observe(route, [route], v)
      ref.observe({ route }, v)
    }
    expect(await lean.metrics()).toBe(await reference.metrics())
    const c = new LeanCounter('c_total', 'c', ['reason'], lean)
    c.inc('x', ['x'])
    c.inc('x', ['x'])
    c.inc('y', ['y'])
    const text = await lean.metrics()
    expect(sample(text, 'c_total{reason="x"}')).toBe(2)
    expect(sample(text, 'c_total{reason="y"}')).toBe(1)
    expect(promtool(text).status).toBe(0)
  })
})
