import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import type { StoredCrl } from '../db/types.js'
import { buildCrl, type RevocationReason } from '../x509/crl.js'
import { keyIdentifier } from '../x509/extensions.js'
import type { CaMaterial } from './material.js'

/**
 * The issuing CA's CRL, built once per change and stored in the database, so every process
 * and replica serves the same one (LIFECYCLE invariant 11). A read serves the stored CRL
 * unless a revocation committed since it was built (the store's revision moved) or half of
 * its validity has passed; then this process builds the next one first. Within a process,
 * concurrent readers share one build.
 */
export class CrlPublisher {
  readonly #issuerKeyId: string
  #building: Promise<StoredCrl> | undefined

  constructor(
    private readonly deps: { store: Store; clock: Clock; ca: CaMaterial; validityMs: number },
  ) {
    const ca = deps.ca.intermediate
    this.#issuerKeyId = Buffer.from(ca.subjectKeyId ?? keyIdentifier(ca.spkiDer)).toString('hex')
  }

  /** The current CRL (DER), never one that misses a committed revocation. */
  async get(): Promise<Uint8Array> {
    const { crl, revision } = await this.deps.store.crls.current(this.#issuerKeyId)
    if (crl && crl.revision >= revision && !this.#halfExpired(crl)) return crl.der
    return (await this.#fresh(revision)).der
  }

  /**
   * What health checks and metrics read, without building anything: the stored CRL's window,
   * and whether it reflects every committed revocation (undefined: none is stored yet).
   */
  async status(): Promise<
    { thisUpdate: number; nextUpdate: number; current: boolean } | undefined
  > {
    const { crl, revision } = await this.deps.store.crls.current(this.#issuerKeyId)
    if (!crl) return undefined
    return {
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate,
      current: crl.revision >= revision,
    }
  }

  /** Makes sure a fresh CRL is stored (after a revocation, and on the maintenance schedule). */
  async refresh(): Promise<void> {
    await this.get()
  }

  #halfExpired(crl: StoredCrl): boolean {
    return this.deps.clock.now().getTime() >= crl.thisUpdate + this.deps.validityMs / 2
  }

  /** A CRL built from at least `revision`, joining a build already under way. */
  async #fresh(revision: number): Promise<StoredCrl> {
    for (;;) {
      const built = await (this.#building ?? this.#startBuild())
      if (built.revision >= revision) return built
    }
  }

  #startBuild(): Promise<StoredCrl> {
    const build = this.#build().finally(() => {
      if (this.#building === build) this.#building = undefined
    })
    this.#building = build
    return build
  }

  async #build(): Promise<StoredCrl> {
    const { store, clock, ca, validityMs } = this.deps
    const now = Math.floor(clock.now().getTime() / 1000) * 1000
    // Number and list come from one transaction: a higher number never lists fewer serials.
    const snapshot = await store.crls.snapshot(now)
    const der = buildCrl({
      issuer: ca.issuer,
      crlNumber: snapshot.crlNumber,
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + validityMs),
      revoked: snapshot.revoked.map((r) => ({
        serialHex: r.serial,
        revokedAt: new Date(r.revokedAt),
        reason: r.reason as RevocationReason,
      })),
    })
    const crl: StoredCrl = {
      issuerKeyId: this.#issuerKeyId,
      crlNumber: snapshot.crlNumber,
      revision: snapshot.revision,
      thisUpdate: now,
      nextUpdate: now + validityMs,
      der,
    }
    await store.crls.save(crl)
    return crl
  }
}
