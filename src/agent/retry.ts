import type { Logger } from 'pino'

import { ServerError } from './errors.js'
import { backoffDelay, sleep } from './schedule.js'

/** Thrown when SIGTERM/SIGINT arrives while waiting or during a request. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted'
  constructor() {
    super('interrupted')
  }
}

/** How long to keep trying a step. */
export interface RetryPolicy {
  /** Give up (rethrowing the last error) once the next attempt would start after this (ms). */
  readonly deadline: number
  /** Give up after this many attempts (the `--once` mode). */
  readonly maxAttempts: number
  /** Lifetime of the certificate involved: the backoff is capped at a tenth of it. */
  readonly lifetimeMs: number
}

/**
 * Runs `attempt` until it succeeds. A `ServerError` that is `retryable` (no answer, 5xx, 429)
 * is retried with exponential backoff and a log line per failed attempt; any other error is
 * rethrown at once, as is the last one when the policy runs out.
 */
export async function withRetries<T>(
  step: string,
  attempt: () => Promise<T>,
  policy: RetryPolicy,
  log: Logger,
  signal: AbortSignal,
): Promise<T> {
  for (let n = 1; ; n++) {
    if (signal.aborted) throw new Interrupted()
    try {
      return await attempt()
    } catch (e) {
      if (signal.aborted) throw new Interrupted()
      if (!(e instanceof ServerError) || !e.retryable) throw e
      const delay = backoffDelay(n, policy.lifetimeMs)
      const last = n >= policy.maxAttempts || Date.now() + delay >= policy.deadline
      const retry = last ? 'giving up' : `retrying in ${(delay / 1000).toFixed(1)}s`
      log.warn(
        { step, attempt: n, status: e.status ?? null, retry_in_ms: last ? null : delay },
        `${step} attempt ${n} failed: ${e.message}; ${retry}`,
      )
      if (last) throw e
      await sleep(delay, signal)
    }
  }
}
