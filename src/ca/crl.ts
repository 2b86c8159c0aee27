import type { Clock } from '../clock.js'
import type { Store } from '../db/store.js'
import { buildCrl, type RevocationReason } from '../x509/crl.js'
import type { CaMaterial } from './material.js'

/**
 * Keeps one signed CRL in memory: rebuilt after every revocation and when half of its
 * validity has passed (by a timer, and checked again on read in case the timer slept),
 * so a served CRL is never stale and never rebuilt per request.
 */
export class CrlPublisher {
  #current: { der: Uint8Array; thisUpdate: number; nextUpdate: number } | undefined
  #building: Promise<Uint8Array> | undefined
  #timer: NodeJS.Timeout | undefined

  constructor(
    private readonly deps: { store: Store; clock: Clock; ca: CaMaterial; validityMs: number },
  ) {}

  /** Forgets the cached CRL, so the next read rebuilds it whatever happens to this rebuild. */
  markStale(): void {
    this.#current = undefined
  }

  async get(): Promise<Uint8Array> {
    const c = this.#current
    if (c && this.deps.clock.now().getTime() < c.thisUpdate + this.deps.validityMs / 2) return c.der
    return this.#building ?? this.rebuild()
  }

  /** Builds and signs a new CRL with the next CRL number. */
  async rebuild(): Promise<Uint8Array> {
    // Serialise rebuilds so the CRL number and the revoked list never go backwards.
    const previous = this.#building ?? Promise.resolve()
    const next = previous.catch(() => undefined).then(() => this.#build())
    this.#building = next
    try {
      return await next
    } finally {
      if (this.#building === next) this.#building = undefined
    }
  }

  async #build(): Promise<Uint8Array> {
    const { store, clock, ca, validityMs } = this.deps
    const now = Math.floor(clock.now().getTime() / 1000) * 1000
    const crlNumber = await store.certificates.nextCrlNumber()
    const revoked = await store.certificates.revokedForCrl(now)
    const der = buildCrl({
      issuer: ca.issuer,
      crlNumber,
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + validityMs),
      revoked: revoked.map((r) => ({
        serialHex: r.serial,
        revokedAt: new Date(r.revokedAt),
        reason: r.reason as RevocationReason,
      })),
    })
    this.#current = { der, thisUpdate: now, nextUpdate: now + validityMs }
    return der
  }

  start(): void {
    this.#timer = setInterval(
      () => void this.rebuild().catch(() => undefined),
      this.deps.validityMs / 2,
    )
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }
}
