import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, privateKeyToPem } from '../crypto/keys.js'
import type { Store } from '../db/port.js'
import { CAError } from '../errors.js'
import { buildCertificate, parseCertificate } from '../x509/certificate.js'
import { derToPem } from '../x509/pem.js'
import { newSerial } from '../x509/serial.js'
import { loadKeyEncryptionKey, PATHS, writePrivateKey, writePublic } from './files.js'
import { issueLeaf } from './issue.js'
import { caExists, loadCaMaterial, type CaMaterial } from './material.js'

interface InitDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
}

/** Creates root and intermediate CA, refusing to overwrite an existing CA. */
export async function createCa(deps: InitDeps): Promise<CaMaterial> {
  const { config, store, clock } = deps
  const dir = config.dataDir
  if (caExists(dir) || (await store.certificates.caCertificates()).length > 0) {
    throw new CAError('ERR_CA_EXISTS', `a CA already exists in ${dir}; refusing to overwrite it`)
  }
  const now = Math.floor(clock.now().getTime() / 1000) * 1000
  const org = config.certificates.organization
  const rootKeys = await generateKeyPair(config.ca.keyType)
  const rootDer = buildCertificate({
    profile: 'root',
    subject: { organization: org, commonName: `${org} certbound root CA` },
    publicKey: rootKeys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + config.ca.rootTtlMs),
    selfPrivateKey: rootKeys.privateKey,
  })
  const interKeys = await generateKeyPair(config.ca.keyType)
  const interDer = buildCertificate({
    profile: 'intermediate',
    subject: { organization: org, commonName: `${org} certbound issuing CA` },
    publicKey: interKeys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(Math.min(now + config.ca.intermediateTtlMs, now + config.ca.rootTtlMs)),
    issuer: { certDer: rootDer, privateKey: rootKeys.privateKey },
  })
  // Keys first: a certificate on disk without its key would look like a CA that cannot sign.
  loadKeyEncryptionKey(dir)
  writePrivateKey(dir, PATHS.rootKey, privateKeyToPem(rootKeys.privateKey))
  writePrivateKey(dir, PATHS.intermediateKey, privateKeyToPem(interKeys.privateKey))
  writePublic(dir, PATHS.rootCert, derToPem(rootDer, 'CERTIFICATE'))
  writePublic(dir, PATHS.bundle, derToPem(rootDer, 'CERTIFICATE'))
  writePublic(dir, PATHS.intermediateCert, derToPem(interDer, 'CERTIFICATE'))
  for (const [kind, der, keyFile] of [
    ['root', rootDer, PATHS.rootKey],
    ['intermediate', interDer, PATHS.intermediateKey],
  ] as const) {
    const view = parseCertificate(der)
    await store.certificates.saveCaCertificate(
      {
        kind,
        serial: view.serialHex,
        der,
        keyFile,
        notBefore: view.notBefore.getTime(),
        notAfter: view.notAfter.getTime(),
      },
      now,
      {
        actor: 'cli',
        action: `ca.create_${kind}`,
        subject: view.serialHex,
        details: { key_type: config.ca.keyType },
      },
    )
  }
  return loadCaMaterial(dir)
}

/**
 * Issues an admin client certificate for the first admin.spiffe_ids entry, locally from the
 * CA key on disk, so a lost or expired admin credential never locks operators out.
 */
export async function issueAdminCredential(
  deps: InitDeps,
  ca: CaMaterial,
  spiffeId = deps.config.admin.spiffeIds[0]!,
): Promise<{ serial: string; notAfter: Date }> {
  const { config, store, clock } = deps
  const keys = await generateKeyPair('ec-p256')
  const issued = issueLeaf(ca, config, {
    kind: 'admin',
    publicKey: keys.publicKey,
    spiffeId,
    dnsNames: [],
    ttlMs: config.admin.credentialTtlMs,
    entryId: null,
    renewedFrom: null,
    now: clock.now(),
  })
  await store.certificates.insert(issued, {
    actor: 'cli',
    action: 'certificate.issue_admin',
    subject: issued.serial,
    details: { spiffe_id: spiffeId, not_after: new Date(issued.notAfter).toISOString() },
  })
  writePrivateKey(config.dataDir, PATHS.adminKey, privateKeyToPem(keys.privateKey))
  writePublic(config.dataDir, PATHS.adminCert, derToPem(issued.der, 'CERTIFICATE'))
  return { serial: issued.serial, notAfter: new Date(issued.notAfter) }
}
