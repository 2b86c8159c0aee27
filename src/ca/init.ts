import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, privateKeyToPem, spkiDer } from '../crypto/keys.js'
import { keyIdentifier } from '../x509/extensions.js'
import { x5tS256 } from '../crypto/thumbprint.js'
import { caKeyPassphrase, caKeyToPem } from './key-protection.js'
import { intermediateProfile } from './profiles.js'
import type { Store } from '../db/port.js'
import { CAError } from '../errors.js'
import { randomUUID } from 'node:crypto'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { newKeyEncryptionKeyBytes } from '../crypto/sealing.js'
import { buildCertificate } from '../x509/certificate.js'
import { derToPem } from '../x509/pem.js'
import { newSerial } from '../x509/serial.js'
import {
  commitDirectory,
  PATHS,
  stageDirectory,
  writeFileAtomic,
  writePrivateKey,
  writePublic,
} from './files.js'
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
  const rootKeyId = Buffer.from(keyIdentifier(spkiDer(rootKeys.publicKey))).toString('hex')
  const interDer = buildCertificate({
    // CDP and AIA name the root's CRL and certificate (CONTRACT "Certificate profile additions").
    profile: intermediateProfile(rootKeyId, config.server.publicUrl),
    subject: { organization: org, commonName: `${org} certbound issuing CA` },
    publicKey: interKeys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(Math.min(now + config.ca.intermediateTtlMs, now + config.ca.rootTtlMs)),
    issuer: { certDer: rootDer, privateKey: rootKeys.privateKey },
  })
  // Every file of the new CA is written and fsynced in a staging directory that is then renamed
  // to `ca/` in one step: a crash leaves either no CA or a whole one, never a certificate
  // without its key; and of several processes initialising one data_dir at once, exactly one
  // rename succeeds — the others use the CA that won.
  const staging = stageDirectory(dir, 'ca')
  writeFileAtomic(join(staging, 'kek.key'), newKeyEncryptionKeyBytes(), 0o600)
  // With a passphrase configured, both CA keys are written as encrypted PKCS#8.
  const passphrase = caKeyPassphrase(config)
  writeFileAtomic(join(staging, 'root-key.pem'), caKeyToPem(rootKeys.privateKey, passphrase), 0o600)
  writeFileAtomic(
    join(staging, 'intermediate-key.pem'),
    caKeyToPem(interKeys.privateKey, passphrase),
    0o600,
  )
  writeFileAtomic(join(staging, 'root.pem'), derToPem(rootDer, 'CERTIFICATE'), 0o644)
  writeFileAtomic(join(staging, 'bundle.pem'), derToPem(rootDer, 'CERTIFICATE'), 0o644)
  writeFileAtomic(join(staging, 'intermediate.pem'), derToPem(interDer, 'CERTIFICATE'), 0o644)
  if (!commitDirectory(staging, join(dir, 'ca'))) {
    throw new CAError('ERR_CA_EXISTS', `a CA was created in ${dir} at the same moment; using it`)
  }
  const ca = loadCaMaterial(dir, passphrase)
  await recordCaCertificates({ config, store, clock }, ca, 'cli')
  return ca
}

/**
 * Makes sure the database records the CA of data_dir (a process that created the CA files may
 * have stopped before it wrote the rows), and refuses a database that belongs to another CA.
 */
export async function recordCaCertificates(
  deps: InitDeps,
  ca: CaMaterial,
  actor = 'system',
): Promise<void> {
  const { config, store, clock } = deps
  const recorded = await store.certificates.caCertificates()
  const roots = recorded.filter((r) => r.kind === 'root').map((r) => r.serial)
  if (roots.length > 0 && !roots.includes(ca.root.serialHex)) {
    throw new CAError(
      'ERR_CONFIG_INVALID',
      `the database belongs to another CA (root ${roots[0]}); data_dir ${config.dataDir} holds root ${ca.root.serialHex}`,
    )
  }
  const now = Math.floor(clock.now().getTime() / 1000) * 1000
  for (const [kind, view, keyFile] of [
    ['root', ca.root, PATHS.rootKey],
    ['intermediate', ca.intermediate, PATHS.intermediateKey],
  ] as const) {
    await store.certificates.saveCaCertificate(
      {
        kind,
        serial: view.serialHex,
        der: view.der,
        keyFile,
        notBefore: view.notBefore.getTime(),
        notAfter: view.notAfter.getTime(),
      },
      now,
      {
        actor,
        action: `ca.create_${kind}`,
        subject: view.serialHex,
        details: { key_type: config.ca.keyType, thumbprint: x5tS256(view.der) },
      },
    )
  }
}

/**
 * Issues an admin client certificate for the first admin.spiffe_ids entry, locally from the
 * CA key on disk, so a lost or expired admin credential never locks operators out.
 */
export function issueAdminCredential(
  deps: InitDeps,
  ca: CaMaterial,
  spiffeId = deps.config.admin.spiffeIds[0]!,
): Promise<{ serial: string; notAfter: Date }> {
  return underAdminLease(deps, () => issueAdminUnlocked(deps, ca, spiffeId))
}

const ADMIN_LEASE = 'admin-credential'
const ADMIN_LEASE_TTL_MS = 30_000

/**
 * The admin credential is a pair of files every process on a data_dir writes to: replicas
 * started together (one initialising, one finding the CA half made and completing the init)
 * interleaved their writes, leaving one's key beside the other's certificate. One holder at a
 * time, across processes and replicas; a crashed holder's lease runs out.
 */
async function underAdminLease<T>(deps: InitDeps, fn: () => Promise<T>): Promise<T> {
  const holder = `${process.pid}-${randomUUID()}`
  const giveUp = Date.now() + 2 * ADMIN_LEASE_TTL_MS
  while (
    !(await deps.store.leases.acquire(
      ADMIN_LEASE,
      holder,
      deps.clock.now().getTime(),
      ADMIN_LEASE_TTL_MS,
    ))
  ) {
    if (Date.now() > giveUp)
      throw new CAError(
        'ERR_STORAGE_UNAVAILABLE',
        'another process has been issuing the admin credential for a minute',
      )
    await sleep(50)
  }
  try {
    return await fn()
  } finally {
    await deps.store.leases.release(ADMIN_LEASE, holder).catch(() => undefined)
  }
}

async function issueAdminUnlocked(
  deps: InitDeps,
  ca: CaMaterial,
  spiffeId: string,
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
  // Files first, then the row: a crash in between leaves a credential the database does not
  // know, which the next start replaces (completeInit), never a recorded one nobody holds.
  writePrivateKey(config.dataDir, PATHS.adminKey, privateKeyToPem(keys.privateKey))
  writePublic(config.dataDir, PATHS.adminCert, derToPem(issued.der, 'CERTIFICATE'))
  await store.certificates.insert(issued, {
    actor: 'cli',
    action: 'certificate.issue_admin',
    subject: issued.serial,
    details: {
      spiffe_id: spiffeId,
      not_after: new Date(issued.notAfter).toISOString(),
      thumbprint: issued.thumbprint,
    },
  })
  return { serial: issued.serial, notAfter: new Date(issued.notAfter) }
}

/**
 * Finishes an `init` that a crash interrupted after the CA directory was committed: the last
 * step, the first admin credential, is issued if the database has never recorded one. (An
 * operator who moved the admin credential off this host keeps it moved: it is recorded.)
 */
export function completeInit(deps: InitDeps, ca: CaMaterial): Promise<boolean> {
  const { config, store, clock } = deps
  // Checked under the lease: an init still running elsewhere has recorded its credential
  // by the time this process gets it.
  return underAdminLease(deps, async () => {
    const spiffeId = config.admin.spiffeIds[0]!
    const admins = await store.certificates.list({ spiffeId, limit: 1, now: clock.now().getTime() })
    if (admins.items.length > 0) return false
    await issueAdminUnlocked(deps, ca, spiffeId)
    return true
  })
}
