import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import type { Store } from '../db/port.js'
import type { CertificateState, CloneSignal, LineageRevocation } from '../db/types.js'
import { CAError } from '../errors.js'

/**
 * What a request uses its certificate for. Only a renewal and a token request (grant or
 * refresh) can raise the clone alarm; every other mTLS route just refuses a retired generation.
 */
export type CertificateUse = 'renew' | 'token' | 'other'

/** The request a certificate is presented on: what for, and from which peer address. */
export interface Presentation {
  readonly use: CertificateUse
  readonly peer: string | null
}

export interface GenerationDeps {
  readonly store: Store
  readonly clock: Clock
  readonly config: Config
  /** Told when a containment revoked something (the CRL is rebuilt then). */
  readonly onContained?: (revoked: LineageRevocation) => void
}

/** A next generation replaced by a later renewal: revoked `superseded`, retired from then on. */
export function isSupersededNext(c: CertificateState): boolean {
  return (
    c.lineageState === 'retired' && c.status === 'revoked' && c.revocationReason === 'superseded'
  )
}

export function cloneSuspected(c: Pick<CertificateState, 'serial' | 'lineageId'>): CAError {
  return new CAError(
    'ERR_CLONE_SUSPECTED',
    `lineage revoked: suspected clone (certificate ${c.serial} of lineage ${c.lineageId} was used ` +
      'after a newer generation replaced it); enrol again with a new join token',
  )
}

/** Revokes the lineage for a clone signal and says so (the CRL is rebuilt when it changed). */
export async function containClone(signal: CloneSignal, deps: GenerationDeps): Promise<void> {
  const result = await deps.store.lineages.contain(signal)
  if (result?.changed) deps.onContained?.(result)
}

/**
 * The lineage part of the per-request mTLS check (CONTRACT "Lineages"), after the certificate
 * passed as valid and in its window: the current generation (and any certificate without a
 * lineage) passes with nothing read or written beyond the certificate's own row; the first
 * use of a next generation makes it current (one transaction, only then); a retired one is
 * refused — and contained when it asks to renew, or for a token after `renewal.clone_grace`.
 */
export async function checkGeneration(
  record: CertificateState,
  presentation: Presentation,
  deps: GenerationDeps,
): Promise<CertificateState> {
  if (record.lineageId === null || record.lineageState === 'current') return record
  if (record.lineageState === 'next') {
    const now = deps.clock.now().getTime()
    const promoted = await deps.store.lineages.promote(record.serial, now, presentation.peer)
    if (promoted === 'current') return { ...record, lineageState: 'current' }
    if (promoted === 'revoked')
      throw new CAError('ERR_CLIENT_CERT_REQUIRED', 'the client certificate is revoked')
    // A renewal replaced it while this request was on its way: it is a superseded next now.
    const fresh = await deps.store.certificates.getState(record.serial)
    return refuseRetired(fresh ?? record, presentation, deps)
  }
  return refuseRetired(record, presentation, deps)
}

async function refuseRetired(
  record: CertificateState,
  presentation: Presentation,
  deps: GenerationDeps,
): Promise<never> {
  const now = deps.clock.now().getTime()
  // The grace is for a process still holding the files of the generation it used before; a
  // superseded next one was never in use by anyone, so it has none.
  const retiredFor = now - (record.retiredAt ?? 0)
  const afterGrace = isSupersededNext(record) || retiredFor > deps.config.renewal.cloneGraceMs
  const { use, peer } = presentation
  if (use === 'renew' || (use === 'token' && afterGrace)) {
    await containClone({ serial: record.serial, request: use, peer, now }, deps)
    throw cloneSuspected(record)
  }
  throw new CAError(
    'ERR_CERT_SUPERSEDED',
    'the client certificate was superseded by a newer certificate of its lineage',
  )
}
