import type { KeyObject } from 'node:crypto'
import { join } from 'node:path'
import { calculateJwkThumbprint, createLocalJWKSet, type JWK } from 'jose'
import { PATHS, readDataFile, writePrivateKey } from '../ca/files.js'
import type { Clock } from '../clock.js'
import type { Config } from '../config/load.js'
import { generateKeyPair, jwsAlgFor, privateKeyFromPem, privateKeyToPem } from '../crypto/keys.js'
import type { SigningKeyRecord } from '../db/signing-keys.js'
import type { Store } from '../db/store.js'

// Allowance for clock skew between the CA and resource servers when retiring keys.
const SKEW_MS = 60_000

export interface ActiveSigningKey {
  readonly kid: string
  readonly alg: string
  readonly privateKey: KeyObject
}

/**
 * Token-signing keys and their rotation. A new key is published in the JWKS at least one
 * access-token lifetime plus one JWKS cache lifetime before it first signs; the key it
 * replaces stays published until every token it signed has expired. So every unexpired
 * token's `kid` is always in the JWKS. Metadata lives in the database (the running server
 * and `certbound keys rotate` see the same state); private keys are 0600 files.
 */
export class SigningKeys {
  readonly #privateKeys = new Map<string, KeyObject>()
  #keySet: { id: string; set: ReturnType<typeof createLocalJWKSet> } | undefined

  constructor(private readonly deps: { config: Config; store: Store; clock: Clock }) {}

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
      privateKey = privateKeyFromPem(readDataFile(this.deps.config.dataDir, key.keyFile))
      this.#privateKeys.set(key.kid, privateKey)
    }
    return { kid: key.kid, alg: key.alg, privateKey }
  }

  /**
   * The public keys to publish now (RFC 7517 JWK Set), and the `kid`s withdrawn so far as an
   * extra member (§5 lets verifiers ignore it): a verifier that checks it refuses a token signed
   * with a withdrawn key at its next refresh, whatever it still has cached (`keys rotate --now`).
   */
  async jwks(): Promise<{ keys: JWK[]; withdrawn_kids: string[] }> {
    const now = this.deps.clock.now().getTime()
    const all = await this.#all()
    const published = all.filter(
      (k) => k.publishAt <= now && (k.withdrawAt === null || k.withdrawAt > now),
    )
    return {
      keys: published.map((k) => ({ ...k.publicJwk, kid: k.kid, alg: k.alg, use: 'sig' }) as JWK),
      withdrawn_kids: all
        .filter((k) => k.withdrawAt !== null && k.withdrawAt <= now)
        .map((k) => k.kid),
    }
  }

  /**
   * A jose key set over the published keys, rebuilt only when the set changes: importing
   * the keys on every introspection would dominate its cost.
   */
  async keySet(): Promise<ReturnType<typeof createLocalJWKSet>> {
    const jwks = await this.jwks()
    const id = jwks.keys.map((k) => k.kid).join(' ')
    if (this.#keySet?.id !== id) this.#keySet = { id, set: createLocalJWKSet(jwks) }
    return this.#keySet.set
  }

  /** Creates the first key if there is none (init, or an upgraded database). */
  async ensure(): Promise<void> {
    if ((await this.#all()).length === 0) await this.rotate({ immediate: true, actor: 'system' })
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
  }): Promise<SigningKeyRecord> {
    const { config, store, clock } = this.deps
    const now = clock.now().getTime()
    const type = config.tokens.signingKeyType
    const { privateKey, publicKey } = await generateKeyPair(type)
    const publicJwk = publicKey.export({ format: 'jwk' }) as JWK
    const kid = await calculateJwkThumbprint(publicJwk, 'sha256')
    const keyFile = join(PATHS.signingKeysDir, `signing-${kid}.pem`)
    writePrivateKey(config.dataDir, keyFile, privateKeyToPem(privateKey))
    const existing = (await this.#all()).filter((k) => k.withdrawAt === null || k.withdrawAt > now)
    const activateAt =
      immediate || existing.length === 0
        ? now
        : now + config.tokens.accessTokenTtlMs + config.tokens.jwksCacheTtlMs + SKEW_MS
    const record: SigningKeyRecord = {
      kid,
      alg: jwsAlgFor(type),
      publicJwk,
      keyFile,
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
      await store.signingKeys.rotate(
        record,
        existing.map((k) => ({ kid: k.kid, retireAt: activateAt, withdrawAt })),
        now,
        event,
      )
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
    await this.rotate({ immediate: false, actor: 'system' })
    return true
  }
}
