import type { SqlDriver } from '../driver.js'
import type { Store } from '../port.js'
import { SqlAuditStore } from './audit.js'
import { SqlCertificateStore } from './certificates.js'
import { SqlCrlStore } from './crls.js'
import { SqlEntryStore } from './entries.js'
import { SqlLeaseStore } from './leases.js'
import { SqlServerCredentialStore } from './server-credentials.js'
import { SqlSigningKeyStore } from './signing-keys.js'
import { SqlTokenStore } from './tokens.js'

/** The repositories, written once in portable SQL, over one backend's driver. */
export function createSqlStore(driver: SqlDriver): Store {
  return {
    backend: driver.dialect,
    audit: new SqlAuditStore(driver),
    entries: new SqlEntryStore(driver),
    certificates: new SqlCertificateStore(driver),
    crls: new SqlCrlStore(driver),
    tokens: new SqlTokenStore(driver),
    signingKeys: new SqlSigningKeyStore(driver),
    leases: new SqlLeaseStore(driver),
    serverCredentials: new SqlServerCredentialStore(driver),
    settled: () => driver.settled(),
    close: () => driver.close(),
  }
}
