import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseCertificate, type CertificateView, type Issuer } from '../x509/certificate.js'
import { keyIdentifier } from '../x509/extensions.js'
import { derToPem, pemBlocks, pemToDer } from '../x509/pem.js'
import { PATHS, readDataFile } from './files.js'
import { caKeyFromPem } from './key-protection.js'

/** One CA certificate this server knows: a root or an issuing CA, current or previous. */
export interface CaEntry {
  /** Lowercase hex of its subject key identifier: how URLs and the database name it. */
  readonly keyId: string
  readonly kind: 'root' | 'intermediate'
  readonly view: CertificateView
  readonly pem: string
  /** Certificate and private key, when this server holds the key (not an offline root). */
  readonly issuer: Issuer | undefined
  readonly parentKeyId: string | null
  /** When it became the issuer of new certificates (intermediates); the highest is current. */
  readonly activatedAt: number | null
}

/** The CA's signing material. The private keys stay in memory only. */
export interface CaMaterial {
  /** The root the current issuer chains to. */
  readonly root: CertificateView
  /** The current issuing CA: every new leaf and server certificate is signed by it. */
  readonly intermediate: CertificateView
  readonly issuer: Issuer
  /** Trust anchors clients pin (ca/bundle.pem: the roots), as served by GET /v1/bundle. */
  readonly bundlePem: string
  /** The current issuing CA, PEM. */
  readonly intermediatePem: string
  readonly current: CaEntry
  /** Every CA: roots and issuing CAs, current and previous. */
  readonly cas: readonly CaEntry[]
  byKeyId(keyId: string): CaEntry | undefined
  /** Issuing CAs still inside their validity, PEM: what client certificates may chain through. */
  readonly intermediatesPem: string
}

/** Lowercase hex of a certificate's subject key identifier (or of the RFC 7093 key id). */
export function keyIdOf(view: CertificateView): string {
  return Buffer.from(view.subjectKeyId ?? keyIdentifier(view.spkiDer)).toString('hex')
}

export function caExists(dataDir: string): boolean {
  return (
    existsSync(join(dataDir, PATHS.intermediateKey)) || existsSync(join(dataDir, PATHS.rootCert))
  )
}

/** A CaMaterial over a fixed list of CAs, `current` naming the issuing one. */
export function caMaterialOf(
  cas: readonly CaEntry[],
  current: CaEntry,
  bundlePem: string,
  now = Date.now(),
): CaMaterial {
  if (!current.issuer) throw new Error(`no private key for the issuing CA ${current.keyId}`)
  const byId = new Map(cas.map((c) => [c.keyId, c]))
  const root = byId.get(current.parentKeyId ?? '')?.view ?? cas.find((c) => c.kind === 'root')!.view
  const intermediatesPem = cas
    .filter((c) => c.kind === 'intermediate' && c.view.notAfter.getTime() > now)
    .map((c) => c.pem)
    .join('')
  return Object.freeze({
    root,
    intermediate: current.view,
    issuer: current.issuer,
    bundlePem,
    intermediatePem: current.pem,
    current,
    cas: Object.freeze([...cas]),
    byKeyId: (keyId: string) => byId.get(keyId.toLowerCase()),
    intermediatesPem,
  })
}

function fileEntry(
  dataDir: string,
  kind: 'root' | 'intermediate',
  certFile: string,
  keyFile: string,
  parentKeyId: string | null,
  passphrase: string | undefined,
): CaEntry {
  const view = parseCertificate(pemToDer(readDataFile(dataDir, certFile), 'CERTIFICATE'))
  // An offline root: the certificate is here, its key is not.
  const privateKey = existsSync(join(dataDir, keyFile))
    ? caKeyFromPem(readDataFile(dataDir, keyFile), passphrase, keyFile)
    : undefined
  return {
    keyId: keyIdOf(view),
    kind,
    view,
    pem: derToPem(view.der, 'CERTIFICATE'),
    issuer: privateKey && { certDer: view.der, privateKey },
    parentKeyId,
    activatedAt: kind === 'intermediate' ? view.notBefore.getTime() : null,
  }
}

/** The bundle of data_dir (the roots; two during a root rollover), PEM. */
export function readBundle(dataDir: string): string {
  const text = existsSync(join(dataDir, PATHS.bundle))
    ? readDataFile(dataDir, PATHS.bundle)
    : readDataFile(dataDir, PATHS.rootCert)
  return pemBlocks(text, 'CERTIFICATE')
    .map((der) => derToPem(der, 'CERTIFICATE'))
    .join('')
}

/**
 * The CA as `init` wrote it to data_dir: the root and the first issuing CA. Before a rotation
 * this is the whole CA; afterwards the database knows more (ca-set.ts). `passphrase` opens
 * encrypted key files (src/ca/key-protection.ts).
 */
export function loadCaMaterial(dataDir: string, passphrase?: string): CaMaterial {
  const root = fileEntry(dataDir, 'root', PATHS.rootCert, PATHS.rootKey, null, passphrase)
  const inter = fileEntry(
    dataDir,
    'intermediate',
    PATHS.intermediateCert,
    PATHS.intermediateKey,
    root.keyId,
    passphrase,
  )
  return caMaterialOf([root, inter], inter, readBundle(dataDir))
}

/** A CaMaterial of one root and one issuing CA held in memory (tests, measurements). */
export function caMaterialFromIssuers(root: Issuer, intermediate: Issuer): CaMaterial {
  const entry = (kind: 'root' | 'intermediate', i: Issuer, parent: string | null): CaEntry => {
    const view = parseCertificate(i.certDer)
    const pem = derToPem(view.der, 'CERTIFICATE')
    const activatedAt = kind === 'intermediate' ? view.notBefore.getTime() : null
    return { keyId: keyIdOf(view), kind, view, pem, issuer: i, parentKeyId: parent, activatedAt }
  }
  const r = entry('root', root, null)
  const inter = entry('intermediate', intermediate, r.keyId)
  return caMaterialOf([r, inter], inter, r.pem)
}
