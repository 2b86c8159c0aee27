/**
 * A bound on the events one peer can make the server record: log lines for refused and
 * spoofed requests, and audit rows for refused token requests. Without it, anyone who can open
 * a connection could fill the log or the audit table. Counted per key (kind and peer address)
 * over fixed windows; the first event over the limit is let through once, marked, so the log
 * says that more were dropped. Per process, in memory: it bounds what this process writes. The
 * limit on failed authentications themselves (`limits.*`, src/http/auth-limit.ts) is shared by
 * every process and replica through the database.
 */
export interface EventLimiter {
  /** `'yes'`, `'last'` (the first one over the limit: say that more are dropped) or `'no'`. */
  allow(key: string): 'yes' | 'last' | 'no'
}

/** At most this many events per key per window. */
export const EVENTS_PER_WINDOW = 20
const WINDOW_MS = 60_000
// Keys are peer addresses: bound the table, forgetting the oldest window first.
const MAX_KEYS = 10_000

export function createEventLimiter(now: () => number = Date.now): EventLimiter {
  const windows = new Map<string, { start: number; count: number }>()
  return {
    allow(key) {
      const t = now()
      let w = windows.get(key)
      if (w === undefined || t - w.start >= WINDOW_MS) {
        windows.delete(key)
        w = { start: t, count: 0 }
        windows.set(key, w)
        if (windows.size > MAX_KEYS) windows.delete(windows.keys().next().value!)
      }
      w.count++
      if (w.count <= EVENTS_PER_WINDOW) return 'yes'
      return w.count === EVENTS_PER_WINDOW + 1 ? 'last' : 'no'
    },
  }
}
