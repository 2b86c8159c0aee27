import { createHash } from 'node:crypto'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import type { Store } from '../db/port.js'
import type { OcspLookup } from '../db/types.js'
import type { RevocationReason } from '../x509/crl.js'
import { childrenOf, readDer } from '../x509/der-reader.js'
import {
  MalformedOcspRequest,
  parseOcspRequest,
  type CertId,
  type OcspRequest,
} from '../x509/ocsp-request.js'
import {
  buildOcspResponse,
  ocspErrorResponse,
  type SingleAnswer,
  type SingleStatus,
} from '../x509/ocsp-response.js'
import type { CaEntry, CaMaterial } from './material.js'
import type { OcspSigners } from './ocsp-signers.js'

export interface OcspResponderDeps {
  readonly config: Config
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly signers: OcspSigners
  readonly lint?: (tbs: Uint8Array) => void
}

/** An answer and how long an HTTP cache may keep it (only pre-signed answers, RFC 5019 §6.2). */
export interface OcspAnswer {
  readonly der: Uint8Array
  readonly maxAgeSeconds?: number
}

/** Requests signed on demand per second (nonces, several CertIDs, unknown serials). */
class TokenBucket {
  #tokens: number
  #at = Date.now()
  constructor(private readonly rate: number) {
    this.#tokens = rate
  }
  take(): boolean {
    const now = Date.now()
    this.#tokens = Math.min(this.rate, this.#tokens + ((now - this.#at) / 1000) * this.rate)
    this.#at = now
    if (this.#tokens < 1) return false
    this.#tokens -= 1
    return true
  }
}

/**
 * The OCSP responder (RFC 6960). A request without a nonce for one certificate — what browsers,
 * nginx and TLS stapling send — costs a database read: its answer is signed once per status
 * change and stored, and a stored answer whose status differs from the certificate's row in
 * the same read is stale, so a revocation shows in the very next answer from every process and
 * replica. Requests with a nonce (RFC 8954; openssl sends one) are signed on demand with the
 * nonce echoed, at most `ocsp.nonce_rate` per second and process; beyond that they get the
 * stored answer without a nonce. Garbage gets `malformedRequest`, another CA's certificates
 * `unauthorized`: never an exception.
 */
export class OcspResponder {
  readonly #bucket: TokenBucket
  readonly #hashes = new Map<string, { name: Buffer; key: Buffer }>()

  constructor(private readonly deps: OcspResponderDeps) {
    this.#bucket = new TokenBucket(deps.config.ocsp.nonceRate)
  }

  async respond(der: Uint8Array): Promise<OcspAnswer> {
    let request: OcspRequest
    try {
      request = parseOcspRequest(der)
    } catch (e) {
      if (e instanceof MalformedOcspRequest) return { der: ocspErrorResponse('malformedRequest') }
      throw e
    }
    const cas = request.certIds.map((id) => this.#caOf(id))
    const ca = cas[0]
    // One response has one responder: every CertID must name the same CA, one whose key we hold.
    if (!ca?.issuer || cas.some((c) => c !== ca)) return { der: ocspErrorResponse('unauthorized') }
    const single = request.certIds.length === 1 ? request.certIds[0]! : undefined
    if (single && !(request.nonceExtension && this.#bucket.take())) {
      return this.#stored(ca, single)
    }
    if (!single && !this.#bucket.take()) return { der: ocspErrorResponse('tryLater') }
    const lookups = await Promise.all(
      request.certIds.map((id) => this.deps.store.ocsp.lookup(ca.keyId, id.serialHex)),
    )
    const answers = request.certIds.map((id, i) => this.#answer(id, lookups[i]!))
    return { der: await this.#sign(ca, answers, request.nonceExtension) }
  }

  /** After a revocation: the next answers for these serials are signed now, not at first ask. */
  async refresh(serials: readonly string[]): Promise<void> {
    const cas = this.deps.ca.cas.filter((c) => c.kind === 'intermediate' && c.issuer)
    for (const serial of serials.slice(0, 100)) {
      for (const ca of cas) {
        const lookup = await this.deps.store.ocsp.lookup(ca.keyId, serial)
        if (lookup.certificate && !this.#fresh(lookup)) await this.#storeNew(ca, serial, lookup)
      }
    }
  }

  async #stored(ca: CaEntry, id: CertId): Promise<OcspAnswer> {
    const lookup = await this.deps.store.ocsp.lookup(ca.keyId, id.serialHex)
    if (!lookup.certificate) {
      // Not issued here: signed on demand (never stored, any serial could be asked for).
      if (!this.#bucket.take()) return { der: ocspErrorResponse('tryLater') }
      return { der: await this.#sign(ca, [this.#answer(id, lookup)]) }
    }
    // The stored answer names the CertID as it was first asked (its hash algorithm); another
    // CertID form of the same certificate gets a fresh one.
    const stored =
      this.#fresh(lookup) && sameCertId(lookup.response!.der, id) ? lookup.response! : undefined
    const response = stored ?? (await this.#storeNew(ca, id, lookup))
    const now = this.deps.clock.now().getTime()
    return {
      der: response.der,
      maxAgeSeconds: Math.max(0, Math.floor((response.nextUpdate - now) / 1000)),
    }
  }

  #fresh(lookup: OcspLookup): boolean {
    const { certificate: c, response: r } = lookup
    if (!c || !r) return false
    const status = c.status === 'revoked' ? 'revoked' : 'good'
    const half = r.thisUpdate + this.deps.config.ocsp.validityMs / 2
    return (
      r.status === status && r.revokedAt === c.revokedAt && this.deps.clock.now().getTime() < half
    )
  }

  async #storeNew(ca: CaEntry, id: CertId | string, lookup: OcspLookup) {
    const certId = typeof id === 'string' ? this.#certIdFor(ca, id) : id
    const answer = this.#answer(certId, lookup)
    const der = await this.#sign(ca, [answer])
    const c = lookup.certificate!
    const stored = {
      issuerKeyId: ca.keyId,
      serial: certId.serialHex,
      status: c.status === 'revoked' ? ('revoked' as const) : ('good' as const),
      revokedAt: c.revokedAt,
      thisUpdate: answer.thisUpdate.getTime(),
      nextUpdate: answer.nextUpdate.getTime(),
      der,
    }
    await this.deps.store.ocsp.saveResponse(stored)
    return stored
  }

  #answer(id: CertId, lookup: OcspLookup): SingleAnswer {
    const now = Math.floor(this.deps.clock.now().getTime() / 1000) * 1000
    const c = lookup.certificate
    const status: SingleStatus = !c
      ? { kind: 'unknown' }
      : c.status === 'revoked'
        ? {
            kind: 'revoked',
            at: new Date(c.revokedAt!),
            reason: (c.revocationReason as RevocationReason | null) ?? null,
          }
        : { kind: 'good' }
    return {
      certIdDer: id.der,
      status,
      thisUpdate: new Date(now),
      nextUpdate: new Date(now + this.deps.config.ocsp.validityMs),
    }
  }

  async #sign(ca: CaEntry, answers: SingleAnswer[], nonce?: Uint8Array): Promise<Uint8Array> {
    const loaded = (await this.deps.signers.forCa(ca))!
    return buildOcspResponse(
      {
        signer: loaded.signer,
        producedAt: this.deps.clock.now(),
        answers,
        ...(nonce ? { nonceExtension: nonce } : {}),
      },
      this.deps.lint,
    )
  }

  /** The CA a CertID names: its name and key hashes under the CertID's hash algorithm. */
  #caOf(id: CertId): CaEntry | undefined {
    return this.deps.ca.cas.find((ca) => {
      const h = this.#hashesOf(ca, id.hash)
      return h.name.equals(id.issuerNameHash) && h.key.equals(id.issuerKeyHash)
    })
  }

  #hashesOf(ca: CaEntry, hash: CertId['hash']): { name: Buffer; key: Buffer } {
    const k = `${ca.keyId} ${hash}`
    let h = this.#hashes.get(k)
    if (!h) {
      // RFC 6960 §4.1.1: the hash of the issuer's Name DER and of its subjectPublicKey value.
      const spki = readDer(ca.view.spkiDer)
      const bits = childrenOf(ca.view.spkiDer, spki)[1]!
      const key = ca.view.spkiDer.subarray(bits.start + 1, bits.end)
      h = {
        name: createHash(hash).update(ca.view.subjectDer).digest(),
        key: createHash(hash).update(key).digest(),
      }
      this.#hashes.set(k, h)
    }
    return h
  }

  /** A SHA-1 CertID for one of `ca`'s serials (eager re-signing after a revocation). */
  #certIdFor(ca: CaEntry, serialHex: string): CertId {
    const h = this.#hashesOf(ca, 'sha1')
    const serial = Buffer.from(serialHex, 'hex')
    const der = certIdDer(h.name, h.key, serial)
    return { der, hash: 'sha1', issuerNameHash: h.name, issuerKeyHash: h.key, serialHex }
  }
}

const SHA1_ALG = Buffer.from('300906052b0e03021a0500', 'hex')

function tlv(tag: number, body: Buffer): Buffer {
  const len = body.length
  const head = len < 0x80 ? Buffer.of(tag, len) : Buffer.of(tag, 0x81, len)
  return Buffer.concat([head, body])
}

function certIdDer(name: Buffer, key: Buffer, serial: Buffer): Buffer {
  return tlv(0x30, Buffer.concat([SHA1_ALG, tlv(0x04, name), tlv(0x04, key), tlv(0x02, serial)]))
}

/** Whether a stored response answers exactly this CertID (the bytes it echoes). */
function sameCertId(response: Uint8Array, id: CertId): boolean {
  return Buffer.from(response).indexOf(Buffer.from(id.der)) !== -1
}
