import { X509Certificate } from 'node:crypto'
import { rmSync } from 'node:fs'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, privateKeyFromPem, privateKeyToPem, spkiDer } from '../crypto/keys.js'
import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { Store } from '../db/port.js'
import { bytesEqual } from '../x509/der.js'
import { ipToBytes } from '../x509/extensions.js'
import { derToPem } from '../x509/pem.js'
import { PATHS } from './files.js'
import { lacksServerMarker } from './server-identity.js'
import { issueLeaf } from './issue.js'
import type { CaMaterial } from './material.js'

/** The server's TLS certificate (with its chain) and key. */
export interface ServerTls {
  readonly certPem: string
  readonly keyPem: string
  readonly notAfter: Date
  readonly serial: string
}

export interface ServerCredentialDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly kek: KeyEncryptionKey
}

/** server.hostnames as one key: DNS names lower-cased, IPs as bytes, sorted. */
export function hostnamesKey(hostnames: readonly string[]): string {
  const names = hostnames.map((n) =>
    isIP(n) === 0 ? `dns:${n.toLowerCase()}` : `ip:${Buffer.from(ipToBytes(n)).toString('hex')}`,
  )
  return [...new Set(names)].sort().join(',')
}

const sealPurpose = (serial: string) => `server-tls-key:${serial}`

/**
 * The server's own TLS credential, kept in the database (certificate and key as one unit,
 * the key sealed) so every process and replica serves the same one, and renewed without a
 * restart: when a third of its lifetime is left, when it was revoked, or when
 * `server.hostnames` changed (a credential is kept per set of hostnames).
 */
export class ServerCredentials {
  readonly #key: string

  constructor(private readonly deps: ServerCredentialDeps) {
    this.#key = hostnamesKey(deps.config.server.hostnames)
  }

  /** The stored credential, its key checked to match its certificate; undefined when none. */
  async current(): Promise<ServerTls | undefined> {
    const row = await this.deps.store.serverCredentials.current(this.#key)
    if (!row) return undefined
    const keyPem = this.deps.kek.open(row.keySealed, sealPurpose(row.serial)).toString('utf8')
    const leaf = new X509Certificate(row.chainPem)
    if (!bytesEqual(spkiDer(leaf.publicKey), spkiDer(privateKeyFromPem(keyPem)))) {
      throw new Error(`the stored server TLS key does not match certificate ${row.serial}`)
    }
    return { certPem: row.chainPem, keyPem, notAfter: new Date(row.notAfter), serial: row.serial }
  }

  /**
   * True when `tls` should be replaced: a third of its life left, no longer valid, or issued by
   * an earlier version without the server marker that clients recognise the CA by.
   */
  async stale(tls: ServerTls): Promise<boolean> {
    if (lacksServerMarker(tls.certPem)) return true
    // After a CA rotation the server's own certificate moves to the new issuer too.
    if (
      !new X509Certificate(tls.certPem).checkIssued(
        new X509Certificate(this.deps.ca.intermediatePem),
      )
    )
      return true
    const left = tls.notAfter.getTime() - this.deps.clock.now().getTime()
    if (left < this.deps.config.server.tlsCertificateTtlMs / 3) return true
    return (await this.deps.store.certificates.get(tls.serial))?.status !== 'valid'
  }

  /** The credential to serve: the stored one while fresh, else a new one (one per race). */
  async fresh(force = false): Promise<ServerTls> {
    const current = await this.current()
    if (current && !force && !(await this.stale(current))) return current
    return this.#issue(current?.serial ?? null)
  }

  async #issue(expectedSerial: string | null): Promise<ServerTls> {
    const { config, store, clock, ca, kek } = this.deps
    const keys = await generateKeyPair('ec-p256')
    const names = config.server.hostnames
    const issued = issueLeaf(ca, config, {
      kind: 'server',
      publicKey: keys.publicKey,
      spiffeId: null,
      dnsNames: names.filter((n) => isIP(n) === 0).map((n) => n.toLowerCase()),
      ipAddresses: names.filter((n) => isIP(n) !== 0),
      ttlMs: Math.min(
        config.server.tlsCertificateTtlMs,
        ca.current.view.notAfter.getTime() - clock.now().getTime() - 60_000,
      ),
      entryId: null,
      renewedFrom: null,
      now: clock.now(),
    })
    const issuerPem = ca.byKeyId(issued.issuerKeyId ?? '')?.pem ?? ca.intermediatePem
    const certPem = derToPem(issued.der, 'CERTIFICATE') + issuerPem
    const keyPem = privateKeyToPem(keys.privateKey)
    const stored = await store.serverCredentials.replace(
      {
        hostnames: this.#key,
        serial: issued.serial,
        chainPem: certPem,
        keySealed: kek.seal(keyPem, sealPurpose(issued.serial)),
        notAfter: issued.notAfter,
        createdAt: issued.issuedAt,
      },
      issued,
      expectedSerial,
      {
        actor: 'system',
        action: 'certificate.issue_server',
        subject: issued.serial,
        details: {
          hostnames: names,
          not_after: new Date(issued.notAfter).toISOString(),
          thumbprint: issued.thumbprint,
        },
      },
    )
    if (!stored) {
      // Another process renewed first: serve its credential, not ours.
      const winner = await this.current()
      if (winner) return winner
      throw new Error('the server TLS credential changed while renewing; try again')
    }
    // A data_dir of an earlier version kept the server key in a file: no longer used.
    for (const file of [PATHS.legacyServerCert, PATHS.legacyServerKey])
      rmSync(join(config.dataDir, file), { force: true })
    return { certPem, keyPem, notAfter: new Date(issued.notAfter), serial: issued.serial }
  }
}
