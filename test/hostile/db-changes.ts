import { expect } from 'vitest'
import { EVENTS_PER_WINDOW } from '../../src/http/event-limit.js'
import type { DbInspector } from '../helpers/db-inspect.js'

/*
 * What a refused request may change in the database (contract, "Operations"): rate-limit
 * counters, by counting, and the bounded failed-authentication audit events; nothing else.
 * Every table is read in one snapshot before and after, and compared row by row.
 */

/**
 * Audit events a refused request may cause (counted, bounded): refusals of an authenticated
 * OAuth client, and the one event of a peer going over limits.failed_auth.
 */
export const REFUSAL_EVENTS = ['token.refused', 'token.refresh_refused', 'auth.rate_limited']
/** Written by background work only (the maintenance and audit-log leases). */
const BACKGROUND = new Set(['leases'])
/** The rate-limit counters (src/http/auth-limit.ts): a refusal may count a failure there. */
const COUNTERS = 'auth_failures'

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
      if (BACKGROUND.has(name)) continue
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
    if (table === COUNTERS) {
      expectCounted(old, rows, `${what}: table ${table}`)
      continue
    }
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

interface Counter {
  readonly peer: string
  readonly window_start: number
  readonly failures: number
}

/**
 * Rate-limit counters may only count: a peer's row appears with its first failure, and a row
 * changes only by more failures in its window or by a window starting later. A refusal never
 * lowers or removes a count (that would reset the limit), and never touches another column.
 */
function expectCounted(before: unknown[], after: unknown[], what: string): void {
  const read = (rows: unknown[]) =>
    new Map(
      rows.map((r) => {
        const row = JSON.parse(r as string) as Record<string, unknown>
        expect(Object.keys(row).sort(), what).toEqual(['failures', 'peer', 'window_start'])
        const c: Counter = {
          peer: String(row.peer),
          window_start: Number(row.window_start),
          failures: Number(row.failures),
        }
        return [c.peer, c] as const
      }),
    )
  const [old, now] = [read(before), read(after)]
  for (const [peer, was] of old) {
    const is = now.get(peer)
    expect(is, `${what}: the counter of ${peer} was removed`).toBeDefined()
    if (is!.window_start === was.window_start)
      expect(is!.failures, `${what}: the count of ${peer} went down`).toBeGreaterThanOrEqual(
        was.failures,
      )
    else expect(is!.window_start, `${what}: ${peer}'s window`).toBeGreaterThan(was.window_start)
  }
  for (const [peer, is] of now)
    if (!old.has(peer)) expect(is.failures, `${what}: a new counter for ${peer}`).toBeGreaterThan(0)
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
