import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { pino } from 'pino'
import { EVENTS_PER_WINDOW } from '../../src/http/event-limit.js'
import { query } from '../helpers/ca.js'
import { TestServer, type Credential } from '../helpers/server.js'
import { expectOAuthError, grant, oauth } from '../helpers/tokens.js'

/*
 * Issue 7, audit hygiene: refusals never echo client input into the audit table or the OAuth
 * error_description (a secret sent in the wrong field was stored), and the events an address
 * can cause (log lines, audit rows) are bounded.
 */
describe('refusals do not echo what the client sent', () => {
  const logs: string[] = []
  let s: TestServer
  let cred: Credential
  let secret: string
  beforeAll(async () => {
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(line) })
    s = await TestServer.start({}, { logger })
    const spiffeId = 'spiffe://example.org/careless'
    const entryId = await s.createEntry(spiffeId, { scopes: ['read'] })
    cred = await s.enroll(spiffeId, { entryId })
    secret = (await grant(s, cred)).refresh_token // the kind of thing pasted in the wrong field
  })
  afterAll(() => s.close())

  const everywhere = async () => [
    JSON.stringify(await query(s, 'SELECT actor, action, subject, details FROM audit_events')),
    logs.join('\n'),
  ]

  it.each([
    ['grant_type', { grant_type: 'SECRET' }, 'unsupported_grant_type', 400],
    [
      'scope (an entry that pins scopes)',
      { grant_type: 'client_credentials', scope: 'SECRET' },
      'invalid_scope',
      400,
    ],
  ])('a secret sent as %s', async (_name, form, error, status) => {
    const filled = Object.fromEntries(
      Object.entries(form).map(([k, v]) => [k, v.replace('SECRET', secret)]),
    )
    const r = await oauth(s, '/oauth/token', cred, filled)
    expectOAuthError(r, status, error)
    expect(r.text).not.toContain(secret)
    for (const place of await everywhere()) expect(place).not.toContain(secret)
  })

  it('a repeated parameter that is a bare secret', async () => {
    const r = await s.call('POST', '/oauth/token', {
      as: cred,
      body: `${secret}=a&${secret}=b`,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
    expectOAuthError(r, 400, 'invalid_request')
    expect(r.body.error_description).toBe('a parameter is repeated')
    for (const place of await everywhere()) expect(place).not.toContain(secret)
  })

  it('a refresh with a narrowed scope names what was granted, not what was asked', async () => {
    const t = await grant(s, cred, { grant_type: 'client_credentials', scope: 'read' })
    const r = await oauth(s, '/oauth/token', cred, {
      grant_type: 'refresh_token',
      refresh_token: t.refresh_token,
      scope: `read ${secret}`,
    })
    expectOAuthError(r, 400, 'invalid_scope')
    expect(r.body.error_description).toMatch(/granted: read$/)
    for (const place of [r.text, ...(await everywhere())]) expect(place).not.toContain(secret)
  })
})

describe('events one address can cause are bounded', () => {
  const logs: string[] = []
  let s: TestServer
  let cred: Credential
  beforeAll(async () => {
    const logger = pino({ level: 'info' }, { write: (line: string) => logs.push(line) })
    s = await TestServer.start({}, { logger })
    cred = await s.enroll('spiffe://example.org/noisy')
  })
  afterAll(() => s.close())

  const N = EVENTS_PER_WINDOW * 2 + 5
  const agent = () => s.agent(cred)

  it('refused token requests of an authenticated client: audited at most EVENTS_PER_WINDOW', async () => {
    const a = agent()
    for (let i = 0; i < N; i++) {
      expectOAuthError(
        await oauth(s, '/oauth/token', a, { grant_type: 'password' }),
        400,
        'unsupported_grant_type',
      )
    }
    const rows = await query(
      s,
      "SELECT count(*) AS n FROM audit_events WHERE action = 'token.refused'",
    )
    expect(rows[0].n).toBe(EVENTS_PER_WINDOW)
  })

  it('spoofing warnings and unauthenticated refusals: logged at most EVENTS_PER_WINDOW + 1', async () => {
    const spoof = { 'client-cert': ':AAAA:' }
    for (let i = 0; i < N; i++) {
      expect(
        (
          await s.call('POST', '/oauth/token', {
            form: { grant_type: 'client_credentials' },
            headers: spoof,
          })
        ).status,
      ).toBe(401)
    }
    const spoofs = logs.filter((l) => l.includes('spoofing attempt'))
    expect(spoofs).toHaveLength(EVENTS_PER_WINDOW + 1)
    expect(spoofs.at(-1)).toMatch(/more from this peer not logged this minute/)
    const refused = logs.filter((l) => /"msg":"refused/.test(l))
    expect(refused).toHaveLength(EVENTS_PER_WINDOW + 1)
    // Still answered, every time: only the record is bounded.
    expect((await s.call('GET', '/healthz')).status).toBe(200)
  })
})
