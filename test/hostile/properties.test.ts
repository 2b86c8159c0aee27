import fc from 'fast-check'
import type { Dispatcher } from 'undici'
import { afterAll, beforeAll, describe, it } from 'vitest'
import { inspectDatabase } from '../helpers/db-inspect.js'
import { TestServer } from '../helpers/server.js'
import { caseContext, RefusalBudget, type Auth } from './harness.js'
import { csrProperty, formProperty, jsonProperty, RUNS, type PropertyEnv } from './properties.js'

/*
 * Issue 14: fast-check properties over mutated CSRs, JSON bodies and OAuth forms, against a real
 * server over real TLS. `npm test` runs a few cases of each; `npm run fuzz` runs thousands
 * (CERTBOUND_FUZZ_RUNS). A failure prints the seed and the shrunk counterexample.
 */
let env: PropertyEnv
let patchEntryId: string
beforeAll(async () => {
  // As in corpus.test.ts: the audit checkpointer runs once, at start, not between two snapshots.
  const s = await TestServer.start({ audit: { checkpoint_interval: '1h' } })
  env = {
    s,
    db: inspectDatabase({ dataDir: s.dataDir, url: s.databaseUrl }),
    ctx: await caseContext(s),
    agents: new Map<Auth, Dispatcher>(),
    budget: new RefusalBudget(),
  }
  patchEntryId = await s.createEntry('spiffe://example.org/prop/patched')
})
afterAll(async () => {
  await Promise.all([...env.agents.values()].map((a) => a.close()))
  await env.db.close()
  await env.s.close()
})

const timeout = Math.max(60_000, RUNS * 2_000)
// CERTBOUND_FUZZ_SEED replays a run (fast-check prints the seed of a failing one).
const seed = process.env.CERTBOUND_FUZZ_SEED
const params = { numRuns: RUNS, endOnFailure: true, ...(seed ? { seed: Number(seed) } : {}) }

describe(`mutated requests (${RUNS} runs per property)`, () => {
  it('a mutated CSR is refused clearly and changes nothing', { timeout }, () =>
    fc.assert(csrProperty(env), params),
  )
  it('a mutated JSON body never gets a 5xx; a refusal changes nothing', { timeout }, () =>
    fc.assert(jsonProperty(env, patchEntryId), params),
  )
  it('a mutated OAuth form never gets a 5xx; a refusal changes nothing', { timeout }, () =>
    fc.assert(formProperty(env), params),
  )
})
