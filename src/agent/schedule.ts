/** Renew at this fraction of the lifetime left when the certificate was received. */
export const RENEW_FRACTION = 2 / 3
/** Jitter: up to ± this fraction of the lifetime, so that a fleet does not renew in lockstep. */
export const JITTER_FRACTION = 0.05
/** Refresh the access token at this fraction of its lifetime. */
export const REFRESH_FRACTION = 2 / 3

const BACKOFF_BASE_MS = 1_000
const BACKOFF_MAX_MS = 60_000

/**
 * When to renew a certificate received at `receivedAt` (ms) that expires at `notAfter`: 2/3
 * of the way, with jitter. Measured from receipt, not from the (backdated) notBefore: with a
 * 1 m backdate, a 9 s certificate would otherwise look 69 s long and be renewed after expiry.
 */
export function renewalTime(receivedAt: number, notAfter: number, random = Math.random): number {
  const lifetime = Math.max(0, notAfter - receivedAt)
  const jitter = (random() * 2 - 1) * JITTER_FRACTION * lifetime
  return Math.min(receivedAt + lifetime * RENEW_FRACTION + jitter, notAfter)
}

/** When to refresh an access token received at `receivedAt` that expires at `expiresAt`. */
export function refreshTime(receivedAt: number, expiresAt: number): number {
  return receivedAt + Math.max(0, expiresAt - receivedAt) * REFRESH_FRACTION
}

/**
 * Delay before retry number `attempt` (1, 2, …): 1 s, 2 s, 4 s … capped at a tenth of the
 * certificate's lifetime and at 60 s (never below 1 s).
 */
export function backoffDelay(attempt: number, lifetimeMs: number): number {
  const cap = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_BASE_MS, lifetimeMs / 10))
  return Math.min(cap, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1))
}

/** Resolves after `ms`, or at once when `signal` aborts (without rejecting). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, Math.max(0, ms))
    signal.addEventListener('abort', done, { once: true })
  })
}
