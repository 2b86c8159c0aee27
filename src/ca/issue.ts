import type { KeyObject } from 'node:crypto'
import type { Config } from '../config/load.js'
import type { NewCertificate, CertificateKind } from '../db/types.js'
import { CAError } from '../errors.js'
import { buildCertificate, parseCertificate, type CertificateView } from '../x509/certificate.js'
import { newSerial } from '../x509/serial.js'
import type { CaMaterial } from './material.js'

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
}

export interface IssuedCertificate {
  readonly record: NewCertificate
  readonly view: CertificateView
}

/**
 * Signs an end-entity certificate with the contract's profile. Everything in it comes from
 * the request the policy already approved: the subject is built here, never copied from a CSR.
 */
export function issueLeaf(ca: CaMaterial, config: Config, req: LeafRequest): IssuedCertificate {
  // Whole seconds: X.509 times have no fractions, and notAfter must stay ≤ now + ttl.
  const issuedAt = Math.floor(req.now.getTime() / 1000) * 1000
  const notAfter = issuedAt + req.ttlMs
  if (notAfter > ca.intermediate.notAfter.getTime()) {
    throw new CAError('ERR_POLICY_DENIED', 'the requested lifetime would outlive the issuing CA certificate')
  }
  const der = buildCertificate({
    profile: req.kind === 'server' ? 'server' : 'leaf',
    subject: { organization: config.certificates.organization },
    publicKey: req.publicKey,
    serial: newSerial(),
    notBefore: new Date(issuedAt - config.certificates.backdateMs),
    notAfter: new Date(notAfter),
    uris: req.spiffeId === null ? [] : [req.spiffeId],
    dnsNames: req.dnsNames,
    ipAddresses: req.ipAddresses ?? [],
    issuer: ca.issuer,
  })
  const view = parseCertificate(der)
  return {
    view,
    record: {
      serial: view.serialHex,
      kind: req.kind,
      spiffeId: req.spiffeId,
      entryId: req.entryId,
      thumbprint: view.thumbprint,
      spkiSha256: view.spkiSha256Hex,
      notBefore: view.notBefore.getTime(),
      notAfter: view.notAfter.getTime(),
      renewedFrom: req.renewedFrom,
      der,
      issuedAt,
    },
  }
}

