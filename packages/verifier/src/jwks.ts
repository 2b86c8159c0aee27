import { createRemoteJWKSet, customFetch, errors } from 'jose'
import type { FetchImplementation, JWTVerifyGetKey } from 'jose'
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
  /** Cached keys are refetched after this long. Default 300 000 ms (the issuer's JWKS max-age). */
  cacheMaxAgeMs?: number
  /** Abort a JWKS request after this long. Default 5 000 ms. */
  timeoutMs?: number
  /** After a failed fetch, further fetches are refused for this long. Default 2 000 ms. */
  failureBackoffMs?: number
}

/**
 * A jose key resolver for the issuer's JWKS, fetched over HTTPS through `dispatcher` (which pins
 * our trust anchors). jose caches the set, refetches on an unknown `kid` at most once per
 * cooldown and coalesces concurrent fetches; this adds a back-off after failures, so an
 * unreachable issuer is not hammered either. Errors come out as {@link VerifyError}s.
 */
export function createJwksResolver(
  url: URL,
  dispatcher: Dispatcher,
  options: JwksCacheOptions = {},
): JWTVerifyGetKey {
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
  const remote = createRemoteJWKSet(url, {
    cooldownDuration: options.cooldownMs ?? 30_000,
    // Match the issuer's default JWKS max-age, so a withdrawn key is dropped as soon.
    cacheMaxAge: options.cacheMaxAgeMs ?? 300_000,
    timeoutDuration: options.timeoutMs ?? 5_000,
    [customFetch]: fetchJwks,
  })
  return async (header, token) => {
    try {
      return await remote(header, token)
    } catch (cause) {
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
}
