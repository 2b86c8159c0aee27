import type { Dispatcher } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { expectServing } from '../helpers/ca.js'
import { inspectDatabase, type DbInspector } from '../helpers/db-inspect.js'
import { EVENTS_PER_WINDOW } from '../../src/http/event-limit.js'
import { TestServer } from '../helpers/server.js'
import { CORPUS } from './corpus.js'
import { expectOcspAnswer } from './ocsp.js'
import {
  caseContext,
  changesBetween,
  databaseState,
  expectClearRefusal,
  RefusalBudget,
  send,
  settleCrls,
  type Auth,
  type CaseContext,
  type HostileCase,
  type RouteCorpus,
} from './harness.js'

/*
 * Issue 14, hostile input: every route's corpus against a real server over real TLS, with the
 * credentials its callers have. Each request: a clear 4xx (an OCSP request: the OCSP answer its
 * case names; an odd but valid request: an answer below 500), no database change beyond the
 * rate-limit counters and the bounded refusal events, a server still up.
 */
let s: TestServer
let db: DbInspector
let ctx: CaseContext
const agents = new Map<Auth, Dispatcher>()
const budget = new RefusalBudget()

beforeAll(async () => {
  // The audit checkpointer appends committed events to the Merkle log in the background (leaf
  // indexes, tiles, checkpoints): at its longest interval it runs once, at start, so what a
  // case finds changed is the case's doing (test/audit/* test the checkpointer).
  s = await TestServer.start({ audit: { checkpoint_interval: '1h' } })
  db = inspectDatabase({ dataDir: s.dataDir, url: s.databaseUrl })
  ctx = await caseContext(s)
})
afterAll(async () => {
  await Promise.all([...agents.values()].map((a) => a.close()))
  await db.close()
  await s.close()
})

/** One case: the request, the answer, the database before and after, the server after. */
async function runCase(row: RouteCorpus, c: HostileCase): Promise<void> {
  const what = `${row.route}: ${c.name}`
  const before = await databaseState(db)
  const r = await send(s, row, c.request(ctx), ctx, agents)
  try {
    if (c.ocsp)
      expectOcspAnswer(r, c.ocsp, { bundlePem: s.bundlePem, issuerPem: s.intermediatePem }, what)
    else if (c.mayAccept && r.status < 300) return
    else if (c.mayAccept) expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBeLessThan(500)
    else expectClearRefusal(r, what)
    budget.add(changesBetween(before, await databaseState(db), what))
  } finally {
    // An accepted enrolment spent the join token: the next case gets a fresh one.
    if (r.status < 300 && row.auth === 'join-token') ctx.joinToken = await s.joinToken(ctx.entryId)
    if (r.status < 300) await settleCrls(s)
    await expectServing(s)
  }
}

describe.each(CORPUS.map((row) => [row.route, row] as const))('%s', (_route, row) => {
  it.for(row.cases.map((c) => [c.name, c] as const))('%s', async ([, c]) => {
    await runCase(row, c)
  })
})

describe('refusal events one peer can cause are bounded (contract, "Operations")', () => {
  it.for([
    [
      'an unknown refresh token',
      (c: CaseContext) => `${c.refreshToken.slice(0, 16)}${'A'.repeat(43)}`,
    ],
    ['a refresh token of the wrong shape', () => 'not-a-token'],
  ] as const)('%s, sent 45 times', async ([, token]) => {
    const before = await databaseState(db)
    const agent = s.agent(ctx.workload)
    for (let i = 0; i < 2 * EVENTS_PER_WINDOW + 5; i++) {
      const r = await s.call('POST', '/oauth/token', {
        agent,
        form: { grant_type: 'refresh_token', refresh_token: token(ctx) },
      })
      expect([r.status, r.body.error]).toEqual([400, 'invalid_grant'])
    }
    const events = changesBetween(before, await databaseState(db), 'refused refreshes')
    expect(events.length).toBeLessThanOrEqual(EVENTS_PER_WINDOW)
  })
})
