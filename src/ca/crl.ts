import { X509Certificate } from 'node:crypto'
import { checkCrl } from '@certbound/verifier/mtls'
import type { Clock } from '../clock.js'
import type { Store } from '../db/port.js'
import type { StoredCrl } from '../db/types.js'
import { CAError } from '../errors.js'
import { buildCrl, type RevocationReason } from '../x509/crl.js'
import type { CaEntry, CaMaterial } from './material.js'

export interface CrlPublisherDeps {
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  /** nextUpdate − thisUpdate of an issuing CA's CRL, and of a root's. */
  readonly validityMs: number
  readonly rootValidityMs?: number
  /** Pre-issuance lint of the TBSCertList (lint.ts); throws to refuse. */
  readonly lint?: (tbs: Uint8Array, ca: CaEntry) => void
}

/**
 * The CRL of every CA (RFC 5280 §5): each issuing CA signs one for its certificates, the root
 * one for the issuing CAs, each served at the URL its certificates name. Built once per change
 * and stored in the database, so every process and replica serves the same one (LIFECYCLE
 * invariant 11). A read serves the stored CRL unless a revocation committed since it was built
 * (the store's revision moved) or half of its validity has passed; then this process builds
 * the next one first. Within a process, concurrent readers of one CA share one build. A root
 * whose key is offline never builds: its CRL, signed offline, is imported (`ca import-crl`).
 */
export class CrlPublisher {
  readonly #building = new Map<string, Promise<StoredCrl>>()

  constructor(private readonly deps: CrlPublisherDeps) {}

  /** The current issuing CA's CRL (DER), never one that misses a committed revocation. */
  async get(): Promise<Uint8Array> {
    return (await this.forCa(this.deps.ca.current.keyId))!
  }

  /** The CRL that CA `keyId` signs; undefined when no such CA is known. */
  async forCa(keyId: string): Promise<Uint8Array | undefined> {
    const ca = this.deps.ca.byKeyId(keyId)
    if (!ca) return undefined
    const { crl, revision } = await this.deps.store.crls.current(ca.keyId)
    if (!ca.issuer) {
      if (crl) return crl.der
      throw new CAError(
        'ERR_NOT_FOUND',
        `the CRL of ${ca.keyId} is signed offline and was not imported (certbound ca import-crl)`,
      )
    }
    if (crl && crl.revision >= revision && !this.#halfExpired(crl, ca)) return crl.der
    return (await this.#fresh(ca, revision)).der
  }

  /**
   * What health checks and metrics read, without building anything: the current issuing CA's stored CRL's window,
   * and whether it reflects every committed revocation (undefined: none is stored yet).
   */
  async status(): Promise<
    { thisUpdate: number; nextUpdate: number; current: boolean } | undefined
  > {
    const { crl, revision } = await this.deps.store.crls.current(this.deps.ca.current.keyId)
    if (!crl) return undefined
    return {
      thisUpdate: crl.thisUpdate,
      nextUpdate: crl.nextUpdate,
      current: crl.revision >= revision,
    }
  }

  /** Makes sure every CA whose key we hold has a fresh CRL stored (revocations, schedule). */
  async refresh(): Promise<void> {
    const now = this.deps.clock.now().getTime()
    for (const ca of this.deps.ca.cas) {
      if (ca.issuer && ca.view.notAfter.getTime() > now) await this.forCa(ca.keyId)
    }
  }

  /**
   * Stores a CRL signed elsewhere (an offline root's): it must verify with that CA's key, name
   * it as issuer, be inside its window and carry a higher number than the stored one.
   */
  async import(der: Uint8Array): Promise<{ keyId: string; crlNumber: bigint }> {
    const now = this.deps.clock.now().getTime()
    for (const ca of this.deps.ca.cas) {
      let checked
      try {
        checked = checkCrl(der, new X509Certificate(ca.view.der))
      } catch {
        continue
      }
      if (checked.nextUpdate.getTime() <= now)
        throw new CAError('ERR_BAD_REQUEST', 'the CRL is past its nextUpdate')
      const { crl } = await this.deps.store.crls.current(ca.keyId)
      if (crl && crl.crlNumber >= checked.number)
        throw new CAError(
          'ERR_BAD_REQUEST',
          `the stored CRL of ${ca.keyId} has number ${crl.crlNumber}`,
        )
      await this.deps.store.crls.save({
        issuerKeyId: ca.keyId,
        crlNumber: checked.number,
        revision: Number.MAX_SAFE_INTEGER,
        thisUpdate: checked.thisUpdate.getTime(),
        nextUpdate: checked.nextUpdate.getTime(),
        der,
      })
      return { keyId: ca.keyId, crlNumber: checked.number }
    }
    throw new CAError('ERR_BAD_REQUEST', 'the CRL is not signed by a CA of this server')
  }

  #validity(ca: CaEntry): number {
    const { validityMs, rootValidityMs = validityMs } = this.deps
    return ca.kind === 'root' ? rootValidityMs : validityMs
  }

  #halfExpired(crl: StoredCrl, ca: CaEntry): boolean {
    return this.deps.clock.now().getTime() >= crl.thisUpdate + this.#validity(ca) / 2
  }

  /** A CRL of `ca` built from at least `revision`, joining a build already under way. */
  async #fresh(ca: CaEntry, revision: number): Promise<StoredCrl> {
    for (;;) {
      let building = this.#building.get(ca.keyId)
      if (!building) {
        const build = this.#build(ca).finally(() => {
          if (this.#building.get(ca.keyId) === build) this.#building.delete(ca.keyId)
        })
        this.#building.set(ca.keyId, (building = build))
      }
      const built = await building
      if (built.revision >= revision) return built
    }
  }

  async #build(ca: CaEntry): Promise<StoredCrl> {
    const { store, clock, lint } = this.deps
    const validityMs = this.#validity(ca)
    const now = Math.floor(clock.now().getTime() / 1000) * 1000
    // Number and list come from one transaction: a higher number never lists fewer serials.
    // An expired certificate stays listed for one CRL validity after its notAfter.
    const snapshot = await store.crls.snapshot(now - validityMs, ca.keyId)
    const der = buildCrl(
      {
        issuer: ca.issuer!,
        crlNumber: snapshot.crlNumber,
        thisUpdate: new Date(now),
        nextUpdate: new Date(now + validityMs),
        revoked: snapshot.revoked.map((r) => ({
          serialHex: r.serial,
          revokedAt: new Date(r.revokedAt),
          reason: r.reason as RevocationReason,
        })),
      },
      lint && ((tbs) => lint(tbs, ca)),
    )
    const crl: StoredCrl = {
      issuerKeyId: ca.keyId,
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
