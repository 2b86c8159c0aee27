import { importJWK, type CryptoKey, type JWK } from 'jose'
import type { OidcIssuerConfig } from '../config/load.js'
import type { CAError } from '../errors.js'
import { issuerUnavailable, oidcRefusal } from './errors.js'
import { FetchFailure, IssuerHttp } from './fetch.js'

/** Keys older than this are fetched again on the next token (issuers rotate; caches age). */
const MAX_AGE_MS = 10 * 60_000
/** An unknown `kid` refetches the JWKS at most this often (a flood of made-up kids costs one). */
const REFETCH_MS = 30_000
/** After a failed fetch, requests fail fast for this long instead of each asking again. */
const FAILURE_HOLD_MS = 5_000
const MAX_KEYS = 100

/** Asymmetric JWS algorithms only (RFC 7518 §3.1, RFC 8037): never none or HMAC. */
export const ASYMMETRIC_ALGS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const

/** What the keys report to the operator; nothing secret ever reaches it. */
export interface KeysLog {
  info(fields: object, msg: string): void
  warn(fields: object, msg: string): void
}

/** Which key types fit an algorithm (RFC 7518 §6, RFC 8037 §2). */
function fits(jwk: JWK, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return jwk.kty === 'RSA'
  const curve = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' }[alg]
  if (curve !== undefined) return jwk.kty === 'EC' && jwk.crv === curve
  return jwk.kty === 'OKP' && jwk.crv === 'Ed25519'
}

/**
 * One issuer's signing keys: discovery (OpenID Connect Discovery 1.0 §4) unless `jwks_uri` is
 * configured, then the JWKS, over HTTPS with the issuer's own trust anchors. Cached for
 * {@link MAX_AGE_MS}; an unknown `kid` refetches at most every {@link REFETCH_MS}; a failure is
 * held for {@link FAILURE_HOLD_MS} so requests behind it fail fast; concurrent loads share one.
 */
export class IssuerKeys {
  readonly #http: IssuerHttp
  #keys: readonly JWK[] | undefined
  #loadedAt = 0
  #refetchedAt = -Infinity
  #loading: Promise<readonly JWK[]> | undefined
  #failure: { error: CAError; until: number } | undefined
  readonly #imported = new Map<string, Promise<CryptoKey | Uint8Array>>()

  constructor(
    readonly config: OidcIssuerConfig,
    timeoutMs: number,
    private readonly log: KeysLog,
    private readonly now: () => number = Date.now,
  ) {
    this.#http = new IssuerHttp(config.caBundlePem, timeoutMs)
  }

  /** The key that should verify a token with this protected header (a jose key resolver). */
  async keyFor(header: { alg?: string; kid?: string }): Promise<CryptoKey | Uint8Array> {
    const alg = header.alg ?? ''
    let keys = await this.#current()
    let found = select(keys, header.kid, alg)
    if (found === undefined && this.now() - this.#refetchedAt >= REFETCH_MS) {
      // The issuer may have rotated since we fetched: ask again, at a bounded rate.
      this.#refetchedAt = this.now()
      keys = await this.#load()
      found = select(keys, header.kid, alg)
    }
    if (found === undefined) {
      const which = header.kid === undefined ? 'no kid, and no single key' : `kid "${header.kid}"`
      throw oidcRefusal(
        'signature',
        `issuer "${this.config.name}" has no ${alg} key for ${which.slice(0, 200)}`,
      )
    }
    const cacheKey = `${found.kid ?? ''}\n${alg}\n${found.n ?? found.x ?? ''}`
    let key = this.#imported.get(cacheKey)
    if (key === undefined) {
      key = importJWK(found, alg)
      key.catch(() => this.#imported.delete(cacheKey))
      this.#imported.set(cacheKey, key)
    }
    return key.catch((e: unknown) => {
      throw oidcRefusal('signature', `the issuer's key cannot verify ${alg}: ${String(e)}`)
    })
  }

  close(): Promise<void> {
    return this.#http.close()
  }

  async #current(): Promise<readonly JWK[]> {
    if (this.#keys !== undefined && this.now() - this.#loadedAt < MAX_AGE_MS) return this.#keys
    try {
      return await this.#load()
    } catch (e) {
      // Keys that verified before still do while the issuer is down (it may rotate later).
      if (this.#keys !== undefined) return this.#keys
      throw e
    }
  }

  #load(): Promise<readonly JWK[]> {
    const held = this.#failure
    if (held !== undefined && this.now() < held.until) return Promise.reject(held.error)
    this.#loading ??= this.#fetch().finally(() => (this.#loading = undefined))
    return this.#loading
  }

  async #fetch(): Promise<readonly JWK[]> {
    const { name } = this.config
    try {
      const jwksUri = this.config.jwksUri ?? (await this.#discover())
      const keys = checkJwks(name, await this.#http.getJson(jwksUri))
      this.#keys = keys
      this.#loadedAt = this.now()
      this.#failure = undefined
      this.log.info(
        { issuer: name, jwks_uri: jwksUri, keys: keys.length },
        'OIDC issuer keys loaded',
      )
      return keys
    } catch (e) {
      const error =
        e instanceof FetchFailure
          ? e.kind === 'transport'
            ? issuerUnavailable(name, e.message)
            : oidcRefusal('issuer', `issuer "${name}": ${e.message}`)
          : (e as CAError)
      this.#failure = { error, until: this.now() + FAILURE_HOLD_MS }
      this.log.warn(
        { issuer: name, issuer_url: this.config.issuer, code: error.code, err: error.message },
        'OIDC issuer keys could not be loaded',
      )
      throw error
    }
  }

  /** The JWKS URL from discovery, which must name exactly the configured issuer (§4.3). */
  async #discover(): Promise<string> {
    const { name, issuer } = this.config
    // §4: any terminating "/" of the issuer is removed before appending the well-known path.
    const meta = await this.#http.getJson(
      `${issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`,
    )
    if (meta.issuer !== issuer) {
      const named =
        typeof meta.issuer === 'string' ? JSON.stringify(meta.issuer.slice(0, 200)) : 'none'
      throw oidcRefusal(
        'issuer',
        `issuer "${name}": its discovery document names issuer ${named}, not "${issuer}"`,
      )
    }
    if (typeof meta.jwks_uri !== 'string' || !meta.jwks_uri.startsWith('https://')) {
      throw oidcRefusal('issuer', `issuer "${name}": its discovery document has no https jwks_uri`)
    }
    return meta.jwks_uri
  }
}

/**
 * The verification keys of a JWKS (RFC 7517 §5). A set holding a symmetric (`oct`) or a
 * private key is refused whole: an issuer that publishes either is broken or hostile.
 */
function checkJwks(name: string, jwks: Record<string, unknown>): JWK[] {
  const keys = jwks.keys
  if (!Array.isArray(keys) || keys.length > MAX_KEYS) {
    throw oidcRefusal(
      'issuer',
      `issuer "${name}": the JWKS has no "keys" array of at most ${MAX_KEYS}`,
    )
  }
  const usable: JWK[] = []
  for (const k of keys as unknown[]) {
    if (typeof k !== 'object' || k === null) continue
    const jwk = k as JWK
    if (jwk.kty === 'oct') {
      throw oidcRefusal('issuer', `issuer "${name}": the JWKS holds a symmetric (oct) key: refused`)
    }
    if ('d' in jwk || 'p' in jwk || 'k' in jwk) {
      throw oidcRefusal('issuer', `issuer "${name}": the JWKS holds a private key: refused`)
    }
    if (jwk.use !== undefined && jwk.use !== 'sig') continue
    if (!['RSA', 'EC', 'OKP'].includes(jwk.kty ?? '')) continue
    if (jwk.alg !== undefined && !(ASYMMETRIC_ALGS as readonly string[]).includes(jwk.alg)) continue
    usable.push(jwk)
  }
  return usable
}

/** The key for a token: by `kid`, else the only key that fits the algorithm. */
function select(keys: readonly JWK[], kid: string | undefined, alg: string): JWK | undefined {
  const fitting = keys.filter((k) => fits(k, alg) && (k.alg === undefined || k.alg === alg))
  if (kid !== undefined) return fitting.find((k) => k.kid === kid)
  return fitting.length === 1 ? fitting[0] : undefined
}
