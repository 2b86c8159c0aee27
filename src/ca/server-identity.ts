import { X509Certificate } from 'node:crypto'
import { EKU } from '../x509/oids.js'

/**
 * True when the server's TLS certificate (the first of `certPem`) lacks the certbound server
 * marker (EKU `certboundServer`): one issued by an earlier version. Agents, the admin CLI and
 * verifiers accept the CA server only by that marker, so the server re-issues such a
 * certificate at start.
 */
export function lacksServerMarker(certPem: string): boolean {
  // node names the extendedKeyUsage OIDs `keyUsage`
  return !(new X509Certificate(certPem).keyUsage ?? []).includes(EKU.certboundServer)
}
