import type { X509Certificate } from 'node:crypto'
import { findClientCertificatePath, type TrustStore } from './mtls/chain.js'
import { x5tS256 } from './mtls/thumbprint.js'

const MAX_ENTRIES = 4096

/** What a verifier needs of a client certificate whose path to an anchor was validated. */
export interface CheckedCertificate {
  /** base64url SHA-256 of its DER (RFC 8705 x5t#S256). */
  readonly thumbprint: string
  /** Its subjectAltName entries as node prints them (`URI:spiffe://…`). */
  readonly names: ReadonlySet<string>
  /** The validity windows of every certificate on the path, intersected (epoch ms). */
  readonly from: number
  readonly until: number
}

/**
 * Client-certificate checks remembered per certificate bytes. The path to an anchor — the
 * signature checks, the CA and EKU flags — depends only on the bytes and on the trust store,
 * which never changes for a verifier; only the time does. So a certificate seen before costs
 * one SHA-256 (its thumbprint, needed for the binding anyway) and a window comparison instead
 * of a signature verification per hop. A time outside the cached window takes the full check
 * again (it may find another path, or say exactly what failed).
 */
export class CertificateChecks {
  readonly #byThumbprint = new Map<string, CheckedCertificate>()

  constructor(
    private readonly store: TrustStore,
    /** Told the intermediates of each newly validated path (a resumed session omits them). */
    private readonly onPath: (intermediates: readonly X509Certificate[]) => void,
  ) {}

  /** @throws {VerifyError} `ERR_CLIENT_CERT_REQUIRED`, as validateClientCertificate. */
  check(leaf: X509Certificate, pool: readonly X509Certificate[], now: Date): CheckedCertificate {
    const thumbprint = x5tS256(leaf.raw)
    const t = now.getTime()
    const cached = this.#byThumbprint.get(thumbprint)
    if (cached !== undefined && cached.from <= t && t <= cached.until) return cached
    const path = findClientCertificatePath(leaf, this.store, now, pool)
    this.onPath(path.intermediates)
    const all = [leaf, ...path.intermediates, path.anchor]
    const checked: CheckedCertificate = {
      thumbprint,
      names: new Set(leaf.subjectAltName?.split(', ') ?? []),
      from: Math.max(...all.map((c) => Date.parse(c.validFrom))),
      until: Math.min(...all.map((c) => Date.parse(c.validTo))),
    }
    if (this.#byThumbprint.size >= MAX_ENTRIES) {
      // The oldest entry goes (Map keeps insertion order): bounded whatever clients send.
      this.#byThumbprint.delete(this.#byThumbprint.keys().next().value!)
    }
    this.#byThumbprint.set(thumbprint, checked)
    return checked
  }
}
