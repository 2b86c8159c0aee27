import type { X509Certificate } from 'node:crypto'
import { VerifyError } from '../errors.js'

/** Trust material: anchors (roots) and known intermediates, parsed once. */
export interface TrustStore {
  readonly anchors: readonly X509Certificate[]
  readonly intermediates: readonly X509Certificate[]
}

// The leaf is at depth 0; its trust anchor may be at depth 3 at most (≤ 2 intermediates).
const MAX_DEPTH = 3
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2'
const EKU_ANY = '2.5.29.37.0'

function refuse(message: string): VerifyError {
  return new VerifyError('ERR_CLIENT_CERT_REQUIRED', message)
}

function inWindow(cert: X509Certificate, now: Date): boolean {
  const t = now.getTime()
  return Date.parse(cert.validFrom) <= t && t <= Date.parse(cert.validTo)
}

function issuedBy(child: X509Certificate, parent: X509Certificate): boolean {
  // checkIssued compares names/AKI and the issuer's keyUsage; verify checks the signature.
  return child.checkIssued(parent) && child.verify(parent.publicKey)
}

interface PathContext {
  readonly store: TrustStore
  readonly pool: readonly X509Certificate[]
  readonly used: Set<X509Certificate>
  readonly now: Date
  anchor?: X509Certificate
}

function chainsToAnchor(cert: X509Certificate, depth: number, ctx: PathContext): boolean {
  if (depth + 1 > MAX_DEPTH) return false
  for (const anchor of ctx.store.anchors) {
    if (anchor.ca && inWindow(anchor, ctx.now) && issuedBy(cert, anchor)) {
      ctx.anchor = anchor
      return true
    }
  }
  if (depth + 2 > MAX_DEPTH) return false
  for (const ca of ctx.pool) {
    if (ctx.used.has(ca) || !ca.ca || !inWindow(ca, ctx.now) || !issuedBy(cert, ca)) continue
    ctx.used.add(ca)
    if (chainsToAnchor(ca, depth + 1, ctx)) return true
    ctx.used.delete(ca)
  }
  return false
}

/**
 * Validates a client certificate the way the CA's own mTLS check does, for certificates from a
 * TLS socket and from a trusted proxy's header alike: not a CA, inside its validity window at
 * `now`, `clientAuth` allowed, and a path of at most two intermediates to one of the anchors in
 * which every certificate is a CA inside its window and signed the one below it. `presented`
 * holds intermediates the peer sent (untrusted: only used to build the path).
 *
 * @returns the intermediates on the path found, leaf side first.
 * @throws {VerifyError} `ERR_CLIENT_CERT_REQUIRED` naming the first failed check.
 * @example
 * ```ts
 * import { X509Certificate } from 'node:crypto'
 * import { validateClientCertificate } from '@certbound/verifier'
 *
 * const store = { anchors: [new X509Certificate(rootPem)], intermediates: [] }
 * validateClientCertificate(new X509Certificate(leafPem), store, new Date(), [intermediate])
 * ```
 */
export function validateClientCertificate(
  leaf: X509Certificate,
  store: TrustStore,
  now: Date,
  presented: readonly X509Certificate[] = [],
): X509Certificate[] {
  return findClientCertificatePath(leaf, store, now, presented).intermediates
}

/** A validated path: the intermediates (leaf side first) and the anchor it ends at. */
export interface CertificatePath {
  readonly intermediates: X509Certificate[]
  readonly anchor: X509Certificate
}

/** {@link validateClientCertificate}, also naming the anchor (the verifier caches the path). */
export function findClientCertificatePath(
  leaf: X509Certificate,
  store: TrustStore,
  now: Date,
  presented: readonly X509Certificate[] = [],
): CertificatePath {
  if (leaf.ca) throw refuse('client certificate is a CA certificate')
  if (!inWindow(leaf, now)) throw refuse('client certificate is outside its validity window')
  const eku = leaf.keyUsage // node names the extendedKeyUsage OIDs `keyUsage`
  if (eku !== undefined && !eku.includes(EKU_CLIENT_AUTH) && !eku.includes(EKU_ANY)) {
    throw refuse('client certificate does not allow clientAuth')
  }
  const pool = [...store.intermediates, ...presented]
  const ctx: PathContext = { store, pool, used: new Set<X509Certificate>(), now }
  if (!chainsToAnchor(leaf, 0, ctx)) {
    throw refuse('client certificate does not chain to the trust anchors')
  }
  // On success `used` holds exactly the path (backtracking removes the rest).
  return { intermediates: [...ctx.used], anchor: ctx.anchor! }
}
