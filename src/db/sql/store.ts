import type { SqlDriver } from '../driver.js'
import type { Store } from '../port.js'
import { SqlAuditStore } from './audit.js'
import { SqlAuthFailureStore } from './auth-failures.js'
import { SqlAuditLogStore } from './audit-log.js'
import { SqlCertificateStore } from './certificates.js'
import { SqlCrlStore } from './crls.js'
import { SqlEntryStore } from './entries.js'
import { SqlIssuingCaStore } from './issuing-cas.js'
import { SqlLeaseStore } from './leases.js'
import { SqlOcspStore } from './ocsp.js'
import { SqlLineageStore } from './lineages.js'
import { SqlOidcTokenStore } from './oidc-tokens.js'
import { SqlOpsStore } from './ops.js'
import { SqlServerCredentialStore } from './server-credentials.js'
import { SqlSigningKeyStore } from './signing-keys.js'
import { SqlTokenStore } from './tokens.js'

/** The repositories, written once in portable SQL, over one backend's driver. */
export function createSqlStore(driver: SqlDriver): Store {
  return {
    backend: driver.dialect,
    audit: new SqlAuditStore(driver),
    auditLog: new SqlAuditLogStore(driver),
    entries: new SqlEntryStore(driver),
    certificates: new SqlCertificateStore(driver),
    lineages: new SqlLineageStore(driver),
    crls: new SqlCrlStore(driver),
    tokens: new SqlTokenStore(driver),
    signingKeys: new SqlSigningKeyStore(driver),
    leases: new SqlLeaseStore(driver),
    serverCredentials: new SqlServerCredentialStore(driver),
    issuingCas: new SqlIssuingCaStore(driver),
    ocsp: new SqlOcspStore(driver),
    oidcTokens: new SqlOidcTokenStore(driver),
    authFailures: new SqlAuthFailureStore(driver),
    ops: new SqlOpsStore(driver),
    settled: () => driver.settled(),
    close: () => driver.close(),
  }
}
