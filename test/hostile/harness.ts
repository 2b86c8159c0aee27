import { connect } from 'node:tls'
import { request, type Dispatcher } from 'undici'
import { expect } from 'vitest'
import type { ApiResponse, Credential, TestServer } from '../helpers/server.js'
import { ocspRequest } from '../helpers/ocsp.js'
import { newKey, pem, validCsr } from './der.js'
import type { OcspOutcome } from './ocsp.js'

/*
 * The hostile-input harness (issue 14): every route has a corpus of bad requests, one table row
 * per route; each request must be answered with a clear 4xx (on OCSP routes: the protocol's own
 * error response) and change nothing in the database beyond rate-limit counters and the bounded
 * failed-authentication events (contract, "Operations").
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
  /** An OCSP request: the answer is an OCSPResponse of this status (RFC 6960 §2.3), no change. */
  readonly ocsp?: OcspOutcome
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
  /** A lineage the lineage revocation row may revoke; `lineageId` is the workload's. */
  readonly revocableLineage: string
  readonly lineageId: string
  /** The issuing CA's key id (hex of its subject key identifier). */
  readonly caKeyId: string
  /** An OCSP request (DER, no nonce) openssl made for the workload's certificate. */
  readonly ocspRequest: Buffer
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
  const lineageOf = async (serial: string) => {
    const r = await s.call('GET', `/v1/certificates/${serial}`, { as: s.admin })
    expect(r.body.lineage_id, r.text).toMatch(/^[A-Za-z0-9-]+$/)
    return r.body.lineage_id as string
  }
  const lineageSerial = (await s.enroll('spiffe://example.org/hostile/lineage')).serial
  return {
    revocable,
    revocableLineage: await lineageOf(lineageSerial),
    lineageId: await lineageOf(workload.serial),
    caKeyId: s.running.ca.current.keyId,
    ocspRequest: ocspRequest(workload.certPem, s.intermediatePem, { nonce: false }),
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
): Promise<ApiResponse & { fromParser: boolean; bytes?: Buffer }> {
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
  const bytes = Buffer.from(await res.body.arrayBuffer())
  const text = bytes.toString('utf8')
  let body: any = text
  try {
    body = JSON.parse(text)
  } catch {
    // not JSON
  }
  return { status: res.statusCode, headers: res.headers, body, text, bytes, fromParser: false }
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

/**
 * After an accepted request, before the next case: the OCSP answers a revocation re-signs in
 * the background are stored, and every CA's stored CRL made current (a read builds it). A
 * revocation (a revoked certificate or lineage, a superseded next generation) leaves the stored
 * CRLs stale for the next reader, or the maintenance leader within 10 s: neither may land
 * inside a later case's snapshots, as if the case had made it.
 */
export async function settleCrls(s: TestServer): Promise<void> {
  await s.running.idle()
  for (const ca of s.running.ca.cas) {
    if (!ca.issuer) continue
    const r = await s.call('GET', `/v1/ca/${ca.keyId}/crl`)
    expect(r.status, `CRL of ${ca.keyId}`).toBe(200)
  }
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

export { changesBetween, databaseState, RefusalBudget, REFUSAL_EVENTS } from './db-changes.js'
