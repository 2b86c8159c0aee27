import type { Config } from '../config/load.js'
import type { CertificateKind } from '../db/types.js'
import { spiffeIdProblem } from '../identity/spiffe-id.js'
import { childrenOf, readDer } from '../x509/der-reader.js'
import { lintCertificateTbs, lintCrlTbs, type CertificateLintRules } from '../x509/lint.js'
import { PROFILES, type CertificateProfile } from '../x509/profiles.js'

// The lint rules of each certificate the CA signs, from the configuration's caps: what
// x509/lint.ts checks every to-be-signed certificate and CRL against before it is signed.

const MINUTE = 60_000

/** Lints the TBS of a leaf of `kind` built with `profile`; throws LintError. */
export function leafLint(config: Config, kind: CertificateKind, profile: CertificateProfile) {
  const backdate = config.certificates.backdateMs
  const maxLifetimeMs =
    kind === 'workload'
      ? config.certificates.maxTtlMs + backdate
      : kind === 'admin'
        ? config.admin.credentialTtlMs + backdate
        : config.server.tlsCertificateTtlMs + backdate
  const rules: CertificateLintRules = {
    profile,
    maxLifetimeMs,
    // Workload and admin leaves: exactly one URI SAN, a SPIFFE ID of this trust domain.
    ...(kind === 'server'
      ? {}
      : { spiffeIdProblem: (u: string) => spiffeIdProblem(u, config.trustDomain) }),
  }
  return (tbs: Uint8Array) => lintCertificateTbs(tbs, rules)
}

/** Lints a delegated OCSP responder's TBS. */
export function ocspSignerLint(config: Config) {
  const rules = {
    profile: PROFILES['ocsp-signer'],
    maxLifetimeMs: config.ocsp.signerTtlMs + config.certificates.backdateMs,
  }
  return (tbs: Uint8Array) => lintCertificateTbs(tbs, rules)
}

/** Lints a whole issuing-CA certificate (its TBS) before it is stored or used. */
export function caCertificateLint(config: Config, profile: CertificateProfile) {
  const rules = { profile, maxLifetimeMs: config.ca.intermediateTtlMs + 2 * MINUTE }
  return (der: Uint8Array) => {
    const tbs = childrenOf(der, readDer(der))[0]!
    lintCertificateTbs(der.subarray(tbs.offset, tbs.end), rules)
  }
}

/** Lints a TBSCertList of a CA's CRL. */
export function crlLint(config: Config) {
  const maxValidityMs = Math.max(config.crl.validityMs, config.crl.rootValidityMs)
  return (tbs: Uint8Array) => lintCrlTbs(tbs, { maxValidityMs })
}
