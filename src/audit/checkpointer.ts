import type { Logger } from 'pino'
import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import type { AuditLog } from './log.js'

export interface CheckpointerDeps {
  readonly store: Store
  readonly clock: Clock
  readonly logger: Logger
  readonly log: AuditLog
  /** This process's lease holder name (unique per process). */
  readonly holder: string
  readonly intervalMs: number
}

const LEASE = 'audit_log'
// Batches per round at most: a long backlog (an upgraded database) drains over a few rounds
// instead of holding one process's event loop.
const MAX_BATCHES = 50

/**
 * The one checkpointer across processes and replicas: every `intervalMs`, if committed events
 * wait, the holder of the `audit_log` lease appends them to the tree and signs a checkpoint.
 * An idle log costs one indexed read per interval and no write. The lease only spares the
 * others the work: correctness rests on the store's row lock, so two holders at once (a lease
 * taken over from a stalled process) still append each event once.
 */
export class AuditCheckpointer {
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined
  #leaseUntil = 0

  constructor(private readonly deps: CheckpointerDeps) {}

  get #leaseTtl(): number {
    return Math.max(15_000, this.deps.intervalMs * 3)
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.deps.intervalMs)
    this.#timer.unref()
  }

  /** One round; rounds never overlap. */
  tick(): Promise<void> {
    this.#running ??= this.#round().finally(() => (this.#running = undefined))
    return this.#running
  }

  async #round(): Promise<void> {
    const { store, clock, logger, holder, log } = this.deps
    try {
      if ((await store.auditLog.pending()).count === 0) return
      const now = clock.now().getTime()
      if (this.#leaseUntil - now < this.#leaseTtl / 2) {
        if (!(await store.leases.acquire(LEASE, holder, now, this.#leaseTtl))) {
          this.#leaseUntil = 0
          return
        }
        this.#leaseUntil = now + this.#leaseTtl
      }
      await log.catchUp(MAX_BATCHES)
    } catch (e) {
      logger.error({ err: (e as Error).message }, 'audit log checkpoint failed')
    }
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer)
    await this.#running
    if (this.#leaseUntil > 0)
      await this.deps.store.leases.release(LEASE, this.deps.holder).catch(() => undefined)
  }
}
