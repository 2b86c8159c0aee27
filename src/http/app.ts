import { Hono } from 'hono'
import type { Logger } from 'pino'
import { CAError } from '../errors.js'
import { createAuthLimiter } from './auth-limit.js'
import { bodyLimit } from './body-limit.js'
import { refuseCrossOrigin } from './cross-origin.js'
import { isOAuthPath, oauthErrorResponse, problemResponse } from './errors.js'
import { createEventLimiter } from './event-limit.js'
import { createPeerSource, type AppEnv } from './mtls.js'
import { observeRequests } from './observe.js'
import type { Metrics } from '../ops/metrics.js'
import { auditRoutes } from './routes/audit.js'
import { caRoutes, type CaRouteDeps } from './routes/ca.js'
import { estRoutes } from './routes/est.js'
import { healthRoutes } from './routes/health.js'
import { lineageRoutes } from './routes/lineages.js'
import { oauthRoutes, type OAuthRouteDeps } from './routes/oauth.js'
import { statusRoutes, type StatusRouteDeps } from './routes/status.js'

export type AppDeps = Omit<
  CaRouteDeps & OAuthRouteDeps & StatusRouteDeps,
  'peer' | 'events' | 'onContained' | 'limiter'
> & {
  readonly logger: Logger
  /** Prometheus metrics (metrics.listen set), else none are kept. */
  readonly metrics?: Metrics | undefined
}

const READ_ONLY = new Set(['GET', 'HEAD'])

/** Builds the HTTP application from its services (no module-level state). */
export function createApp(deps: AppDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  // Refusals, spoofing attempts and unauthenticated requests are logged (and audited) at most
  // so often per peer.
  const events = createEventLimiter()
  app.use(observeRequests({ logger: deps.logger, events, metrics: deps.metrics }))
  app.use(async (c, next) => {
    await next()
    // A read may have seen a commit whose log flush is still in flight (SQLite flushes after
    // COMMIT, off the event loop): a response built from reads waits for it. A write's answer
    // already waited for its own flush, which covers everything before it in the log.
    if (READ_ONLY.has(c.req.method) || c.req.path === '/oauth/introspect')
      await deps.store.settled()
    // RFC 6797: the CA is HTTPS only; a browser or client that honours it never downgrades.
    c.res.headers.set('strict-transport-security', 'max-age=31536000')
  })
  app.use(bodyLimit(deps.config.server.maxBodyBytes))
  app.use(refuseCrossOrigin())
  const limiter = createAuthLimiter({ ...deps, limits: deps.config.limits })
  // A clone alarm revoked a lineage: build the CRL that lists it now (else the next reader does).
  const onContained = () => void deps.crl.refresh().catch(() => undefined)
  const peer = createPeerSource({ ...deps, events, onContained })
  const routeDeps = { ...deps, events, limiter, peer, onContained }
  app.route('/', caRoutes(routeDeps))
  app.route('/', statusRoutes(routeDeps))
  app.route('/', lineageRoutes(routeDeps))
  app.route('/', oauthRoutes(routeDeps))
  app.route('/', estRoutes(routeDeps))
  app.route('/', healthRoutes(routeDeps))
  app.route('/', auditRoutes(routeDeps))
  const allowedMethods = routeMethods(app)
  app.notFound((c) => {
    const allow = allowedMethods(c.req.path)
    if (allow === undefined)
      return problemResponse(
        c,
        new CAError('ERR_NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`),
      )
    // RFC 9110 §15.5.6: a known path with another method is 405, with the methods it takes.
    const e = new CAError('ERR_METHOD_NOT_ALLOWED', `${c.req.path} takes ${allow}`)
    const res = isOAuthPath(c.req.path) ? oauthErrorResponse(c, e) : problemResponse(c, e)
    res.headers.set('allow', allow)
    return res
  })
  app.onError((err, c) => {
    if (err instanceof CAError) {
      if (err.code === 'ERR_STORAGE_UNAVAILABLE' || err.code === 'ERR_STORAGE_FULL') {
        // One clear line, no stack: the database is busy, down or full; clients retry.
        deps.logger.warn(
          { req: c.var.requestId, path: c.req.path, code: err.code, err: err.message },
          'database unavailable: answered 503',
        )
      }
      if (err.code === 'ERR_CLONE_SUSPECTED') {
        // The audit event lineage.clone_detected says which generation was used from where.
        const peer = c.env?.incoming?.socket?.remoteAddress
        deps.logger.warn({ req: c.var.requestId, path: c.req.path, peer }, err.message)
      }
      if (
        err.code === 'ERR_CLIENT_CERT_REQUIRED' ||
        err.code === 'ERR_CERT_SUPERSEDED' ||
        err.code === 'ERR_FORBIDDEN' ||
        err.code === 'ERR_JOIN_TOKEN_INVALID' ||
        err.code === 'ERR_OIDC_TOKEN_INVALID' ||
        err.code === 'ERR_RATE_LIMITED'
      ) {
        const peer = c.env?.incoming?.socket?.remoteAddress
        const allowed = events.allow(`refused ${peer}`)
        if (allowed !== 'no') {
          const msg =
            allowed === 'yes' ? 'refused' : 'refused (more from this peer not logged this minute)'
          const check = err.extensions?.check
          deps.logger.info(
            { req: c.var.requestId, path: c.req.path, code: err.code, check, peer },
            msg,
          )
        }
      }
      return isOAuthPath(c.req.path) ? oauthErrorResponse(c, err) : problemResponse(c, err)
    }
    deps.logger.error(
      { req: c.var.requestId, err: { message: err.message, stack: err.stack } },
      'unhandled error',
    )
    const detail = `internal error (request ${c.var.requestId})`
    return c.body(
      JSON.stringify({ type: 'about:blank', title: 'Internal error', status: 500, detail }),
      500,
      {
        'content-type': 'application/problem+json',
      },
    )
  })
  return app
}

/** The `Allow` value for a path some route serves (with another method), else undefined. */
function routeMethods(app: Hono<AppEnv>): (path: string) => string | undefined {
  const byPattern = new Map<string, Set<string>>()
  for (const r of app.routes) {
    if (r.method === 'ALL') continue // middleware
    const methods = byPattern.get(r.path) ?? new Set<string>()
    methods.add(r.method)
    if (r.method === 'GET') methods.add('HEAD')
    byPattern.set(r.path, methods)
  }
  const table = [...byPattern].map(([pattern, methods]) => ({
    re: new RegExp(
      `^${pattern
        .replace(/\./g, '\\.')
        .replace(/:[^/]+/g, '[^/]+')
        .replace(/\*$/, '.+')}$`,
    ),
    allow: [...methods].join(', '),
  }))
  return (path) => table.find((t) => t.re.test(path))?.allow
}
