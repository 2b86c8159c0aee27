import type { Config } from '../config/load.js'
import { formatDuration } from '../config/duration.js'
import { CAError } from '../errors.js'
import type { ParsedCsr } from '../x509/csr.js'

/** What an identity method (enrolment, renewal) authorises a CSR to receive. */
export interface Grant {
  readonly spiffeId: string
  readonly allowedDnsNames: readonly string[]
  /** The entry's own cap, if any; certificates.max_ttl applies on top. */
  readonly entryMaxTtlMs: number | null
}

/** A check on the CSR against the grant (smallstep's CsrValidator, fail closed). */
type CsrValidator = (csr: ParsedCsr, grant: Grant, config: Config) => void

const notCA: CsrValidator = (csr) => {
  if (csr.requestsCA) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      'the CSR asks for basicConstraints CA:true; certbound issues only end-entity certificates',
    )
  }
}

const allowedKeyType: CsrValidator = (csr, _g, config) => {
  if (!config.certificates.allowedKeyTypes.includes(csr.keyType)) {
    throw new CAError(
      'ERR_KEY_UNSUPPORTED',
      `key type ${csr.keyType} is not allowed here; allowed: ${config.certificates.allowedKeyTypes.join(', ')}`,
    )
  }
}

const uriMatchesIdentity: CsrValidator = (csr, grant) => {
  for (const uri of csr.uris) {
    if (uri !== grant.spiffeId) {
      throw new CAError(
        'ERR_POLICY_DENIED',
        `the CSR names URI SAN "${uri}", but this identity is ${grant.spiffeId}`,
      )
    }
  }
  // The certificate carries exactly one URI SAN (an X.509-SVID's SPIFFE ID): the CSR names it once.
  if (csr.uris.length > 1) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      `the CSR names ${csr.uris.length} URI SANs; it may name one, ${grant.spiffeId}`,
    )
  }
}

const dnsNamesAllowed: CsrValidator = (csr, grant) => {
  for (const name of csr.dnsNames) {
    if (!grant.allowedDnsNames.includes(name.toLowerCase())) {
      throw new CAError(
        'ERR_POLICY_DENIED',
        `DNS name "${name}" is not allowed for ${grant.spiffeId}`,
      )
    }
  }
}

/** The CSR's DNS names, lower-cased, each once (DNS names compare case-insensitively). */
export function uniqueDnsNames(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.toLowerCase()))]
}

// One allowed name repeated 500 times made a 14 KB certificate: count after de-duplication.
const dnsNameCount: CsrValidator = (csr, grant, config) => {
  const count = uniqueDnsNames(csr.dnsNames).length
  const max = config.certificates.maxDnsNames
  if (count > max) {
    throw new CAError(
      'ERR_POLICY_DENIED',
      `the CSR names ${count} distinct DNS names; at most ${max} are issued (certificates.max_dns_names)`,
    )
  }
}

const noOtherNames: CsrValidator = (csr) => {
  if (csr.ipAddresses.length > 0 || csr.emails.length > 0) {
    throw new CAError('ERR_POLICY_DENIED', 'IP address and e-mail SANs are not issued to workloads')
  }
}

const VALIDATORS: readonly CsrValidator[] = [
  notCA,
  allowedKeyType,
  uriMatchesIdentity,
  noOtherNames,
  dnsNameCount,
  dnsNamesAllowed,
]

/** Runs every CSR check; the CA never copies anything from the CSR that these did not allow. */
export function validateCsr(csr: ParsedCsr, grant: Grant, config: Config): void {
  for (const validate of VALIDATORS) validate(csr, grant, config)
}

/**
 * The ttl to issue: the request's, else min(default_ttl, cap). A request over
 * min(entry cap, max_ttl) is refused, never clamped (CONTRACT "Certificates").
 */
export function resolveTtl(requestedMs: number | undefined, grant: Grant, config: Config): number {
  const cap = Math.min(grant.entryMaxTtlMs ?? Infinity, config.certificates.maxTtlMs)
  if (requestedMs === undefined) return Math.min(config.certificates.defaultTtlMs, cap)
  if (requestedMs > cap) {
    throw new CAError(
      'ERR_TTL_TOO_LONG',
      `ttl ${formatDuration(requestedMs)} is over the maximum of ${formatDuration(cap)} for ${grant.spiffeId}`,
    )
  }
  return requestedMs
}
