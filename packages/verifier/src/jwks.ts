import { createRemoteJWKSet, customFetch, errors, jwksCache } from 'jose'
import type { FetchImplementation, JWKSCacheInput, JWTVerifyGetKey } from 'jose'
import { fetch as undiciFetch } from 'undici'
import type { Dispatcher } from 'undici'
import { VerifyError } from './errors.js'

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
  readonly key: JWTVerifyGetKey
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
  let timer: NodeJS.Timeout | undefined
  const key: JWTVerifyGetKey = async (header, token) => {
    if (timer === undefined) {
      timer = setInterval(() => void remote.reload().catch(() => undefined), maxAgeMs)
      timer.unref()
    }
    refuseWithdrawn(header.kid)
    try {
      const found = await remote(header, token)
      refuseWithdrawn(header.kid) // the fetch just made may have brought the list
      return found
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
  return { key, close: () => clearInterval(timer) }
}
