import type { KeyObject } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import type { Clock } from '../clock.js'
import { privateKeyFromPem } from '../crypto/keys.js'
import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { Store } from '../db/port.js'
import type { IssuingCaRecord } from '../db/types.js'
import { parseCertificate } from '../x509/certificate.js'
import { derToPem } from '../x509/pem.js'
import { PATHS, readDataFile } from './files.js'
import { caKeyFromPem } from './key-protection.js'
import {
  caMaterialOf,
  loadCaMaterial,
  readBundle,
  type CaEntry,
  type CaMaterial,
} from './material.js'

/** The seal purpose of an issuing CA key kept in the database. */
export const issuingKeyPurpose = (keyId: string) => `issuing-ca-key:${keyId}`

export interface CaSetDeps {
  readonly dataDir: string
  readonly store: Store
  readonly kek: KeyEncryptionKey
  readonly clock: Clock
  /** Opens init's key files when they are encrypted (ca.key_passphrase_file). */
  readonly passphrase?: string | undefined
}

/**
 * Every CA of this server, from the database (CONTRACT "Processes, replicas and storage"):
 * init's root and first issuing CA (keys in data_dir files) and the issuing CAs rotations made
 * (keys sealed in the database). `current` is the one that signs new certificates; the
 * previous ones keep signing CRLs and OCSP answers for theirs. Every process reloads the set
 * on its maintenance tick, so a rotation reaches every process and replica.
 */
export class CaSet implements CaMaterial {
  #material: CaMaterial
  #signature: string
  #version = 0

  private constructor(
    private readonly deps: CaSetDeps,
    material: CaMaterial,
    signature: string,
  ) {
    this.#material = material
    this.#signature = signature
  }

  /** Records the CA of data_dir in the database (first start, upgrade) and loads the set. */
  static async open(deps: CaSetDeps): Promise<CaSet> {
    let rows = await deps.store.issuingCas.list()
    // No current issuer: a first start, or a partial record an earlier version left (it wrote
    // the rows one by one). Another process may be recording the same CA right now; whichever
    // commits first records all of it and the others find it (recordInitial is one step).
    if (!rows.some(wasActivated)) {
      await recordFileCas(deps, loadCaMaterial(deps.dataDir, deps.passphrase))
      rows = await deps.store.issuingCas.list()
    }
    const first = rows.find((r) => r.keyFile === PATHS.intermediateKey)
    // Certificates written before v6 were all signed by init's issuing CA.
    if (first) await deps.store.issuingCas.attributeUnassigned(first.keyId)
    return new CaSet(deps, materialOf(deps, rows), signatureOf(rows))
  }

  /** Re-reads the set; true when it changed (a rotation, an import). */
  async reload(): Promise<boolean> {
    const rows = await this.deps.store.issuingCas.list()
    const signature = signatureOf(rows)
    if (signature === this.#signature) return false
    this.#material = materialOf(this.deps, rows)
    this.#signature = signature
    this.#version++
    return true
  }

  /** Bumped by every change `reload` adopted. */
  get version(): number {
    return this.#version
  }
  get root() {
    return this.#material.root
  }
  get intermediate() {
    return this.#material.intermediate
  }
  get issuer() {
    return this.#material.issuer
  }
  get bundlePem() {
    return this.#material.bundlePem
  }
  get intermediatePem() {
    return this.#material.intermediatePem
  }
  get current() {
    return this.#material.current
  }
  get cas() {
    return this.#material.cas
  }
  get intermediatesPem() {
    return this.#material.intermediatesPem
  }
  byKeyId(keyId: string): CaEntry | undefined {
    return this.#material.byKeyId(keyId)
  }
}

/** The root and first issuing CA of data_dir as database rows, in one transaction. */
async function recordFileCas(deps: CaSetDeps, files: CaMaterial): Promise<void> {
  const now = deps.clock.now().getTime()
  await deps.store.issuingCas.recordInitial(
    files.cas.map((ca) => ({
      ca: {
        keyId: ca.keyId,
        kind: ca.kind,
        serial: ca.view.serialHex,
        der: ca.view.der,
        parentKeyId: ca.parentKeyId,
        keyFile: ca.kind === 'root' ? PATHS.rootKey : PATHS.intermediateKey,
        keySealed: null,
        notBefore: ca.view.notBefore.getTime(),
        notAfter: ca.view.notAfter.getTime(),
        activatedAt: ca.kind === 'intermediate' ? now : null,
        revokedAt: null,
        revocationReason: null,
        createdAt: now,
      },
      event: { actor: 'system', action: `ca.record_${ca.kind}`, subject: ca.view.serialHex },
    })),
  )
}

/** An issuing CA that was made current once (the newest such is the current issuer). */
function wasActivated(r: { kind: string; activatedAt: number | null }): boolean {
  return r.kind === 'intermediate' && r.activatedAt !== null
}

function signatureOf(rows: readonly IssuingCaRecord[]): string {
  return rows.map((r) => `${r.keyId}:${r.activatedAt}:${r.revokedAt}`).join(',')
}

function entryOf(deps: CaSetDeps, r: IssuingCaRecord): CaEntry {
  const view = parseCertificate(r.der)
  let privateKey: KeyObject | undefined
  if (r.keySealed) {
    const pem = deps.kek.open(r.keySealed, issuingKeyPurpose(r.keyId)).toString()
    privateKey = privateKeyFromPem(pem)
  } else if (r.keyFile && existsSync(join(deps.dataDir, r.keyFile))) {
    privateKey = caKeyFromPem(readDataFile(deps.dataDir, r.keyFile), deps.passphrase, r.keyFile)
  }
  return {
    keyId: r.keyId,
    kind: r.kind,
    view,
    pem: derToPem(r.der, 'CERTIFICATE'),
    issuer: privateKey && { certDer: r.der, privateKey },
    parentKeyId: r.parentKeyId,
    activatedAt: r.activatedAt,
  }
}

function materialOf(deps: CaSetDeps, rows: readonly IssuingCaRecord[]): CaMaterial {
  const entries = rows.map((r) => entryOf(deps, r))
  const current = entries
    .filter(wasActivated)
    .sort((a, b) => b.activatedAt! - a.activatedAt! || (a.keyId < b.keyId ? 1 : -1))[0]
  if (!current) throw new Error('the database names no current issuing CA')
  return caMaterialOf(entries, current, readBundle(deps.dataDir), deps.clock.now().getTime())
}
