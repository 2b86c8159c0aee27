import type { CertificateKind } from '../db/types.js'
import { PROFILES } from '../x509/profiles.js'
import type { CertificateProfile } from '../x509/profiles.js'

/**
 * The certificate profile for each kind of end-entity certificate the CA issues. The values
 * live in x509/profiles.ts (the encoders read them); AIA and CRL distribution point URLs from
 * the configuration will be filled in here (`withUrls`) when the CA publishes them.
 */
export function profileForKind(kind: CertificateKind): CertificateProfile {
  switch (kind) {
    case 'workload':
      return PROFILES.leaf
    case 'admin':
      return PROFILES.admin
    case 'server':
      return PROFILES.server
  }
}
