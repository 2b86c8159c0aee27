import type { CertificateKind } from '../db/types.js'
import { PROFILES, withUrls } from '../x509/profiles.js'
import type { CertificateProfile } from '../x509/profiles.js'

/** Where the status of a certificate signed by CA `keyId` lives (CONTRACT "Certificate profile additions"). */
export function statusUrls(publicUrl: string, keyId: string) {
  return {
    crl: [`${publicUrl}/v1/ca/${keyId}/crl`],
    ocsp: [`${publicUrl}/v1/ocsp`],
    caIssuers: [`${publicUrl}/v1/ca/${keyId}.crt`],
  }
}

// Profile values are cached: the template encoder keeps its pre-encoded pieces per profile object.
const cache = new Map<string, CertificateProfile>()

function cached(key: string, make: () => CertificateProfile): CertificateProfile {
  let p = cache.get(key)
  if (!p) {
    if (cache.size > 256) cache.clear()
    cache.set(key, (p = make()))
  }
  return p
}

/**
 * The certificate profile for each kind of end-entity certificate the CA issues, with the CRL
 * distribution point and AIA (OCSP, CA issuers) of the CA `issuerKeyId` that signs it.
 */
export function profileForKind(
  kind: CertificateKind,
  issuerKeyId: string,
  publicUrl: string,
): CertificateProfile {
  const base =
    kind === 'workload' ? PROFILES.leaf : kind === 'admin' ? PROFILES.admin : PROFILES.server
  return cached(`${kind} ${issuerKeyId} ${publicUrl}`, () =>
    withUrls(base, statusUrls(publicUrl, issuerKeyId)),
  )
}

/** The intermediate profile, pointing to the root `rootKeyId`'s CRL and certificate. */
export function intermediateProfile(rootKeyId: string, publicUrl: string): CertificateProfile {
  return cached(`intermediate ${rootKeyId} ${publicUrl}`, () =>
    withUrls(PROFILES.intermediate, statusUrls(publicUrl, rootKeyId)),
  )
}

/**
 * The subject's common name (CONTRACT "Certificate profile additions"): the entry's
 * `subject_cn`, else the SPIFFE ID's path without its leading "/", its last 64 characters
 * (X.520 ub-common-name). DN-mapping clients tell workloads apart by it; the identity stays
 * the URI SAN.
 */
export function commonNameFor(
  spiffeId: string | null,
  subjectCn?: string | null,
): string | undefined {
  if (subjectCn) return subjectCn
  if (spiffeId === null) return undefined
  const path = spiffeId.replace(/^spiffe:\/\/[^/]+\/?/, '')
  return path === '' ? undefined : [...path].slice(-64).join('')
}
