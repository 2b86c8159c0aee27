import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Clock } from '../../src/clock.js'
import { TestServer } from '../helpers/server.js'

/** A clock the test moves (the server reads it on every request). */
class MovableClock implements Clock {
  offsetMs = 0
  now(): Date {
    return new Date(Date.now() + this.offsetMs)
  }
}

describe('/healthz and /readyz', () => {
  let s: TestServer
  const clock = new MovableClock()
  beforeAll(async () => {
    s = await TestServer.start({}, { clock })
  })
  afterAll(() => s.close())

  it('/healthz: alive; /readyz: database, CA key and CRL checked, each named', async () => {
    expect(await s.call('GET', '/healthz')).toMatchObject({ status: 200, body: { status: 'ok' } })
    const r = await s.call('GET', '/readyz')
    expect(r.status).toBe(200)
    expect(r.body).toEqual({
      status: 'ready',
      checks: { database: 'ok', ca_key: 'ok', crl: 'ok' },
    })
    expect(r.headers['cache-control']).toBe('no-store')
  })

  it('a CRL past its nextUpdate: 503 naming the CRL, the other checks still ok', async () => {
    clock.offsetMs = 25 * 3_600_000 // crl.validity is 24h
    const r = await s.call('GET', '/readyz')
    clock.offsetMs = 0
    expect(r.status).toBe(503)
    expect(r.body.status).toBe('not ready')
    expect(r.body.checks.database).toBe('ok')
    expect(r.body.checks.ca_key).toBe('ok')
    expect(r.body.checks.crl).toMatch(/^the stored CRL expired at \d{4}-/)
    expect((await s.call('GET', '/readyz')).status).toBe(200)
  })

  it('a database that is gone: 503 naming the database (and the CRL, which lives there)', async () => {
    await s.store.close()
    const r = await s.call('GET', '/readyz')
    expect(r.status).toBe(503)
    expect(r.body.checks.database).not.toBe('ok')
    expect(r.body.checks.crl).not.toBe('ok')
    expect(r.body.checks.ca_key).toBe('ok')
    // Alive all the same.
    expect((await s.call('GET', '/healthz')).status).toBe(200)
  })
})
