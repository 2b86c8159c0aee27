/**
 * Measurement loops. Rates are counted over a fixed wall-clock window or a fixed count, never
 * asserted: the bench reports ratios between figures taken in the same run.
 */

/** Summary of a closed-loop run: every request waited for its answer before the next one. */
export interface LoadResult {
  readonly requests: number
  readonly seconds: number
  readonly perSecond: number
  /** Latency percentiles in milliseconds. */
  readonly p50: number
  readonly p99: number
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))]!
}

/**
 * `workers` loops, each sending its next request as soon as the previous one answered, until
 * `total` requests were sent. Worker `w` is given its own index, so it can own one client
 * (one connection, one certificate, one refresh-token chain).
 */
export async function closedLoop(
  total: number,
  workers: number,
  send: (i: number, worker: number) => Promise<void>,
): Promise<LoadResult> {
  let next = 0
  const latencies = new Float64Array(total)
  const started = performance.now()
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      while (next < total) {
        const i = next++
        const t0 = performance.now()
        await send(i, w)
        latencies[i] = performance.now() - t0
      }
    }),
  )
  const seconds = (performance.now() - started) / 1000
  const sorted = Array.from(latencies).sort((a, b) => a - b)
  return {
    requests: total,
    seconds,
    perSecond: total / seconds,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99),
  }
}

/** Operations per second of a synchronous function, over at least `ms` of wall time. */
export function syncRate(fn: (i: number) => void, ms: number): number {
  for (let i = 0; i < 50; i++) fn(i) // warm-up (JIT, caches)
  let n = 0
  const started = performance.now()
  let elapsed = 0
  while (elapsed < ms) {
    for (let k = 0; k < 20; k++) fn(n++)
    elapsed = performance.now() - started
  }
  return n / (elapsed / 1000)
}

/** Operations per second of an async function run one at a time, over at least `ms`. */
export async function serialRate(fn: (i: number) => Promise<unknown>, ms: number): Promise<number> {
  for (let i = 0; i < 20; i++) await fn(i)
  let n = 0
  const started = performance.now()
  let elapsed = 0
  while (elapsed < ms) {
    await fn(n++)
    elapsed = performance.now() - started
  }
  return n / (elapsed / 1000)
}

/** How many requests fill `seconds` at `rate`, within [min, max]. */
export function sizeFor(rate: number, seconds: number, min: number, max: number): number {
  if (!Number.isFinite(rate) || rate <= 0) return min
  return Math.max(min, Math.min(max, Math.round(rate * seconds)))
}
