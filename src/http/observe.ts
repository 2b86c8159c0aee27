import { randomUUID } from 'node:crypto'
import type { Context } from 'hono'
import { createMiddleware } from 'hono/factory'
import { matchedRoutes } from 'hono/route'
import type { Logger } from 'pino'
import { CAError } from '../errors.js'
import type { Metrics } from '../ops/metrics.js'
import type { EventLimiter } from './event-limit.js'
import type { AppEnv } from './mtls.js'

/** W3C Trace Context §3.2: version-traceid-parentid-flags, lowercase hex. */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/

/** The trace a request belongs to: the caller's (a valid `traceparent`), or a new one. */
export function traceOf(header: string | undefined): { traceId: string; flags: string } {
  const m = header === undefined ? null : TRACEPARENT.exec(header.trim())
  // Version ff and all-zero ids are invalid; version 00 has exactly four fields.
  if (
    m &&
    m[1] !== 'ff' &&
    !/^0+$/.test(m[2]!) &&
    !/^0+$/.test(m[3]!) &&
    !(m[1] === '00' && m[5] !== undefined)
  )
    return { traceId: m[2]!, flags: m[4]! }
  return { traceId: randomUUID().replaceAll('-', ''), flags: '00' }
}

/** Certificates issued, by the route and status that say so. */
const ISSUING: Readonly<Record<string, string>> = {
  'POST /v1/enroll 201': 'enroll',
  'POST /v1/renew 201': 'renew',
}

/** The route pattern a request matched (`/v1/entries/:id`), never its path; or `unmatched`. */
export function routeOf(c: Context): string {
  const last = matchedRoutes(c).at(-1)
  return last === undefined || last.method === 'ALL' ? 'unmatched' : last.path
}

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'])

/**
 * Every request: an id (this server's span of the caller's W3C trace, or of a new one) echoed in
 * `x-request-id` and `traceparent`; a JSON log line with route, status, latency, peer and SPIFFE
 * ID (never headers or bodies, which carry tokens and CSRs); and the request metrics. A line per
 * request is written at info for authenticated clients, and for anyone else at most
 * EVENTS_PER_WINDOW a minute per peer address (the rest at debug), so a flood cannot fill the log.
 */
export function observeRequests(deps: {
  logger: Logger
  events: EventLimiter
  metrics: Metrics | undefined
}) {
  const { logger, events, metrics } = deps
  return createMiddleware<AppEnv>(async (c, next) => {
    const started = performance.now()
    const trace = traceOf(c.req.header('traceparent'))
    const span = randomUUID().replaceAll('-', '').slice(16)
    c.set('requestId', span)
    await next()
    const seconds = (performance.now() - started) / 1000
    const route = routeOf(c)
    const method = METHODS.has(c.req.method) ? c.req.method : 'OTHER'
    const status = c.res.status
    c.res.headers.set('x-request-id', span)
    c.res.headers.set('traceparent', `00-${trace.traceId}-${span}-${trace.flags}`)
    if (metrics) record(metrics, c, route, method, status, seconds)
    if (!logger.isLevelEnabled('debug')) return
    const spiffeId = c.var.client?.spiffeId
    const peer = c.env?.incoming?.socket?.remoteAddress
    const level =
      spiffeId !== undefined || events.allow(`access ${peer}`) === 'yes' ? 'info' : 'debug'
    if (!logger.isLevelEnabled(level)) return
    logger[level](
      {
        req: span,
        trace_id: trace.traceId,
        method,
        route,
        ...(route === 'unmatched' && { path: c.req.path.slice(0, 200) }),
        status,
        ms: Math.round(seconds * 10_000) / 10,
        peer,
        ...(spiffeId !== undefined && { spiffe_id: spiffeId }),
      },
      'request',
    )
  })
}

function record(
  metrics: Metrics,
  c: Context<AppEnv>,
  route: string,
  method: string,
  status: number,
  seconds: number,
): void {
  metrics.request(route, method, status, seconds)
  const issued = ISSUING[`${method} ${route} ${status}`]
  if (issued !== undefined) metrics.issued(issued)
  const error = c.error
  if (error instanceof CAError) {
    metrics.refused(route, error.code)
    if (route === '/oauth/token') metrics.tokenRefused(error.code)
  } else if (route === '/oauth/token' && status === 200) {
    metrics.tokenGranted(c.var.grantType ?? 'unknown')
  }
}
