import { isIP } from 'node:net'
import type { Logger } from 'pino'
import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import { CAError, RateLimitedError } from '../errors.js'

/**
 * `limits.failed_auth` per `limits.window`: failed authentications (bad join tokens; missing,
 * untrusted, unknown or revoked client certificates; bad OIDC tokens and renewal proofs) are counted per
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

interface LimiterDeps {
  readonly store: Store
  readonly clock: Clock
  readonly logger: Logger
  readonly limits: { readonly failedAuth: number; readonly windowMs: number }
}

export function createAuthLimiter(deps: LimiterDeps): AuthLimiter {
  return new DatabaseAuthLimiter(deps)
}

/** The counts live in the database; each process remembers only whom it saw over the limit. */
class DatabaseAuthLimiter implements AuthLimiter {
  readonly #blockedUntil = new Map<string, number>()
  constructor(private readonly deps: LimiterDeps) {}

  async check(peer: string | undefined): Promise<void> {
    const key = peerKey(peer)
    if (key === undefined) return
    const now = this.deps.clock.now().getTime()
    const until = this.#cached(key, now)
    if (until !== undefined) throw refusal(until, now)
    const { failedAuth, windowMs } = this.deps.limits
    const window = await this.deps.store.authFailures.current(key, now, windowMs)
    // Over the limit: this attempt is counted as one more failure (once per process).
    if (window && window.failures >= failedAuth) {
      const refused = await this.#count(key, now)
      // Undefined only when the window ended meanwhile: then this attempt goes ahead.
      if (refused) throw refused
    }
  }

  async failed(peer: string | undefined, error: CAError): Promise<CAError> {
    const key = peerKey(peer)
    if (key === undefined) return error
    const now = this.deps.clock.now().getTime()
    const until = this.#cached(key, now)
    if (until !== undefined) return refusal(until, now)
    try {
      return (await this.#count(key, now)) ?? error
    } catch (e) {
      // The refusal stands; only its count is lost (the database is busy or down).
      const err = (e as Error).message
      this.deps.logger.warn({ peer: key, err }, 'failed authentication not counted')
      return error
    }
  }

  /** Counts a failure; the 429 to answer once over the limit, else undefined. */
  async #count(key: string, now: number): Promise<RateLimitedError | undefined> {
    const { failedAuth, windowMs } = this.deps.limits
    const window = await this.deps.store.authFailures.record(key, now, windowMs)
    if (window.failures <= failedAuth) return undefined
    const end = window.windowStart + windowMs
    this.#remember(key, end)
    // Of all processes, the one whose upsert went over the limit first says so.
    if (window.failures === failedAuth + 1) await this.#auditBlocked(key, window.windowStart, end)
    return refusal(end, now)
  }

  #remember(key: string, until: number): void {
    this.#blockedUntil.delete(key)
    this.#blockedUntil.set(key, until)
    if (this.#blockedUntil.size > MAX_REMEMBERED)
      this.#blockedUntil.delete(this.#blockedUntil.keys().next().value!)
  }

  #cached(key: string, now: number): number | undefined {
    const until = this.#blockedUntil.get(key)
    if (until === undefined) return undefined
    if (until > now) return until
    this.#blockedUntil.delete(key)
    return undefined
  }

  /** One bounded audit event per peer and window: the moment it went over the limit. */
  async #auditBlocked(key: string, start: number, end: number): Promise<void> {
    const { store, clock, logger, limits } = this.deps
    logger.warn({ peer: key, until: new Date(end).toISOString() }, 'peer over limits.failed_auth')
    await store.audit
      .record(clock.now().getTime(), {
        actor: `peer:${key}`,
        action: 'auth.rate_limited',
        subject: key,
        details: {
          failures: limits.failedAuth + 1,
          window_start: new Date(start).toISOString(),
          until: new Date(end).toISOString(),
        },
      })
      .catch((e: Error) => logger.warn({ err: e.message }, 'rate-limit audit event not written'))
  }
}

function refusal(until: number, now: number): RateLimitedError {
  return new RateLimitedError(Math.max(1, Math.ceil((until - now) / 1000)))
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
  'ERR_OIDC_TOKEN_INVALID',
  'ERR_PROOF_INVALID',
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
