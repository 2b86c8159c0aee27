import type { KeyObject } from 'node:crypto'
import type { Config } from '../config/load.js'
import type { NewCertificate, CertificateKind } from '../db/types.js'
import { CAError } from '../errors.js'
import { sha256Hex, x5tS256 } from '../crypto/thumbprint.js'
import { spkiOfKey } from '../x509/spki.js'
import { buildCertificateFast } from '../x509/template.js'
import { newSerial, serialToHex } from '../x509/serial.js'
import type { CaMaterial } from './material.js'
import { profileForKind } from './profiles.js'

export interface LeafRequest {
  readonly kind: CertificateKind
  readonly publicKey: KeyObject
  readonly spiffeId: string | null
  readonly dnsNames: readonly string[]
  readonly ipAddresses?: readonly string[]
  readonly ttlMs: number
  readonly entryId: string | null
  readonly renewedFrom: string | null
  readonly now: Date
  /** Workload certificates: the lineage and the generation in it. */
  readonly lineageId?: string | null
  readonly generation?: number | null
}

/**
 * Signs an end-entity certificate with the contract's profile. Everything in it comes from
 * the request the policy already approved: the subject is built here, never copied from a CSR.
 */
export function issueLeaf(ca: CaMaterial, config: Config, req: LeafRequest): NewCertificate {
  // Whole seconds: X.509 times have no fractions, and notAfter must stay ≤ now + ttl.
  const issuedAt = Math.floor(req.now.getTime() / 1000) * 1000
  const notAfter = issuedAt + req.ttlMs
  if (notAfter > ca.intermediate.notAfter.getTime()) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      'the requested lifetime would outlive the issuing CA certificate',
    )
  }
  const serial = newSerial()
  const notBefore = issuedAt - config.certificates.backdateMs
  // The template encoder: byte-identical to the pkijs one (test/unit/x509), a fraction of the CPU.
  const der = buildCertificateFast({
    profile: profileForKind(req.kind),
    subject: { organization: config.certificates.organization },
    publicKey: req.publicKey,
    serial,
    notBefore: new Date(notBefore),
    notAfter: new Date(notAfter),
    uris: req.spiffeId === null ? [] : [req.spiffeId],
    dnsNames: req.dnsNames,
    ipAddresses: req.ipAddresses ?? [],
    issuer: ca.issuer,
  })
  // Everything below is known without parsing the certificate back (an asn1js parse costs
  // about as much as building it); test/ca checks these against openssl's reading.
  return {
    serial: serialToHex(serial),
    kind: req.kind,
    spiffeId: req.spiffeId,
    entryId: req.entryId,
    thumbprint: x5tS256(der),
    spkiSha256: sha256Hex(spkiOfKey(req.publicKey)),
    notBefore,
    notAfter,
    renewedFrom: req.renewedFrom,
    der,
    issuedAt,
    lineageId: req.lineageId ?? null,
    generation: req.generation ?? null,
  }
}
