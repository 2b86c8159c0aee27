import type { X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'

import { checkCrl, parsePemBundle, type CheckedCrl } from '@certbound/verifier/mtls'
import { derToPem, pemBlocks } from '../x509/pem.js'
import type { Credential } from './credential.js'
import { caPath, crlUrls, type ChainStep } from './crl-sources.js'
import type { GenerationFiles } from './out-dir.js'
import { backoffDelay } from './schedule.js'

/*
 * The CRLs of the workload's chain, kept fresh in the output directory for relying parties
 * that check revocation offline (nginx `ssl_crl`, HAProxy `crl-file`, the verifier). Each is
 * checked before it is published: signed by its CA (the issuing CA's key, or the anchor's for
 * the intermediate), inside its window, and never older than one seen before (CRL numbers only
 * grow, RFC 5280 §5.2.3). Refreshed at half of its validity, as the server rebuilds it, without
 * touching the certificate. A fetch that fails keeps the CRL published before.
 */

/** A checked CRL and the CA that signed it. */
interface KeptCrl {
  readonly ca: X509Certificate
  /** The CA that issued the workload's certificate (not one above it). */
  readonly issuing: boolean
  readonly der: Uint8Array
  readonly crl: CheckedCrl
}

/** GET of a CRL by URL: its DER, or undefined when the server has none there (404). */
export type CrlFetch = (url: string) => Promise<Uint8Array | undefined>

const SKEW_MS = 60_000
const MAX_RETRY_MS = 60_000

function pathOf(cred: Credential, anchors: readonly X509Certificate[]): ChainStep[] {
  const chain = parsePemBundle(cred.chainPem, 'chain.pem')
  return caPath(chain[0]!, chain.slice(1), anchors)
}

export class CrlKeeper {
  #kept: KeptCrl[] = []
  #dueAt = 0
  #failures = 0

  constructor(
    private readonly deps: {
      readonly server: string
      readonly fetch: CrlFetch
      /** Highest CRL number seen per CA (SHA-256 fingerprint), shared with the TLS check. */
      readonly numbers: { get(ca: string): bigint | undefined; set(ca: string, n: bigint): void }
      readonly log: Logger
    },
  ) {}

  /** When the CRLs are next due for a refresh (ms). */
  get dueAt(): number {
    return this.#dueAt
  }

  /** A new certificate may have a new chain: refresh at the next step. */
  invalidate(): void {
    this.#dueAt = 0
  }

  /** Takes the CRLs a previous run published (`crls.pem`) that still verify for this chain. */
  restore(crlsPem: string | undefined, cred: Credential, anchors: readonly X509Certificate[]) {
    if (crlsPem === undefined) return
    try {
      const ders = pemBlocks(crlsPem, 'X509 CRL')
      this.#kept = pathOf(cred, anchors).flatMap(({ ca }, i) => {
        for (const der of ders) {
          try {
            return [{ ca, issuing: i === 0, der, crl: checkCrl(der, ca) }]
          } catch {
            // another CA's CRL
          }
        }
        return []
      })
    } catch (e) {
      this.deps.log.warn(`ignoring the CRLs published before: ${(e as Error).message}`)
    }
  }

  /** Fetches and checks the CRL of every CA of the chain. Never throws: CRLs are extra. */
  async refresh(cred: Credential, anchors: readonly X509Certificate[]): Promise<void> {
    const next: KeptCrl[] = []
    let failed = false
    let path: ChainStep[] = []
    try {
      path = pathOf(cred, anchors)
    } catch (e) {
      this.deps.log.warn(`cannot tell the CAs of the chain: ${(e as Error).message}`)
      return this.#schedule(true) // keeping what is published
    }
    for (const [i, step] of path.entries()) {
      const got = await this.#fetchFor(step, i === 0)
      if (got === 'absent') {
        // The server names no CRL for this CA (an older server has none for its root).
        if (i === 0) failed = true
        this.deps.log.debug({ ca: step.ca.subject }, 'no CRL is published for this CA')
        continue
      }
      if (got instanceof Error) {
        failed = true
        const kept = this.#kept.find((k) => k.ca.raw.equals(step.ca.raw))
        this.deps.log.warn(
          { ca: step.ca.subject.replace(/\n/g, ', ') },
          `could not refresh the CRL (${got.message}); ${kept ? 'keeping the one published' : 'none published'}`,
        )
        if (kept) next.push(kept)
        continue
      }
      next.push(got)
    }
    this.#kept = next
    this.#schedule(failed)
  }

  #schedule(failed: boolean): void {
    const now = Date.now()
    const validity = Math.min(
      ...this.#kept.map((k) => k.crl.nextUpdate.getTime() - k.crl.thisUpdate.getTime()),
    )
    if (failed || this.#kept.length === 0) {
      this.#failures++
      const lifetime = Number.isFinite(validity) ? validity : 10 * MAX_RETRY_MS
      this.#dueAt = now + backoffDelay(this.#failures, lifetime)
      return
    }
    this.#failures = 0
    const half = Math.min(
      ...this.#kept.map((k) => (k.crl.thisUpdate.getTime() + k.crl.nextUpdate.getTime()) / 2),
    )
    // A CRL already past its half (a stored one, or clocks apart): ask again a little later.
    this.#dueAt = Math.max(half, now + Math.min(MAX_RETRY_MS, Math.max(1_000, validity / 10)))
  }

  /** The first CRL of `step.ca` that verifies, 'absent' if every URL says 404, or the error. */
  async #fetchFor(step: ChainStep, issuing: boolean): Promise<KeptCrl | 'absent' | Error> {
    let error: Error | undefined
    for (const url of crlUrls(step, this.deps.server, issuing)) {
      try {
        const der = await this.deps.fetch(url)
        if (der === undefined) continue
        return { ca: step.ca, issuing, der, crl: this.#check(der, step.ca, url) }
      } catch (e) {
        error ??= e as Error
      }
    }
    return error ?? 'absent'
  }

  #check(der: Uint8Array, ca: X509Certificate, url: string): CheckedCrl {
    const crl = checkCrl(der, ca)
    const now = Date.now()
    if (crl.thisUpdate.getTime() > now + SKEW_MS)
      throw new Error(`${url}: the CRL is from the future`)
    if (crl.nextUpdate.getTime() < now - SKEW_MS) throw new Error(`${url}: the CRL is stale`)
    const seen = this.deps.numbers.get(ca.fingerprint256)
    if (seen !== undefined && crl.number < seen) {
      throw new Error(`${url}: CRL number ${crl.number} is lower than ${seen}, already seen`)
    }
    if (seen === undefined || crl.number > seen)
      this.deps.numbers.set(ca.fingerprint256, crl.number)
    return crl
  }

  /** The CRL files of a generation: the issuing CA's (PEM and DER) and all of them (PEM). */
  files(): Pick<GenerationFiles, 'crl.pem' | 'crl.der' | 'crls.pem'> {
    const issuing = this.#kept.find((k) => k.issuing)
    if (issuing === undefined) return {}
    return {
      'crl.pem': derToPem(issuing.der, 'X509 CRL'),
      'crl.der': issuing.der,
      'crls.pem': this.#kept.map((k) => derToPem(k.der, 'X509 CRL')).join(''),
    }
  }

  /** What the published CRLs are, to tell whether a generation is needed. */
  key(): string {
    return this.#kept.map((k) => `${k.crl.number}@${k.crl.thisUpdate.getTime()}`).join(',')
  }
}
