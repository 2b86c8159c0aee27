import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseCertificate, type CertificateView, type Issuer } from '../x509/certificate.js'
import { derToPem, pemToDer } from '../x509/pem.js'
import { PATHS, readDataFile } from './files.js'
import { caKeyFromPem } from './key-protection.js'

/** The CA's signing material as loaded from data_dir. The private keys stay in memory only. */
export interface CaMaterial {
  readonly root: CertificateView
  readonly intermediate: CertificateView
  /** The intermediate and its key: every leaf, server certificate and CRL is signed by it. */
  readonly issuer: Issuer
  /** Trust anchors clients pin (the root), as served by GET /v1/bundle. */
  readonly bundlePem: string
  readonly intermediatePem: string
}

export function caExists(dataDir: string): boolean {
  return (
    existsSync(join(dataDir, PATHS.intermediateKey)) || existsSync(join(dataDir, PATHS.rootCert))
  )
}

/** The CA of data_dir; `passphrase` opens encrypted key files (src/ca/key-protection.ts). */
export function loadCaMaterial(dataDir: string, passphrase?: string): CaMaterial {
  const root = parseCertificate(pemToDer(readDataFile(dataDir, PATHS.rootCert), 'CERTIFICATE'))
  const intermediate = parseCertificate(
    pemToDer(readDataFile(dataDir, PATHS.intermediateCert), 'CERTIFICATE'),
  )
  const privateKey = caKeyFromPem(
    readDataFile(dataDir, PATHS.intermediateKey),
    passphrase,
    PATHS.intermediateKey,
  )
  return {
    root,
    intermediate,
    issuer: { certDer: intermediate.der, privateKey },
    bundlePem: derToPem(root.der, 'CERTIFICATE'),
    intermediatePem: derToPem(intermediate.der, 'CERTIFICATE'),
  }
}
