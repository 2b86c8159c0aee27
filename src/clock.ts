/** Injected time, so tests can pin it without freezing global timers. */
export interface Clock {
  now(): Date
}

export const systemClock: Clock = { now: () => new Date() }

/** Seconds since the epoch, floored (JWT NumericDate). */
export function epochSeconds(d: Date): number {
  return Math.floor(d.getTime() / 1000)
}
