import type { KeyObject } from 'node:crypto'
import type { Config } from '../config/load.js'
import type { NewCertificate, CertificateKind } from '../db/types.js'
import { CAError } from '../errors.js'
import { sha256Hex, x5tS256 } from '../crypto/thumbprint.js'
import { spkiOfKey } from '../x509/spki.js'
import { buildCertificateFast } from '../x509/template.js'
import { newSerial, serialToHex } from '../x509/serial.js'
import type { CaMaterial } from './material.js'
import { commonNameFor, profileForKind } from './profiles.js'
import { leafLint } from './lint.js'
import type { CertificateProfile } from '../x509/profiles.js'

// The lint closure per profile value and config (profiles are cached values, see profiles.ts).
const lints = new WeakMap<CertificateProfile, { config: Config; lint: (tbs: Uint8Array) => void }>()
function lintFor(config: Config, kind: LeafRequest['kind'], profile: CertificateProfile) {
  const hit = lints.get(profile)
  if (hit && hit.config === config) return hit.lint
  const lint = leafLint(config, kind, profile)
  lints.set(profile, { config, lint })
  return lint
}

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
  /** The entry's `subject_cn`, if it sets one. */
  readonly subjectCn?: string | null
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
  // One read of the current issuer: the set may change (a rotation) while we sign.
  const issuing = ca.current
  if (notAfter > issuing.view.notAfter.getTime()) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      'the requested lifetime would outlive the issuing CA certificate',
    )
  }
  const serial = newSerial()
  const notBefore = issuedAt - config.certificates.backdateMs
  // The template encoder: byte-identical to the pkijs one (test/unit/x509), a fraction of the CPU.
  const commonName = commonNameFor(req.spiffeId, req.subjectCn)
  const profile = profileForKind(req.kind, issuing.keyId, config.server.publicUrl)
  const der = buildCertificateFast(
    {
      profile,
      subject: {
        organization: config.certificates.organization,
        ...(commonName === undefined ? {} : { commonName }),
      },
      publicKey: req.publicKey,
      serial,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      uris: req.spiffeId === null ? [] : [req.spiffeId],
      dnsNames: req.dnsNames,
      ipAddresses: req.ipAddresses ?? [],
      issuer: issuing.issuer!,
    },
    // Pre-issuance lint (x509/lint.ts) of exactly the bytes that get signed.
    lintFor(config, req.kind, profile),
  )
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
    issuerKeyId: issuing.keyId,
    lineageId: req.lineageId ?? null,
    generation: req.generation ?? null,
  }
}
