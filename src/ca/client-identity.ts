import type { X509Certificate } from 'node:crypto'
import { x5tS256 } from '../crypto/thumbprint.js'
import type { CertificateState } from '../db/types.js'
import { CAError } from '../errors.js'
import {
  checkGeneration,
  isSupersededNext,
  type GenerationDeps,
  type Presentation,
} from './generations.js'

const ANY_USE: Presentation = { use: 'other', peer: null }

// Serial and thumbprint of a parsed certificate: a connection's peer certificate object is
// reused for its requests (src/http/mtls.ts), so each is computed once per connection.
const identities = new WeakMap<X509Certificate, { serial: string; thumbprint: string }>()

function identityOf(cert: X509Certificate): { serial: string; thumbprint: string } {
  let id = identities.get(cert)
  if (id === undefined) {
    id = { serial: cert.serialNumber.toLowerCase(), thumbprint: x5tS256(cert.raw) }
    identities.set(cert, id)
  }
  return id
}

/**
 * The mTLS identity of a request (CONTRACT "mTLS"): a peer certificate that chained to our
 * CA in the handshake, is inside its validity window now, and is known and `valid` in the
 * database — checked on every request, because a keep-alive connection outlives both
 * expiry and revocation. A workload certificate must also be the current generation of its
 * lineage, or the next one at its first use (see generations.ts).
 */
export async function authenticateClientCertificate(
  peer: { authorized: boolean; certificate: X509Certificate | undefined },
  deps: GenerationDeps,
  presentation: Presentation = ANY_USE,
): Promise<CertificateState> {
  const cert = peer.certificate
  if (!cert)
    throw new CAError(
      'ERR_CLIENT_CERT_REQUIRED',
      'a client certificate issued by this CA is required',
    )
  if (!peer.authorized) {
    throw new CAError(
      'ERR_CLIENT_CERT_REQUIRED',
      'the client certificate does not chain to this CA or is outside its validity period',
    )
  }
  const id = identityOf(cert)
  const record = await deps.store.certificates.getState(id.serial)
  // The thumbprint check ties the row to these exact bytes, not just to a serial.
  if (!record || record.thumbprint !== id.thumbprint) {
    throw new CAError('ERR_CLIENT_CERT_REQUIRED', 'the client certificate is not known to this CA')
  }
  // A superseded next generation counts as retired: its use may be a clone's (below).
  if (record.status !== 'valid' && !isSupersededNext(record))
    throw new CAError('ERR_CLIENT_CERT_REQUIRED', 'the client certificate is revoked')
  const now = deps.clock.now().getTime()
  if (now < record.notBefore || now >= record.notAfter) {
    throw new CAError(
      'ERR_CLIENT_CERT_REQUIRED',
      'the client certificate has expired or is not yet valid',
    )
  }
  return checkGeneration(record, presentation, deps)
}
