import type { KeyType } from '../crypto/keys.js'
import type { KeyUsageName } from './extensions.js'
import { EKU } from './oids.js'

// Certificate profiles as data (RFC 5280 §4.2): which extensions a certificate gets, with
// which criticality, and which names it may carry. Both encoders read these values — the pkijs
// one (certificate.ts: CA certificates, and the reference in tests) and the template one
// (template.ts: every issuance) — so policy lives here once. A golden test pins the bytes.

/** The subjectAltName forms a profile may carry (RFC 5280 §4.2.1.6). */
export type SanKind = 'uri' | 'dns' | 'ip'

/** The profiles certbound issues. */
export type ProfileName = 'root' | 'intermediate' | 'leaf' | 'admin' | 'server' | 'ocsp-signer'

export interface CertificateProfile {
  readonly name: ProfileName
  /** Signed by its own key (a root): no issuer, no authorityKeyIdentifier (§4.2.1.1). */
  readonly selfSigned: boolean
  /** basicConstraints (§4.2.1.9); written on every profile, so cA FALSE is explicit. */
  readonly basicConstraints: {
    readonly ca: boolean
    readonly pathLen?: number
    readonly critical: boolean
  }
  /** keyUsage (§4.2.1.3); `rsaAdds` are added for RSA subject keys only. */
  readonly keyUsage: {
    readonly usages: readonly KeyUsageName[]
    readonly rsaAdds: readonly KeyUsageName[]
    readonly critical: boolean
  }
  /** extendedKeyUsage (§4.2.1.12); absent on CA certificates. */
  readonly extKeyUsage?: { readonly purposes: readonly string[]; readonly critical: boolean }
  readonly names: {
    /** A non-empty subject is required (CA certificates, §4.1.2.6). */
    readonly subjectRequired: boolean
    /** At least one SAN is required. With an empty subject the SAN is critical (§4.2.1.6). */
    readonly sanRequired: boolean
    /** The SAN forms allowed; anything else is a TypeError (misuse of the encoder). */
    readonly sanKinds: readonly SanKind[]
  }
  /** authorityInfoAccess (§4.2.2.1): OCSP responder and caIssuers URLs. Empty: no extension. */
  readonly aia: { readonly ocsp: readonly string[]; readonly caIssuers: readonly string[] }
  /** cRLDistributionPoints (§4.2.1.13) full-name URLs of one distribution point. Empty: none. */
  readonly crlDistributionPoints: readonly string[]
  /** id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1): for a delegated OCSP responder only. */
  readonly ocspNoCheck: boolean
  /**
   * Longest notBefore..notAfter the profile allows (a TypeError beyond it). Undefined: the
   * configuration's caps decide (ca.root_ttl, ca.intermediate_ttl, certificates.max_ttl, ...).
   */
  readonly maxLifetimeMs?: number
}

const NO_AIA = Object.freeze({ ocsp: Object.freeze([]), caIssuers: Object.freeze([]) })
const DAY = 86_400_000

function profile(p: CertificateProfile): CertificateProfile {
  return Object.freeze(p)
}

// keyEncipherment only for RSA: TLS 1.2 RSA key transport; meaningless for EC/EdDSA keys.
const END_ENTITY_KEY_USAGE = Object.freeze({
  usages: Object.freeze(['digitalSignature'] as const),
  rsaAdds: Object.freeze(['keyEncipherment'] as const),
  critical: true,
})
const END_ENTITY = {
  selfSigned: false,
  basicConstraints: Object.freeze({ ca: false, critical: true }),
  keyUsage: END_ENTITY_KEY_USAGE,
  aia: NO_AIA,
  crlDistributionPoints: Object.freeze([]),
  ocspNoCheck: false,
} as const

/** The standard profiles, by name. Variants (e.g. with AIA URLs) are built with `withUrls`. */
export const PROFILES: Readonly<Record<ProfileName, CertificateProfile>> = Object.freeze({
  root: profile({
    name: 'root',
    selfSigned: true,
    basicConstraints: { ca: true, critical: true },
    keyUsage: { usages: ['keyCertSign', 'cRLSign'], rsaAdds: [], critical: true },
    names: { subjectRequired: true, sanRequired: false, sanKinds: [] },
    aia: NO_AIA,
    crlDistributionPoints: [],
    ocspNoCheck: false,
  }),
  intermediate: profile({
    name: 'intermediate',
    selfSigned: false,
    // pathLen 0: the issuing CA signs end entities only.
    basicConstraints: { ca: true, pathLen: 0, critical: true },
    keyUsage: {
      usages: ['digitalSignature', 'keyCertSign', 'cRLSign'],
      rsaAdds: [],
      critical: true,
    },
    names: { subjectRequired: true, sanRequired: false, sanKinds: [] },
    aia: NO_AIA,
    crlDistributionPoints: [],
    ocspNoCheck: false,
  }),
  /** A workload: mTLS client and server. */
  leaf: profile({
    ...END_ENTITY,
    name: 'leaf',
    extKeyUsage: { purposes: [EKU.clientAuth, EKU.serverAuth], critical: false },
    names: { subjectRequired: false, sanRequired: true, sanKinds: ['uri', 'dns', 'ip'] },
  }),
  /** An admin credential: the same extensions as a workload, a SPIFFE ID only. */
  admin: profile({
    ...END_ENTITY,
    name: 'admin',
    extKeyUsage: { purposes: [EKU.clientAuth, EKU.serverAuth], critical: false },
    names: { subjectRequired: false, sanRequired: true, sanKinds: ['uri'] },
  }),
  /**
   * The CA's own TLS server certificate: serverAuth only, never a client credential, and the
   * certboundServer marker by which agents, the CLI and verifiers recognise the CA itself.
   */
  server: profile({
    ...END_ENTITY,
    name: 'server',
    extKeyUsage: { purposes: [EKU.serverAuth, EKU.certboundServer], critical: false },
    names: { subjectRequired: false, sanRequired: true, sanKinds: ['dns', 'ip'] },
  }),
  /** A delegated OCSP responder (RFC 6960 §4.2.2.2); not issued yet. */
  'ocsp-signer': profile({
    ...END_ENTITY,
    name: 'ocsp-signer',
    keyUsage: { usages: ['digitalSignature'], rsaAdds: [], critical: true },
    extKeyUsage: { purposes: [EKU.ocspSigning], critical: false },
    names: { subjectRequired: true, sanRequired: false, sanKinds: [] },
    ocspNoCheck: true,
    // nocheck means clients never ask whether the responder is revoked: keep it short-lived.
    maxLifetimeMs: 30 * DAY,
  }),
})

/** The profile for a name or a profile value (TypeError on an unknown name). */
export function resolveProfile(p: ProfileName | CertificateProfile): CertificateProfile {
  if (typeof p !== 'string') return p
  const found = Object.hasOwn(PROFILES, p) ? PROFILES[p] : undefined
  if (!found) throw new TypeError(`unknown profile ${String(p)}`)
  return found
}

/** A copy of `base` with AIA and CRL distribution point URLs (the later OCSP/CRL issue). */
export function withUrls(
  base: CertificateProfile,
  urls: { ocsp?: readonly string[]; caIssuers?: readonly string[]; crl?: readonly string[] },
): CertificateProfile {
  return profile({
    ...base,
    aia: Object.freeze({
      ocsp: Object.freeze([...(urls.ocsp ?? base.aia.ocsp)]),
      caIssuers: Object.freeze([...(urls.caIssuers ?? base.aia.caIssuers)]),
    }),
    crlDistributionPoints: Object.freeze([...(urls.crl ?? base.crlDistributionPoints)]),
  })
}

/** The keyUsage bits a profile gives a subject key of this type. */
export function keyUsagesFor(p: CertificateProfile, subject: KeyType): readonly KeyUsageName[] {
  return subject.startsWith('rsa-')
    ? [...p.keyUsage.usages, ...p.keyUsage.rsaAdds]
    : p.keyUsage.usages
}

/** The subject/SAN/lifetime rules of a profile, as TypeErrors (the encoders' callers are code). */
export function checkProfileNames(
  p: CertificateProfile,
  names: { uris: readonly string[]; dnsNames: readonly string[]; ipAddresses: readonly string[] },
  emptySubject: boolean,
  lifetimeMs: number,
): void {
  if (emptySubject && p.names.subjectRequired) {
    throw new TypeError(`a ${p.name} certificate needs a non-empty subject (RFC 5280 §4.1.2.6)`)
  }
  const counts: Record<SanKind, number> = {
    uri: names.uris.length,
    dns: names.dnsNames.length,
    ip: names.ipAddresses.length,
  }
  if (p.names.sanRequired && counts.uri + counts.dns + counts.ip === 0) {
    throw new TypeError(`a ${p.name} certificate needs at least one SAN`)
  }
  for (const kind of Object.keys(counts) as SanKind[]) {
    if (counts[kind] > 0 && !p.names.sanKinds.includes(kind)) {
      throw new TypeError(`a ${p.name} certificate carries no ${kind} SAN`)
    }
  }
  if (p.maxLifetimeMs !== undefined && lifetimeMs > p.maxLifetimeMs) {
    throw new TypeError(`a ${p.name} certificate lives at most ${p.maxLifetimeMs} ms`)
  }
}
