import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, privateKeyFromPem, privateKeyToPem } from '../crypto/keys.js'
import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { Store } from '../db/port.js'
import type { OcspSignerRecord } from '../db/types.js'
import type { OcspSigner } from '../x509/ocsp-response.js'
import { PROFILES } from '../x509/profiles.js'
import { newSerial, serialToHex } from '../x509/serial.js'
import { buildCertificateFast } from '../x509/template.js'
import type { CaEntry, CaMaterial } from './material.js'

export interface OcspSignerDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly kek: KeyEncryptionKey
  /** Pre-issuance lint of the responder's TBSCertificate (lint.ts). */
  readonly lint?: (tbs: Uint8Array) => void
}

export interface LoadedSigner {
  readonly serial: string
  readonly notAfter: number
  readonly signer: OcspSigner
}

const sealPurpose = (serial: string) => `ocsp-signer-key:${serial}`

/**
 * Delegated OCSP responders (RFC 6960 §4.2.2.2): per issuing CA a short-lived certificate with
 * id-kp-OCSPSigning and id-pkix-ocsp-nocheck, its key sealed in the database so every process
 * and replica signs with the same one. The maintenance leader renews them at a third of their
 * life left; a process that finds none usable issues one itself.
 */
export class OcspSigners {
  readonly #loaded = new Map<string, LoadedSigner>()

  constructor(private readonly deps: OcspSignerDeps) {}

  /** A responder for `ca` that outlives the next answer's nextUpdate; undefined: no CA key. */
  async forCa(ca: CaEntry): Promise<LoadedSigner | undefined> {
    if (!ca.issuer) return undefined
    const now = this.deps.clock.now().getTime()
    const horizon = now + this.deps.config.ocsp.validityMs
    const hit = this.#loaded.get(ca.keyId)
    if (hit && hit.notAfter > horizon) return hit
    const [row] = await this.deps.store.ocsp.signers(ca.keyId, horizon)
    const loaded = row ? this.#load(row) : await this.#issue(ca, now)
    this.#loaded.set(ca.keyId, loaded)
    return loaded
  }

  /** Leader: a new responder for every CA whose newest one has a third of its life left. */
  async renewDue(): Promise<void> {
    const now = this.deps.clock.now().getTime()
    const ttl = this.deps.config.ocsp.signerTtlMs
    for (const ca of this.deps.ca.cas) {
      if (!ca.issuer || ca.view.notAfter.getTime() <= now) continue
      const [newest] = await this.deps.store.ocsp.signers(ca.keyId, now)
      if (!newest || newest.notAfter - now < ttl / 3) {
        this.#loaded.set(ca.keyId, await this.#issue(ca, now))
      }
    }
  }

  #load(row: OcspSignerRecord): LoadedSigner {
    const keyPem = this.deps.kek.open(row.keySealed, sealPurpose(row.serial)).toString()
    return {
      serial: row.serial,
      notAfter: row.notAfter,
      signer: { certDer: row.der, privateKey: privateKeyFromPem(keyPem), includeCertificate: true },
    }
  }

  async #issue(ca: CaEntry, now: number): Promise<LoadedSigner> {
    const { config, store, kek, lint } = this.deps
    const keys = await generateKeyPair('ec-p256')
    const at = Math.floor(now / 1000) * 1000
    const notBefore = at - config.certificates.backdateMs
    const notAfter = Math.min(at + config.ocsp.signerTtlMs, ca.view.notAfter.getTime())
    const serial = newSerial()
    const org = config.certificates.organization
    const der = buildCertificateFast(
      {
        profile: PROFILES['ocsp-signer'],
        subject: { organization: org, commonName: `${org} OCSP responder` },
        publicKey: keys.publicKey,
        serial,
        notBefore: new Date(notBefore),
        notAfter: new Date(notAfter),
        issuer: ca.issuer!,
      },
      lint,
    )
    const record: OcspSignerRecord = {
      serial: serialToHex(serial),
      issuerKeyId: ca.keyId,
      der,
      keySealed: kek.seal(privateKeyToPem(keys.privateKey), sealPurpose(serialToHex(serial))),
      notBefore,
      notAfter,
      createdAt: at,
    }
    await store.ocsp.addSigner(record, {
      actor: 'system',
      action: 'ocsp.signer_issue',
      subject: record.serial,
      details: { issuer_key_id: ca.keyId, not_after: new Date(notAfter).toISOString() },
    })
    return {
      serial: record.serial,
      notAfter,
      signer: { certDer: der, privateKey: keys.privateKey, includeCertificate: true },
    }
  }
}
