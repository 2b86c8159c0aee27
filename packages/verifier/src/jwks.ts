import { KeyObject, type webcrypto } from 'node:crypto'
import { createRemoteJWKSet, customFetch, errors, jwksCache } from 'jose'
import type { FetchImplementation, JWK, JWKSCacheInput, JWTHeaderParameters } from 'jose'
import { fetch as undiciFetch } from 'undici'
import type { Dispatcher } from 'undici'
import { VerifyError } from './errors.js'
import { importJwks, type VerificationKey } from './jws.js'

/** How the issuer's JWKS is cached and refetched. */
export interface JwksCacheOptions {
  /**
   * After a successful fetch, a token with an unknown `kid` triggers another fetch only once this
   * much time has passed (rate limit against `kid` spraying). Default 30 000 ms.
   */
  cooldownMs?: number
  /**
   * The key set is refetched in the background this often, and a set older than this is never
   * used. Default 60 000 ms (the issuer's default JWKS max-age): a key the issuer withdrew is
   * refused at most this long after its withdrawal.
   */
  cacheMaxAgeMs?: number
  /** Abort a JWKS request after this long. Default 5 000 ms. */
  timeoutMs?: number
  /** After a failed fetch, further fetches are refused for this long. Default 2 000 ms. */
  failureBackoffMs?: number
}

/** The key resolver and the background refresh to stop. */
export interface JwksResolver {
  /**
   * The issuer's keys that may have signed a token with this header (by `kid` and `alg`), as
   * node KeyObjects imported once per key set. From the cached set while it is fresh; an
   * unknown `kid` or a stale set goes through jose's fetch logic (cooldown, coalescing).
   */
  keys(header: JWTHeaderParameters): Promise<readonly VerificationKey[]>
  close(): void
}

/**
 * A jose key resolver for the issuer's JWKS, fetched over HTTPS through `dispatcher` (which pins
 * our trust anchors). jose caches the set, refetches on an unknown `kid` at most once per
 * cooldown and coalesces concurrent fetches; this adds a back-off after failures, so an
 * unreachable issuer is not hammered either, a refresh in the background every
 * `cacheMaxAgeMs`, and the issuer's list of withdrawn `kid`s (`withdrawn_kids`, an extra member
 * of the JWK Set, RFC 7517 §5): a token signed with one is refused at once, whatever else is
 * cached. Errors come out as {@link VerifyError}s.
 */
export function createJwksResolver(
  url: URL,
  dispatcher: Dispatcher,
  options: JwksCacheOptions = {},
): JwksResolver {
  const maxAgeMs = options.cacheMaxAgeMs ?? 60_000
  const backoffMs = options.failureBackoffMs ?? 2_000
  let lastFailure = Number.NEGATIVE_INFINITY
  const fetchJwks: FetchImplementation = async (href, init) => {
    if (Date.now() - lastFailure < backoffMs)
      throw new Error('JWKS fetch backing off after a failure')
    try {
      const res = await undiciFetch(href, {
        method: init.method,
        headers: [...init.headers.entries()],
        redirect: init.redirect,
        signal: init.signal,
        dispatcher,
      })
      if (res.status !== 200) lastFailure = Date.now()
      return res as unknown as Response
    } catch (err) {
      lastFailure = Date.now()
      throw err
    }
  }
  // jose keeps the last JWK Set document here, members it does not know included.
  const cache = {} as JWKSCacheInput & { jwks?: { withdrawn_kids?: unknown } }
  const remote = createRemoteJWKSet(url, {
    cooldownDuration: options.cooldownMs ?? 30_000,
    // Match the issuer's default JWKS max-age, so a withdrawn key is dropped as soon.
    cacheMaxAge: maxAgeMs,
    timeoutDuration: options.timeoutMs ?? 5_000,
    [customFetch]: fetchJwks,
    [jwksCache]: cache,
  })
  const refuseWithdrawn = (kid: string | undefined) => {
    const list = cache.jwks?.withdrawn_kids
    if (kid !== undefined && Array.isArray(list) && list.includes(kid)) {
      throw new VerifyError(
        'ERR_TOKEN_INVALID',
        'the token is signed with a key the issuer withdrew',
      )
    }
  }
  // The KeyObjects of the set jose holds now, imported again only when it fetched a new one.
  let imported: { from: unknown; keys: VerificationKey[] } = { from: undefined, keys: [] }
  const cached = (header: JWTHeaderParameters): VerificationKey[] => {
    const doc = cache.jwks as { keys?: JWK[] } | undefined
    if (doc !== imported.from) {
      imported = { from: doc, keys: Array.isArray(doc?.keys) ? importJwks({ keys: doc.keys }) : [] }
    }
    return imported.keys.filter(
      (k) => k.alg === header.alg && (header.kid === undefined || k.kid === header.kid),
    )
  }
  let timer: NodeJS.Timeout | undefined
  const keys = async (header: JWTHeaderParameters): Promise<readonly VerificationKey[]> => {
    if (timer === undefined) {
      timer = setInterval(() => void remote.reload().catch(() => undefined), maxAgeMs)
      timer.unref()
    }
    refuseWithdrawn(header.kid)
    if (remote.fresh) {
      const found = cached(header)
      if (found.length > 0) return found
    }
    try {
      // Fetches when the set is stale or the kid unknown (at most once per cooldown).
      const key = await remote(header, { payload: '', signature: '' })
      refuseWithdrawn(header.kid) // the fetch just made may have brought the list
      const found = cached(header)
      if (found.length > 0) return found
      // A key jose matched that importJwks leaves out (no "alg" member): use jose's choice.
      return [{ kid: header.kid, alg: header.alg as VerificationKey['alg'], key: toKeyObject(key) }]
    } catch (cause) {
      if (cause instanceof VerifyError) throw cause
      refuseWithdrawn(header.kid)
      if (cause instanceof errors.JWKSNoMatchingKey) {
        throw new VerifyError('ERR_TOKEN_INVALID', 'no key of the issuer matches the token "kid"', {
          cause,
        })
      }
      if (cause instanceof errors.JWKSMultipleMatchingKeys) {
        throw new VerifyError('ERR_TOKEN_INVALID', 'the token "kid" matches several keys', {
          cause,
        })
      }
      if (cause instanceof errors.JOSENotSupported) {
        throw new VerifyError('ERR_TOKEN_INVALID', 'unsupported "alg"', { cause })
      }
      throw new VerifyError('ERR_VERIFIER_UNAVAILABLE', 'the issuer JWKS could not be fetched', {
        cause,
      })
    }
  }
  return { keys, close: () => clearInterval(timer) }
}

function toKeyObject(key: unknown): KeyObject {
  return key instanceof KeyObject ? key : KeyObject.from(key as webcrypto.CryptoKey)
}
