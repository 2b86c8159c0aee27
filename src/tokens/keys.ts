import type { KeyObject } from 'node:crypto'
import { rmSync } from 'node:fs'
import { join } from 'node:path'
import { calculateJwkThumbprint, type JWK } from 'jose'
import { readDataFile } from '../ca/files.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, jwsAlgFor, privateKeyFromPem, privateKeyToPem } from '../crypto/keys.js'
import type { KeyEncryptionKey } from '../crypto/sealing.js'
import type { Store } from '../db/port.js'
import type { SigningKeyRecord } from '../db/types.js'
import { importJwks, type JwsAlg, type VerificationKey } from './jws.js'

// Allowance for clock skew between the CA and resource servers when retiring keys.
const SKEW_MS = 60_000

/** The keys a verifier may use at `now`: published, not withdrawn. */
function publishedAt(all: readonly SigningKeyRecord[], now: number): SigningKeyRecord[] {
  return all.filter((k) => k.publishAt <= now && (k.withdrawAt === null || k.withdrawAt > now))
}

function publicJwkOf(k: SigningKeyRecord): JWK {
  return { ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' } as JWK
}

export interface ActiveSigningKey {
  readonly kid: string
  readonly alg: JwsAlg
  readonly privateKey: KeyObject
}

/**
 * Token-signing keys and their rotation. A new key is published in the JWKS at least one
 * access-token lifetime plus one JWKS cache lifetime before it first signs; the key it
 * replaces stays published until every token it signed has expired. So every unexpired
 * token's `kid` is always in the JWKS. Everything lives in the database, the private keys
 * sealed under the key-encryption key, so every process and replica (and `certbound keys
 * rotate`) sees the same keys; only the unsealed KeyObjects are cached, by kid.
 */
export class SigningKeys {
  readonly #privateKeys = new Map<string, KeyObject>()
  #verification: { id: string; keys: VerificationKey[] } | undefined

  constructor(
    private readonly deps: { config: Config; store: Store; clock: Clock; kek: KeyEncryptionKey },
  ) {}

  async #all(): Promise<SigningKeyRecord[]> {
    return this.deps.store.signingKeys.list()
  }

  /** The key that signs now: the newest active one not yet retired. */
  async active(): Promise<ActiveSigningKey> {
    const now = this.deps.clock.now().getTime()
    const candidates = (await this.#all()).filter(
      (k) =>
        k.activateAt <= now &&
        (k.retireAt === null || k.retireAt > now) &&
        (k.withdrawAt === null || k.withdrawAt > now),
    )
    const key = candidates.at(-1)
    if (!key) throw new Error('no token-signing key is active; run `certbound keys rotate --now`')
    let privateKey = this.#privateKeys.get(key.kid)
    if (!privateKey) {
      if (key.privateKeySealed === null) throw new Error(`signing key ${key.kid} is not imported`)
      const pem = this.deps.kek.open(key.privateKeySealed, sealPurpose(key.kid)).toString('utf8')
      privateKey = privateKeyFromPem(pem)
      this.#privateKeys.set(key.kid, privateKey)
    }
    return { kid: key.kid, alg: key.alg as JwsAlg, privateKey }
  }

  /**
   * The public keys to publish now (RFC 7517 JWK Set), and the `kid`s withdrawn so far as an
   * extra member (§5 lets verifiers ignore it): a verifier that checks it refuses a token signed
   * with a withdrawn key at its next refresh, whatever it still has cached (`keys rotate --now`).
   */
  async jwks(): Promise<{ keys: JWK[]; withdrawn_kids: string[] }> {
    const now = this.deps.clock.now().getTime()
    const all = await this.#all()
    return {
      keys: publishedAt(all, now).map(publicJwkOf),
      withdrawn_kids: all
        .filter((k) => k.withdrawAt !== null && k.withdrawAt <= now)
        .map((k) => k.kid),
    }
  }

  /**
   * The published keys as node KeyObjects for `verifyJwt`, imported again only when the set
   * changes: importing them on every introspection would dominate its cost.
   */
  async verificationKeys(): Promise<readonly VerificationKey[]> {
    const published = publishedAt(await this.#all(), this.deps.clock.now().getTime())
    // Decided on every call (a withdrawal must take effect at once), but the JWK Set is built
    // and imported again only when the published kids change.
    const id = published.map((k) => `${k.kid} ${k.alg}`).join(' ')
    if (this.#verification?.id !== id)
      this.#verification = { id, keys: importJwks({ keys: published.map(publicJwkOf) }) }
    return this.#verification.keys
  }

  /**
   * Creates the first key if there is none (init), and moves the keys of an older data_dir
   * from their 0600 files into the database (upgrade in place).
   */
  async ensure(): Promise<void> {
    const keys = await this.#all()
    for (const k of keys) {
      if (k.privateKeySealed !== null || !k.legacyKeyFile) continue
      const pem = readDataFile(this.deps.config.dataDir, k.legacyKeyFile)
      await this.deps.store.signingKeys.sealLegacyKey(
        k.kid,
        this.deps.kek.seal(pem, sealPurpose(k.kid)),
      )
      // Sealed in the database now: the clear copy goes (committed first, so nothing is lost).
      rmSync(join(this.deps.config.dataDir, k.legacyKeyFile), { force: true })
    }
    if (keys.length === 0) await this.rotate({ immediate: false, actor: 'system' })
  }

  /**
   * Adds a new key. Planned: it signs after access_token_ttl + jwks_cache_ttl, and the old
   * keys leave the JWKS once their last token has expired. Immediate (`--now`, a compromised
   * key): the new key signs at once and the old ones are withdrawn with their tokens.
   */
  async rotate({
    immediate,
    actor,
  }: {
    immediate: boolean
    actor: string
  }): Promise<SigningKeyRecord | undefined> {
    const { config, store, clock, kek } = this.deps
    const type = config.tokens.signingKeyType
    const { privateKey, publicKey } = await generateKeyPair(type)
    const publicJwk = publicKey.export({ format: 'jwk' }) as JWK
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256')
    const now = clock.now().getTime()
    const all = await this.#all()
    const existing = all.filter((k) => k.withdrawAt === null || k.withdrawAt > now)
    const activateAt =
      immediate || existing.length === 0
        ? now
        : now + config.tokens.accessTokenTtlMs + config.tokens.jwksCacheTtlMs + SKEW_MS
    const record: SigningKeyRecord = {
      kid,
      alg: jwsAlgFor(type),
      publicJwk,
      privateKeySealed: kek.seal(privateKeyToPem(privateKey), sealPurpose(kid)),
      createdAt: now,
      publishAt: now,
      activateAt,
      retireAt: null,
      withdrawAt: null,
    }
    const event = {
      actor,
      action: immediate ? 'signing_key.rotate_now' : 'signing_key.rotate',
      subject: kid,
      details: {
        alg: record.alg,
        activate_at: new Date(activateAt).toISOString(),
        replaces: existing.map((k) => k.kid),
      },
    }
    if (immediate && existing.length > 0) {
      const withdrawn = existing.map((k) => k.kid)
      await store.signingKeys.rotateNow(record, withdrawn, now, {
        ...event,
        details: { ...event.details, withdrawn },
      })
      for (const kid of withdrawn) this.#privateKeys.delete(kid)
    } else {
      const withdrawAt = activateAt + config.tokens.accessTokenTtlMs + SKEW_MS
      // Only if no other process added a key since we looked: then its key stands, not ours.
      const added = await store.signingKeys.rotate(
        record,
        existing.map((k) => ({ kid: k.kid, retireAt: activateAt, withdrawAt })),
        all.at(-1)?.kid ?? null,
        now,
        event,
      )
      if (!added) return undefined
    }
    return record
  }

  /** Rotates by age (tokens.signing_key_rotation) unless a successor is already scheduled. */
  async rotateIfDue(): Promise<boolean> {
    const period = this.deps.config.tokens.signingKeyRotationMs
    if (period === undefined) return false
    const now = this.deps.clock.now().getTime()
    const keys = (await this.#all()).filter((k) => k.withdrawAt === null || k.withdrawAt > now)
    const newest = keys.at(-1)
    if (!newest || newest.activateAt > now || now - newest.createdAt < period) return false
    return (await this.rotate({ immediate: false, actor: 'system' })) !== undefined
  }
}

const sealPurpose = (kid: string) => `signing-key:${kid}`
