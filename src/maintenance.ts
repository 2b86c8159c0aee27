import type { Logger } from 'pino'
import type { Clock } from './clock.js'
import type { Store } from './db/port.js'

export interface MaintenanceDeps {
  readonly store: Store
  readonly clock: Clock
  readonly logger: Logger
  /** This process's lease holder name (unique per process). */
  readonly holder: string
  readonly periodMs: number
  /** Work every process does (adopting what another process changed). */
  readonly everyProcess: () => Promise<void>
  /** Work one process at a time does: the holder of the `maintenance` lease. */
  readonly leaderOnly: () => Promise<void>
}

const LEASE = 'maintenance'

/**
 * Scheduled work across processes and replicas: each tick every process runs its own part,
 * and the one holding the `maintenance` lease (renewed every tick, expiring after three
 * missed ticks so another process takes over when the leader dies) runs the shared part:
 * certificate renewal of the server, signing-key rotation, CRL refresh, purges.
 */
export class Maintenance {
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(private readonly deps: MaintenanceDeps) {}

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.deps.periodMs)
    this.#timer.unref()
  }

  /** One round; rounds never overlap. */
  tick(): Promise<void> {
    this.#running ??= this.#round().finally(() => (this.#running = undefined))
    return this.#running
  }

  async #round(): Promise<void> {
    const { store, clock, logger, holder, periodMs } = this.deps
    try {
      await this.deps.everyProcess()
      if (await store.leases.acquire(LEASE, holder, clock.now().getTime(), periodMs * 3))
        await this.deps.leaderOnly()
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'scheduled maintenance failed')
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
    await this.deps.store.leases.release(LEASE, this.deps.holder).catch(() => undefined)
  }
}
