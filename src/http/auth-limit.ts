import { isIP } from 'node:net'
import type { Logger } from 'pino'
import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import { CAError, RateLimitedError } from '../errors.js'

/**
 * `limits.failed_auth` per `limits.window`: failed authentications (bad join tokens; missing,
 * untrusted, unknown or revoked client certificates; later bad OIDC tokens) are counted per
 * peer address in the database, so the limit holds across workers and replicas. Beyond the
 * limit, that address's further unauthenticated attempts answer 429 with `Retry-After`.
 *
 * What it costs: a request with a valid client certificate never reaches the limiter (no read,
 * no write). A failed attempt under the limit is one upsert. Once a process has seen a peer
 * over the limit it remembers until when, and answers that peer's attempts with no database
 * work at all; a join-token attempt reads the peer's row first (one primary-key read), so a
 * token guessed after the limit is refused without being checked.
 */
export interface AuthLimiter {
  /** Before a bearer credential (join token, OIDC token) is checked: 429 when over the limit. */
  check(peer: string | undefined): Promise<void>
  /** A failed authentication: the error to answer, `error` itself or 429 once over the limit. */
  failed(peer: string | undefined, error: CAError): Promise<CAError>
}

/** Processes remember this many blocked peers at most (the database holds them all). */
const MAX_REMEMBERED = 10_000

export function createAuthLimiter(deps: {
  store: Store
  clock: Clock
  logger: Logger
  limits: { failedAuth: number; windowMs: number }
}): AuthLimiter {
  const { store, clock, logger } = deps
  const { failedAuth: limit, windowMs } = deps.limits
  const blockedUntil = new Map<string, number>()
  const refusal = (until: number, now: number) =>
    new RateLimitedError(Math.max(1, Math.ceil((until - now) / 1000)))
  const remember = (key: string, until: number) => {
    blockedUntil.delete(key)
    blockedUntil.set(key, until)
    if (blockedUntil.size > MAX_REMEMBERED) blockedUntil.delete(blockedUntil.keys().next().value!)
  }
  const cached = (key: string, now: number) => {
    const until = blockedUntil.get(key)
    if (until === undefined) return undefined
    if (until > now) return until
    blockedUntil.delete(key)
    return undefined
  }
  /** Counts a failure; the 429 to answer once over the limit, else undefined. */
  async function count(key: string, now: number): Promise<RateLimitedError | undefined> {
    const window = await store.authFailures.record(key, now, windowMs)
    if (window.failures <= limit) return undefined
    const end = window.windowStart + windowMs
    remember(key, end)
    // Of all processes, the one whose upsert went over the limit first says so.
    if (window.failures === limit + 1) await auditBlocked(key, window.windowStart, end)
    return refusal(end, now)
  }
  return {
    async check(peer) {
      const key = peerKey(peer)
      if (key === undefined) return
      const now = clock.now().getTime()
      const until = cached(key, now)
      if (until !== undefined) throw refusal(until, now)
      const window = await store.authFailures.current(key, now, windowMs)
      // Over the limit: this attempt is counted as one more failure (once per process).
      if (window && window.failures >= limit) {
        const refused = await count(key, now)
        // Undefined only when the window ended meanwhile: then this attempt goes ahead.
        if (refused) throw refused
      }
    },
    async failed(peer, error) {
      const key = peerKey(peer)
      if (key === undefined) return error
      const now = clock.now().getTime()
      const until = cached(key, now)
      if (until !== undefined) return refusal(until, now)
      try {
        return (await count(key, now)) ?? error
      } catch (e) {
        // The refusal stands; only its count is lost (the database is busy or down).
        logger.warn({ peer: key, err: (e as Error).message }, 'failed authentication not counted')
        return error
      }
    },
  }

  // One bounded audit event per peer and window: the moment it went over the limit.
  async function auditBlocked(key: string, start: number, end: number) {
    const at = clock.now().getTime()
    logger.warn({ peer: key, until: new Date(end).toISOString() }, 'peer over limits.failed_auth')
    await store.audit
      .record(at, {
        actor: `peer:${key}`,
        action: 'auth.rate_limited',
        subject: key,
        details: {
          failures: limit + 1,
          window_start: new Date(start).toISOString(),
          until: new Date(end).toISOString(),
        },
      })
      .catch((e: Error) => logger.warn({ err: e.message }, 'rate-limit audit event not written'))
  }
}

/**
 * The address a limit counts: IPv4 as it is (an IPv4-mapped IPv6 address as its IPv4), IPv6 by
 * its /64, the smallest block a host is usually given. Undefined without an address (an
 * in-process request): nothing to count.
 */
export function peerKey(address: string | undefined): string | undefined {
  if (address === undefined || address === '') return undefined
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (mapped) return mapped[1]
  if (isIP(address) !== 6) return address
  return `${expandIpv6(address).slice(0, 4).join(':')}::/64`
}

function expandIpv6(address: string): string[] {
  const [head, tail] = address.split('%')[0]!.split('::') as [string, string | undefined]
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const missing = 8 - left.length - right.length
  const groups = [...left, ...Array<string>(Math.max(0, missing)).fill('0'), ...right]
  return groups.map((g) => (g.includes('.') ? g : Number.parseInt(g, 16).toString(16)))
}

/** The refusals that count as a failed authentication (a valid credential that may not: no). */
export const AUTH_FAILURE_CODES: ReadonlySet<string> = new Set([
  'ERR_CLIENT_CERT_REQUIRED',
  'ERR_JOIN_TOKEN_INVALID',
])

/**
 * Runs an authentication step under the limit: a failure is counted (and becomes 429 beyond
 * the limit); with `precheck` (bearer credentials, which could be guessed) a peer already over
 * the limit is refused before the credential is even looked at.
 */
export async function limitFailedAuth<T>(
  limiter: AuthLimiter,
  peer: string | undefined,
  authenticate: () => Promise<T>,
  options: { precheck?: boolean } = {},
): Promise<T> {
  if (options.precheck) await limiter.check(peer)
  try {
    return await authenticate()
  } catch (e) {
    if (e instanceof CAError && AUTH_FAILURE_CODES.has(e.code)) throw await limiter.failed(peer, e)
    throw e
  }
}
