import { X509Certificate } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, privateKeyToPem, spkiDer } from '../crypto/keys.js'
import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { Store } from '../db/port.js'
import type { IssuingCaRecord } from '../db/types.js'
import { CAError } from '../errors.js'
import { buildCertificate, parseCertificate, type CertificateView } from '../x509/certificate.js'
import { buildCsr } from '../x509/csr-builder.js'
import { keyIdentifier } from '../x509/extensions.js'
import { derToPem, pemBlocks } from '../x509/pem.js'
import { newSerial } from '../x509/serial.js'
import type { CaSet } from './ca-set.js'
import { issuingKeyPurpose } from './ca-set.js'
import { PATHS, writePublic } from './files.js'
import { keyIdOf, readBundle } from './material.js'
import { intermediateProfile } from './profiles.js'

export interface RotationDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly kek: KeyEncryptionKey
  readonly ca: CaSet
  /** Pre-issuance lint of the new CA certificate's TBS (lint.ts). */
  readonly lintCa?: (der: Uint8Array) => void
}

const shortId = (key: Parameters<typeof spkiDer>[0]) =>
  Buffer.from(keyIdentifier(spkiDer(key)).subarray(0, 4)).toString('hex')

const pendingPurpose = (id: string) => `pending-issuing-ca-key:${id}`

/** What a rotation or an import made current. */
export interface RotatedIssuer {
  readonly keyId: string
  readonly serial: string
  readonly notAfter: Date
  readonly previous: string
}

/**
 * `certbound ca rotate` (CONTRACT "CA rotation"): a new issuing CA under the same root signs
 * every new certificate from now on; the previous ones keep signing CRLs and OCSP answers for
 * theirs until they expire. Its key is sealed in the database, so every process and replica
 * picks it up (each reloads the CA set on its maintenance tick).
 */
export async function rotateIssuer(deps: RotationDeps): Promise<RotatedIssuer> {
  const { config, ca, clock } = deps
  const rootEntry = ca.byKeyId(ca.current.parentKeyId ?? '')
  if (!rootEntry?.issuer) {
    throw new CAError(
      'ERR_BAD_REQUEST',
      'the root key is not on this server (offline root): use `certbound ca intermediate-csr`, sign the CSR offline, then `certbound ca import-intermediate`',
    )
  }
  const now = Math.floor(clock.now().getTime() / 1000) * 1000
  const keys = await generateKeyPair(config.ca.keyType)
  const org = config.certificates.organization
  const der = buildCertificate({
    profile: intermediateProfile(rootEntry.keyId, config.server.publicUrl),
    subject: {
      organization: org,
      // Its own name (date and key id), so no client confuses it with the previous issuer.
      commonName: `${org} certbound issuing CA ${new Date(now).toISOString().slice(0, 10)} ${shortId(keys.publicKey)}`,
    },
    publicKey: keys.publicKey,
    serial: newSerial(),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(
      Math.min(now + config.ca.intermediateTtlMs, rootEntry.view.notAfter.getTime()),
    ),
    issuer: rootEntry.issuer,
  })
  deps.lintCa?.(der)
  const view = parseCertificate(der)
  const keyId = keyIdOf(view)
  return activate(
    deps,
    view,
    rootEntry.keyId,
    deps.kek.seal(privateKeyToPem(keys.privateKey), issuingKeyPurpose(keyId)),
    'ca.rotate',
  )
}

/**
 * `certbound ca intermediate-csr`: a new issuing CA key, sealed in the database until its
 * certificate comes back from the offline root (`ca import-intermediate`); returns the CSR PEM.
 */
export async function createIntermediateCsr(deps: RotationDeps): Promise<string> {
  const { config, clock, kek, store } = deps
  const keys = await generateKeyPair(config.ca.keyType)
  const id = Buffer.from(keyIdentifier(spkiDer(keys.publicKey))).toString('hex')
  const org = config.certificates.organization
  const csrPem = buildCsr({ ...keys, uris: [], commonName: `${org} certbound issuing CA` })
  const csr = pemBlocks(csrPem, 'CERTIFICATE REQUEST')[0]!
  await store.issuingCas.savePending(
    {
      keyId: id,
      keySealed: kek.seal(privateKeyToPem(keys.privateKey), pendingPurpose(id)),
      csr,
      createdAt: clock.now().getTime(),
    },
    { actor: 'cli', action: 'ca.intermediate_csr', subject: id },
  )
  return csrPem
}

/**
 * `certbound ca import-intermediate`: the certificate an offline root signed for a key made by
 * `ca intermediate-csr`. It must be a CA certificate for that key, signed by a root of
 * ca/bundle.pem, inside its validity; it becomes the current issuer.
 */
export async function importIntermediate(deps: RotationDeps, pem: string): Promise<RotatedIssuer> {
  const { store, kek, ca, config, clock } = deps
  const [der] = pemBlocks(pem, 'CERTIFICATE')
  if (!der) throw new CAError('ERR_PEM_INVALID', 'no CERTIFICATE in the file')
  const view = parseCertificate(der)
  const pendingId = Buffer.from(keyIdentifier(view.spkiDer)).toString('hex')
  const pending = await store.issuingCas.pending(pendingId)
  if (!pending)
    throw new CAError(
      'ERR_BAD_REQUEST',
      'no key of `certbound ca intermediate-csr` matches this certificate',
    )
  if (!view.isCA)
    throw new CAError(
      'ERR_BAD_REQUEST',
      'the certificate is not a CA certificate (basicConstraints cA)',
    )
  const now = clock.now().getTime()
  if (view.notBefore.getTime() > now + 300_000 || view.notAfter.getTime() <= now)
    throw new CAError('ERR_BAD_REQUEST', 'the certificate is outside its validity period')
  const cert = new X509Certificate(der)
  const roots = pemBlocks(readBundle(config.dataDir), 'CERTIFICATE').map(
    (d) => new X509Certificate(d),
  )
  const root = roots.find((r) => cert.checkIssued(r) && cert.verify(r.publicKey))
  if (!root)
    throw new CAError('ERR_BAD_REQUEST', 'the certificate is not signed by a root of ca/bundle.pem')
  const rootView = parseCertificate(new Uint8Array(root.raw))
  const rootKeyId = keyIdOf(rootView)
  // A new root of a rollover (in bundle.pem, cross-signed by the old one): recorded key-less.
  if (!ca.byKeyId(rootKeyId)) await recordRoot(deps, rootView)
  deps.lintCa?.(der)
  const keyPem = kek.open(pending.keySealed, pendingPurpose(pendingId))
  const keyId = keyIdOf(view)
  return activate(
    deps,
    view,
    rootKeyId,
    kek.seal(keyPem, issuingKeyPurpose(keyId)),
    'ca.import_intermediate',
  )
}

async function recordRoot(deps: RotationDeps, view: CertificateView): Promise<void> {
  const now = deps.clock.now().getTime()
  await deps.store.issuingCas.add(
    { ...record(view, 'root', null, null, now), activatedAt: null },
    null,
    { actor: 'cli', action: 'ca.import_root', subject: view.serialHex },
  )
}

function record(
  view: CertificateView,
  kind: 'root' | 'intermediate',
  parentKeyId: string | null,
  keySealed: Uint8Array | null,
  now: number,
): IssuingCaRecord {
  return {
    keyId: keyIdOf(view),
    kind,
    serial: view.serialHex,
    der: view.der,
    parentKeyId,
    keyFile: null,
    keySealed,
    notBefore: view.notBefore.getTime(),
    notAfter: view.notAfter.getTime(),
    activatedAt: kind === 'intermediate' ? now : null,
    revokedAt: null,
    revocationReason: null,
    createdAt: now,
  }
}

async function activate(
  deps: RotationDeps,
  view: CertificateView,
  rootKeyId: string,
  keySealed: Uint8Array,
  action: string,
): Promise<RotatedIssuer> {
  const { store, ca, config, clock } = deps
  const previous = ca.current.keyId
  const now = Math.max(clock.now().getTime(), (ca.current.activatedAt ?? 0) + 1)
  const added = await store.issuingCas.add(
    record(view, 'intermediate', rootKeyId, keySealed, now),
    previous,
    {
      actor: 'cli',
      action,
      subject: view.serialHex,
      details: { key_id: keyIdOf(view), previous, not_after: view.notAfter.toISOString() },
    },
  )
  if (!added)
    throw new CAError(
      'ERR_CONFLICT',
      'another rotation made a new issuer at the same moment; run it again',
    )
  // CONTRACT "CA rotation": ca/intermediate.pem is the current issuer (init's key file stays).
  writePublic(config.dataDir, PATHS.intermediateCert, derToPem(view.der, 'CERTIFICATE'))
  await ca.reload()
  return { keyId: keyIdOf(view), serial: view.serialHex, notAfter: view.notAfter, previous }
}
