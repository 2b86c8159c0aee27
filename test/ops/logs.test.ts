import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { ProcessServer } from '../helpers/process-server.js'

const ID = 'spiffe://example.org/logs/app'
const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'

/** Pieces of a secret a log could carry: whole, and each base64 line of a PEM body. */
function fragments(secret: string): string[] {
  const lines = secret.split('\n').filter((l) => l.length >= 32 && !l.startsWith('-----'))
  return lines.length > 0 ? lines : [secret]
}

describe('logs: one JSON line per request with its id, never a secret (log_level trace)', () => {
  let s: ProcessServer
  const secrets: string[] = []
  beforeAll(async () => {
    s = await ProcessServer.start({ log_level: 'trace' })
  })
  afterAll(() => s.close())

  it('a whole lifecycle, with refusals, at trace level: no join token, refresh or access token, or private key in the log', async () => {
    const entryId = await s.createEntry(ID)
    const joinToken = await s.joinToken(entryId)
    secrets.push(joinToken)
    // Refused: a near miss of the real token, then the real one twice (the second is spent).
    const nearMiss = `${joinToken.slice(0, -1)}${joinToken.endsWith('A') ? 'B' : 'A'}`
    const csr = () => ({ csr: makeCsr({ san: `URI:${ID}` }).csrPem })
    const enrol = (t: string) =>
      s.call('POST', '/v1/enroll', { headers: { authorization: `Bearer ${t}` }, json: csr() })
    expect((await enrol(nearMiss)).status).toBe(401)
    const enrolled = await enrol(joinToken)
    expect(enrolled.status).toBe(201)
    expect((await enrol(joinToken)).status).toBe(401)
    const admin = s.admin
    const other = await s.enroll(`${ID}/2`)
    const form = (body: Record<string, string>) =>
      s.call('POST', '/oauth/token', { as: other, form: body })
    const granted = await form({ grant_type: 'client_credentials', scope: 'read' })
    expect(granted.status).toBe(200)
    secrets.push(granted.body.access_token, granted.body.refresh_token)
    const refreshed = await form({
      grant_type: 'refresh_token',
      refresh_token: granted.body.refresh_token,
    })
    expect(refreshed.status).toBe(200)
    secrets.push(refreshed.body.access_token, refreshed.body.refresh_token)
    // Replay (kills the family), a token pasted into the wrong field, introspection, revocation.
    const replay = await form({
      grant_type: 'refresh_token',
      refresh_token: granted.body.refresh_token,
    })
    expect(replay.status).toBe(400)
    expect((await form({ grant_type: granted.body.refresh_token })).status).toBe(400)
    await form({ grant_type: 'client_credentials', scope: joinToken })
    await s.call('POST', '/oauth/introspect', {
      as: other,
      form: { token: refreshed.body.access_token },
    })
    await s.call('POST', '/oauth/revoke', {
      as: other,
      form: { token: refreshed.body.refresh_token },
    })
    await s.call('POST', `/v1/certificates/${other.serial}/revoke`, {
      as: admin,
      json: { reason: 'keyCompromise' },
    })
    for (const f of ['ca/root-key.pem', 'ca/intermediate-key.pem', 'admin/admin-key.pem'])
      secrets.push(readFileSync(join(s.dataDir, f), 'utf8'))
    secrets.push(other.keyPem, admin.keyPem)
    const kek = readFileSync(join(s.dataDir, 'ca/kek.key'))
    secrets.push(kek.toString('hex'), kek.toString('base64'), kek.toString('base64url'))

    const log = s.logs()
    // The refusals were logged (with their reasons): the scan covers them too.
    expect(log).toContain('"msg":"refused"')
    expect(log).toContain('"code":"ERR_JOIN_TOKEN_INVALID"')
    for (const secret of secrets)
      for (const piece of fragments(secret)) expect(log.includes(piece), piece).toBe(false)
  })

  it('every line is JSON; request lines carry id, trace, route pattern, status, latency, peer and SPIFFE ID', async () => {
    // The last request of the lifecycle has been logged (the child's pipe may lag a moment).
    await expect
      .poll(() => s.logs().includes('"route":"/v1/certificates/:serial/revoke"'))
      .toBe(true)
    const lines = s
      .logs()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
    const requests = lines.filter((l) => l.msg === 'request')
    expect(requests.length).toBeGreaterThan(10)
    for (const r of requests) {
      expect(r.req).toMatch(/^[0-9a-f]{16}$/)
      expect(r.trace_id).toMatch(/^[0-9a-f]{32}$/)
      expect(typeof r.route).toBe('string')
      expect(typeof r.status).toBe('number')
      expect(typeof r.ms).toBe('number')
      expect(r.peer).toBe('127.0.0.1')
    }
    const authenticated = requests.find((r) => r.route === '/oauth/token' && r.status === 200)
    expect(authenticated.spiffe_id).toBe(`${ID}/2`)
  })

  it('a W3C traceparent is taken up: the trace id is kept, this server answers with its own span', async () => {
    const r = await s.call('GET', '/v1/bundle', {
      headers: { traceparent: `00-${TRACE}-00f067aa0ba902b7-01` },
    })
    const id = r.headers['x-request-id'] as string
    expect(id).toMatch(/^[0-9a-f]{16}$/)
    expect(r.headers.traceparent).toBe(`00-${TRACE}-${id}-01`)
    await expect.poll(() => s.logs().includes(`"req":"${id}"`)).toBe(true)
    const line = JSON.parse(
      s
        .logs()
        .split('\n')
        .find((l) => l.includes(`"req":"${id}"`))!,
    )
    expect(line).toMatchObject({ trace_id: TRACE, route: '/v1/bundle', status: 200 })
    // An invalid one (all-zero trace id) starts a new trace instead.
    const fresh = await s.call('GET', '/v1/bundle', {
      headers: { traceparent: `00-${'0'.repeat(32)}-00f067aa0ba902b7-01` },
    })
    expect(fresh.headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/)
    expect(fresh.headers.traceparent).not.toContain('0'.repeat(32))
  })
})
