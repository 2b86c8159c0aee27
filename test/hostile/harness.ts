import { connect } from 'node:tls'
import { request, type Dispatcher } from 'undici'
import { expect } from 'vitest'
import { EVENTS_PER_WINDOW } from '../../src/http/event-limit.js'
import type { DbInspector } from '../helpers/db-inspect.js'
import type { ApiResponse, Credential, TestServer } from '../helpers/server.js'
import { newKey, pem, validCsr } from './der.js'

/*
 * The hostile-input harness (issue 14): every route has a corpus of bad requests, one table row
 * per route; each request must be answered with a clear 4xx and change nothing in the database
 * beyond rate-limit counters and the bounded failed-authentication events. A route that does not
 * exist yet (OCSP, EST) keeps its row: the row is skipped while its route answers 404.
 */

export type Auth = 'none' | 'join-token' | 'workload' | 'admin'

/** One request. `raw` is sent as it is over TLS (bytes undici would refuse to send). */
export interface HostileRequest {
  readonly method?: string
  readonly path?: string
  readonly headers?: Record<string, string>
  readonly body?: string | Buffer
  readonly raw?: Buffer
}

export interface HostileCase {
  readonly name: string
  readonly request: (ctx: CaseContext) => HostileRequest
  /** Not necessarily a refusal (an odd but valid request): then < 500 and no change suffices. */
  readonly mayAccept?: boolean
}

/** A table row: a route, how its callers authenticate, and its corpus. */
export interface RouteCorpus {
  /** `METHOD /path` as the router names it (`:param` for parameters). */
  readonly route: string
  readonly auth: Auth
  /** The concrete path (parameters filled in); default: the route's path. */
  readonly path?: (ctx: CaseContext) => string
  readonly cases: readonly HostileCase[]
}

/** What a case can build on: live credentials and secrets of the server under test. */
export interface CaseContext {
  readonly spiffeId: string
  readonly entryId: string
  /** Unspent (refusals never spend it; the harness makes a new one after an accepted case). */
  joinToken: string
  readonly workload: Credential
  readonly refreshToken: string
  readonly accessToken: string
  /** Serial of a certificate the revocation row may revoke. */
  readonly revocable: string
  /** A CSR for `spiffeId` that would be accepted. */
  readonly csrDer: Buffer
  readonly csrPem: string
}

export async function caseContext(s: TestServer): Promise<CaseContext> {
  const spiffeId = 'spiffe://example.org/hostile/target'
  const entryId = await s.createEntry(spiffeId)
  const workload = await s.enroll('spiffe://example.org/hostile/workload')
  const t = await s.call('POST', '/oauth/token', {
    as: workload,
    form: { grant_type: 'client_credentials' },
  })
  expect(t.status, t.text).toBe(200)
  const csrDer = validCsr(spiffeId, newKey())
  const revocable = (await s.enroll('spiffe://example.org/hostile/revocable')).serial
  return {
    revocable,
    spiffeId,
    entryId,
    joinToken: await s.joinToken(entryId),
    workload,
    refreshToken: t.body.refresh_token,
    accessToken: t.body.access_token,
    csrDer,
    csrPem: pem(csrDer),
  }
}

export const routeMethod = (route: string) => route.split(' ')[0]!
export const routePath = (route: string) => route.split(' ')[1]!

/** The credential a route's callers present. */
function credentialFor(s: TestServer, auth: Auth, ctx: CaseContext) {
  if (auth === 'admin') return s.admin
  if (auth === 'workload') return ctx.workload
  return undefined
}

/** Sends one hostile request the way its route's callers would (their certificate, their token). */
export async function send(
  s: TestServer,
  row: RouteCorpus,
  req: HostileRequest,
  ctx: CaseContext,
  agents: Map<Auth, Dispatcher>,
): Promise<ApiResponse & { fromParser: boolean }> {
  const cred = credentialFor(s, row.auth, ctx)
  if (req.raw) return { ...(await sendRaw(s, req.raw, cred)), fromParser: true }
  let agent = agents.get(row.auth)
  if (!agent) agents.set(row.auth, (agent = s.agent(cred)))
  const headers: Record<string, string> = {
    ...(row.auth === 'join-token' ? { authorization: `Bearer ${ctx.joinToken}` } : {}),
    ...req.headers,
  }
  const res = await request(`${s.url}${req.path ?? row.path?.(ctx) ?? routePath(row.route)}`, {
    method: (req.method ?? routeMethod(row.route)) as 'POST',
    dispatcher: agent,
    headers,
    body: req.body,
  })
  const text = await res.body.text()
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: res.statusCode, headers: res.headers, body, text, fromParser: false }
}

/**
 * Bytes over a TLS connection of their own; the answer read until the server closes. For what
 * undici refuses to send: CR or LF inside a header, NUL bytes, contradictory framing.
 */
export function sendRaw(
  s: TestServer,
  bytes: Buffer,
  cred?: { certPem: string; keyPem: string },
): Promise<ApiResponse> {
  const { port } = new URL(s.url)
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port: Number(port),
      ca: s.bundlePem,
      servername: 'localhost',
      ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}),
    })
    const chunks: Buffer[] = []
    // Written, not ended: a TLS close_notify now would end the exchange before the answer.
    socket.on('secureConnect', () => socket.write(bytes, () => undefined))
    socket.on('data', (d: Buffer) => chunks.push(d))
    // The server may answer and close before the whole body is written (a 413): that is an
    // answer. An error with nothing received is not.
    socket.on('error', (e) => (chunks.length ? socket.destroy() : reject(e)))
    socket.on('close', () => resolve(parseRaw(Buffer.concat(chunks).toString('latin1'))))
  })
}

function parseRaw(all: string): ApiResponse {
  const [head = '', ...rest] = all.split('\r\n\r\n')
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0)
  const headers: Record<string, string> = {}
  for (const line of head.split('\r\n').slice(1)) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim()
  }
  let text = rest.join('\r\n\r\n')
  if (headers['transfer-encoding'] === 'chunked') text = unchunk(text)
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status, headers, body, text }
}

function unchunk(text: string): string {
  let out = ''
  for (let pos = 0; pos < text.length;) {
    const eol = text.indexOf('\r\n', pos)
    const size = parseInt(text.slice(pos, eol), 16)
    if (!(size > 0)) break
    out += text.slice(eol + 2, eol + 2 + size)
    pos = eol + 2 + size + 2
  }
  return out
}

/** Whether the server has this route at all (OCSP and EST rows wait for theirs). */
export async function routeExists(s: TestServer, row: RouteCorpus, ctx: CaseContext) {
  const r = await request(`${s.url}${row.path?.(ctx) ?? routePath(row.route)}`, {
    method: routeMethod(row.route) as 'POST',
    dispatcher: s.agent(),
  })
  const text = await r.body.text()
  return !(r.statusCode === 404 && text.includes('no route for'))
}

/** A clear refusal: 4xx, and a body saying why (problem+json, or RFC 6749 JSON on /oauth/). */
export function expectClearRefusal(r: ApiResponse & { fromParser?: boolean }, what: string) {
  expect(r.status, `${what}: ${r.status} ${r.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
  expect(r.status, `${what}: ${r.status} ${r.text.slice(0, 300)}`).toBeLessThan(500)
  // Node's own HTTP parser refuses malformed framing before any route: a bare 400 is clear there.
  if (r.fromParser && r.headers['content-type'] === undefined) return
  const type = String(r.headers['content-type'] ?? '')
  if (type.startsWith('application/problem+json')) {
    expect(r.body.status, what).toBe(r.status)
    expect(typeof r.body.detail, what).toBe('string')
    expect(r.body.detail.length, what).toBeGreaterThan(10)
  } else {
    expect(type, `${what}: ${r.text.slice(0, 200)}`).toMatch(/^application\/json/)
    expect(typeof r.body.error, what).toBe('string')
  }
  expect(r.text, what).not.toMatch(/internal error|\bat .+\.ts:\d+/)
}

/** Audit events a refused request may cause (counted, bounded), and tables it may touch. */
export const REFUSAL_EVENTS = ['token.refused', 'token.refresh_refused', 'auth.failed']
const MAY_CHANGE = /^(leases|.*rate_limit.*|.*failed_auth.*)$/

/** Every row of every table a refusal must leave alone, read in one snapshot. */
export async function databaseState(db: DbInspector): Promise<Map<string, unknown[]>> {
  return db.consistent(async (q) => {
    const tables = await q<{ name: string }>(
      db.backend === 'sqlite'
        ? `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
        : `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'`,
    )
    const state = new Map<string, unknown[]>()
    for (const { name } of tables.sort((a, b) => a.name.localeCompare(b.name))) {
      if (MAY_CHANGE.test(name)) continue
      const rows = await q(`SELECT * FROM "${name}" ORDER BY 1`)
      const text = (r: unknown) =>
        JSON.stringify(r, (_k, v) => (Buffer.isBuffer(v) || v?.type === 'Buffer' ? hex(v) : v))
      state.set(name, rows.map(text))
    }
    return state
  })
}

const hex = (v: Buffer | { data: number[] }) =>
  Buffer.isBuffer(v) ? v.toString('hex') : Buffer.from(v.data).toString('hex')

/**
 * Compares two states: only new audit rows of REFUSAL_EVENTS may differ. Returns those rows'
 * actions so the caller can hold them to their bound.
 */
export function changesBetween(
  before: Map<string, unknown[]>,
  after: Map<string, unknown[]>,
  what: string,
): string[] {
  const refusals: string[] = []
  for (const [table, rows] of after) {
    const old = before.get(table) ?? []
    if (table !== 'audit_events') {
      expect(rows, `${what}: table ${table} changed`).toEqual(old)
      continue
    }
    expect(rows.slice(0, old.length), `${what}: audit events changed`).toEqual(old)
    for (const row of rows.slice(old.length)) {
      const action = JSON.parse(row as string).action as string
      expect(REFUSAL_EVENTS, `${what}: wrote audit event ${action}`).toContain(action)
      refusals.push(action)
    }
  }
  expect([...after.keys()], `${what}: tables`).toEqual([...before.keys()])
  return refusals
}

/**
 * The bound on failed-authentication events one peer can cause (contract, "Operations"): at most
 * EVENTS_PER_WINDOW of each kind per minute, from the first one recorded.
 */
export class RefusalBudget {
  readonly #counts = new Map<string, number>()
  readonly #started = Date.now()

  add(actions: readonly string[]): void {
    for (const a of actions) this.#counts.set(a, (this.#counts.get(a) ?? 0) + 1)
    const windows = Math.floor((Date.now() - this.#started) / 60_000) + 1
    for (const [a, n] of this.#counts)
      expect(n, `${a} events from one peer in ${windows} minute(s)`).toBeLessThanOrEqual(
        EVENTS_PER_WINDOW * windows,
      )
  }
}
