import fc from 'fast-check'
import { expect } from 'vitest'
import { expectServing } from '../helpers/ca.js'
import type { DbInspector } from '../helpers/db-inspect.js'
import type { TestServer } from '../helpers/server.js'
import { newKey, pem, validCsr } from './der.js'
import {
  changesBetween,
  databaseState,
  expectClearRefusal,
  send,
  settleCrls,
  type Auth,
  type CaseContext,
  type HostileRequest,
  type RefusalBudget,
} from './harness.js'
import type { Dispatcher } from 'undici'

/*
 * Properties over mutated requests (fast-check): valid CSRs, JSON bodies and OAuth forms, each
 * mutated at random. Whatever comes out: never a 5xx, never a crash, and a refusal is clear and
 * changes nothing (beyond bounded refusal events). A mutation may happen to stay valid: then
 * the request may succeed, as it would have unmutated. CERTBOUND_FUZZ_RUNS sets the run count
 * (`npm run fuzz`: thousands; `npm test`: a handful).
 */

export const RUNS = Number(process.env.CERTBOUND_FUZZ_RUNS ?? 12)

export interface PropertyEnv {
  readonly s: TestServer
  readonly db: DbInspector
  readonly ctx: CaseContext
  readonly agents: Map<Auth, Dispatcher>
  readonly budget: RefusalBudget
}

/** One mutation of a byte string. */
export const byteMutation = fc.oneof(
  fc.record({
    op: fc.constant('flip' as const),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
  }),
  fc.record({
    op: fc.constant('set' as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
  fc.record({
    op: fc.constant('delete' as const),
    at: fc.nat(),
    n: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({
    op: fc.constant('repeat' as const),
    at: fc.nat(),
    n: fc.integer({ min: 1, max: 64 }),
  }),
)
type ByteMutation = typeof byteMutation extends fc.Arbitrary<infer T> ? T : never

export function mutate(input: Buffer, mutations: readonly ByteMutation[]): Buffer {
  let b = Buffer.from(input)
  for (const m of mutations) {
    const at = b.length === 0 ? 0 : m.at % b.length
    if (m.op === 'flip') b[at]! ^= 1 << m.bit
    else if (m.op === 'set') b[at] = m.byte
    else if (m.op === 'truncate') b = b.subarray(0, at)
    else if (m.op === 'insert') b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)])
    else if (m.op === 'delete') b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)])
    else b = Buffer.concat([b.subarray(0, at + m.n), b.subarray(at)])
  }
  return b
}

/**
 * Sends `req` on `route` and checks the outcome: below 500 always; a refusal (4xx) clear and
 * without changes; a success (the mutation stayed valid) allowed if `mayAccept`.
 */
export async function check(
  env: PropertyEnv,
  route: string,
  auth: Auth,
  req: HostileRequest,
  mayAccept: boolean,
): Promise<void> {
  const { s, db, ctx, agents, budget } = env
  const before = await databaseState(db)
  const r = await send(s, { route, auth, cases: [] }, req, ctx, agents)
  const what = `${route} ${JSON.stringify(req).slice(0, 300)}`
  try {
    expect(r.status, `${what}: ${r.text.slice(0, 300)}`).toBeLessThan(500)
    if (r.status < 300 && mayAccept) return
    expectClearRefusal(r, what)
    budget.add(changesBetween(before, await databaseState(db), what))
  } finally {
    if (r.status < 300 && auth === 'join-token') ctx.joinToken = await s.joinToken(ctx.entryId)
    if (r.status < 300) await settleCrls(s)
    await expectServing(s)
  }
}

const json = (body: unknown): HostileRequest => ({
  headers: { 'content-type': 'application/json' },
  body: typeof body === 'string' ? body : JSON.stringify(body),
})

/** A mutated CSR (DER inside PEM inside JSON) on /v1/enroll: refused unless unchanged. */
export function csrProperty(env: PropertyEnv) {
  const original = validCsr(env.ctx.spiffeId, newKey())
  return fc.asyncProperty(fc.array(byteMutation, { minLength: 1, maxLength: 4 }), async (ms) => {
    const der = mutate(original, ms)
    fc.pre(!der.equals(original))
    await check(env, 'POST /v1/enroll', 'join-token', json({ csr: pem(der) }), false)
  })
}

/** Valid JSON bodies of the admin and certificate routes, then a member dropped, added or replaced. */
export function jsonProperty(env: PropertyEnv, patchEntryId: string) {
  const { ctx } = env
  const routes: [string, Auth, string, () => Record<string, unknown>][] = [
    [
      'POST /v1/entries',
      'admin',
      '/v1/entries',
      () => ({ spiffe_id: 'spiffe://example.org/prop/e', dns_names: ['a.example.org'], ttl: '1h' }),
    ],
    [
      'PATCH /v1/entries/:id',
      'admin',
      `/v1/entries/${patchEntryId}`,
      () => ({ enabled: true, ttl: '1h' }),
    ],
    [
      'POST /v1/entries/:id/join-tokens',
      'admin',
      `/v1/entries/${ctx.entryId}/join-tokens`,
      () => ({ ttl: '1h' }),
    ],
    [
      'POST /v1/certificates/:serial/revoke',
      'admin',
      `/v1/certificates/${ctx.revocable}/revoke`,
      () => ({ reason: 'superseded' }),
    ],
    ['POST /v1/enroll', 'join-token', '/v1/enroll', () => ({ csr: pem(validCsr(ctx.spiffeId)) })],
    [
      'POST /v1/renew',
      'workload',
      '/v1/renew',
      () => ({ csr: pem(validCsr('spiffe://example.org/hostile/workload')) }),
    ],
  ]
  const change = fc.oneof(
    fc.record({ op: fc.constant('drop' as const), key: fc.nat() }),
    fc.record({
      op: fc.constant('add' as const),
      key: fc.string({ maxLength: 12 }),
      value: fc.jsonValue({ maxDepth: 3 }),
    }),
    fc.record({
      op: fc.constant('replace' as const),
      key: fc.nat(),
      value: fc.jsonValue({ maxDepth: 3 }),
    }),
    fc.record({ op: fc.constant('whole' as const), value: fc.jsonValue({ maxDepth: 4 }) }),
    fc.record({
      op: fc.constant('text' as const),
      value: fc.string({ unit: 'binary', maxLength: 200 }),
    }),
  )
  return fc.asyncProperty(
    fc.nat(routes.length - 1),
    fc.array(change, { minLength: 1, maxLength: 3 }),
    async (i, changes) => {
      const [route, auth, path, valid] = routes[i]!
      let body: unknown = valid()
      for (const c of changes) body = applyChange(body, c)
      await check(env, route, auth, { ...json(body), path }, true)
    },
  )
}

function applyChange(body: unknown, c: { op: string; key?: unknown; value?: unknown }): unknown {
  if (c.op === 'whole') return c.value
  if (c.op === 'text') return String(c.value)
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return body
  const obj = { ...(body as Record<string, unknown>) }
  const keys = Object.keys(obj)
  const named =
    typeof c.key === 'number' && keys.length ? keys[c.key % keys.length]! : String(c.key)
  if (c.op === 'drop') delete obj[named]
  else obj[named] = c.value
  return obj
}

/** OAuth forms with parameters dropped, repeated, added or replaced by random (binary) text. */
export function formProperty(env: PropertyEnv) {
  const { ctx } = env
  // The real refresh token is never sent unmutated: a second use of it is reuse (a state change).
  const forms: [string, Record<string, string>][] = [
    ['POST /oauth/token', { grant_type: 'client_credentials', scope: 'read' }],
    ['POST /oauth/token', { grant_type: 'refresh_token', refresh_token: ctx.refreshToken }],
    ['POST /oauth/introspect', { token: ctx.accessToken }],
    ['POST /oauth/revoke', { token: ctx.refreshToken }],
  ]
  const text = fc.string({ unit: 'binary', maxLength: 80 })
  const change = fc.oneof(
    fc.record({ op: fc.constant('drop' as const), key: fc.nat() }),
    fc.record({ op: fc.constant('repeat' as const), key: fc.nat() }),
    fc.record({ op: fc.constant('add' as const), key: text, value: text }),
    fc.record({ op: fc.constant('replace' as const), key: fc.nat(), value: text }),
    fc.record({ op: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 200 }) }),
  )
  return fc.asyncProperty(
    fc.nat(forms.length - 1),
    fc.array(change, { minLength: 1, maxLength: 3 }),
    async (i, changes) => {
      const [route, base] = forms[i]!
      let pairs: [string, string][] = Object.entries(base)
      let raw: Buffer | undefined
      for (const c of changes) {
        const at = 'key' in c && typeof c.key === 'number' ? c.key % (pairs.length || 1) : 0
        if (c.op === 'drop') pairs = pairs.filter((_, j) => j !== at)
        else if (c.op === 'repeat' && pairs[at]) pairs = [...pairs, pairs[at]!]
        else if (c.op === 'add') pairs = [...pairs, [c.key, c.value]]
        else if (c.op === 'replace' && pairs[at]) pairs[at] = [pairs[at]![0], c.value]
        else if (c.op === 'bytes') raw = Buffer.from(c.bytes)
      }
      const body = raw ?? Buffer.from(new URLSearchParams(pairs).toString())
      fc.pre(
        !pairs.some(([k, v]) => k === 'refresh_token' && v === ctx.refreshToken) ||
          raw !== undefined,
      )
      fc.pre(!(route === 'POST /oauth/revoke' && pairs.some(([, v]) => v === ctx.refreshToken)))
      const req = { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body }
      await check(env, route, 'workload', req, true)
    },
  )
}
