import { createHash } from 'node:crypto'
import { Agent, fetch as undiciFetch } from 'undici'
import type { Dispatcher } from 'undici'
import type { CaServerTrust } from './mtls/ca-server-trust.js'
import { VerifyError } from './errors.js'

/**
 * Online mode: ask the issuer (RFC 7662) whether a token is still active, which catches a
 * revoked certificate before the token's `exp`. The call is made over mTLS: the resource server
 * presents its own client certificate issued by the CA.
 */
export interface IntrospectionOptions {
  /** Default `<issuer>/oauth/introspect`. Must be `https:`. */
  endpoint?: string
  /** PEM of this resource server's client certificate (leaf, then intermediate). */
  cert?: string
  /** PEM of the private key of `cert`. */
  key?: string
  /**
   * Instead of `cert`/`key`: a function returning the current pair, called per request, e.g.
   * `() => { const g = boundFetch.current(); return { cert: g.chainPem, key: g.keyPem } }` with
   * `@certbound/client`, which follows rotations. (The connection is always the verifier's own:
   * it checks that the server is the CA server, by its EKU and the CA's CRL.)
   */
  credentials?: () => { cert: string; key: string }
  /** How long an answer is reused, in ms (never past the token's `exp`). Default 5 000. */
  cacheTtlMs?: number
  /** Abort an introspection request after this long, in ms. Default 5 000. */
  timeoutMs?: number
  /** Bound on cached answers. Default 10 000. */
  maxCacheEntries?: number
}

interface Answer {
  readonly active: boolean
  readonly sub?: unknown
  readonly thumbprint?: unknown
}

/** What the verifier needs from online mode; built by {@link createIntrospector}. */
export interface Introspector {
  /** @throws {VerifyError} unless the issuer says the token is active and bound as claimed. */
  check(token: string, claims: { sub: string; exp: number }, thumbprint: string): Promise<void>
  close(): Promise<void>
}

async function query(url: string, token: string, dispatcher: Dispatcher, timeoutMs: number) {
  let res
  try {
    res = await undiciFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ token }).toString(),
      dispatcher,
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    })
  } catch (cause) {
    throw new VerifyError('ERR_VERIFIER_UNAVAILABLE', 'introspection request failed', { cause })
  }
  const body: unknown = await res.json().catch(() => undefined)
  if (res.status !== 200 || typeof body !== 'object' || body === null) {
    throw new VerifyError('ERR_VERIFIER_UNAVAILABLE', `introspection answered ${res.status}`)
  }
  const { active, sub, cnf } = body as Record<string, unknown>
  const thumbprint = (cnf as Record<string, unknown> | undefined)?.['x5t#S256']
  return { active: active === true, sub, thumbprint } satisfies Answer
}

function judge(answer: Answer, claims: { sub: string }, thumbprint: string): void {
  if (!answer.active) {
    throw new VerifyError('ERR_TOKEN_INVALID', 'token is no longer active at the issuer')
  }
  if (answer.sub !== undefined && answer.sub !== claims.sub) {
    throw new VerifyError('ERR_TOKEN_INVALID', 'introspection names another subject')
  }
  if (answer.thumbprint !== undefined && answer.thumbprint !== thumbprint) {
    throw new VerifyError('ERR_TOKEN_BINDING_MISMATCH', 'introspection names another certificate')
  }
}

/** Builds the online-mode checker: answers cached by SHA-256 of the token, requests coalesced. */
export function createIntrospector(
  endpoint: string,
  trust: CaServerTrust,
  options: IntrospectionOptions,
): Introspector {
  const { cert, key, credentials } = options
  if (credentials === undefined && (cert === undefined || key === undefined)) {
    throw new TypeError('introspection needs "cert" and "key" (or "credentials") for mTLS')
  }
  // One pool per credential: a pooled connection keeps presenting the certificate it opened with.
  let pool: { cert: string; agent: Agent } | undefined
  const current = (): Dispatcher => {
    const c = credentials?.() ?? { cert: cert!, key: key! }
    if (pool?.cert !== c.cert) {
      void pool?.agent.close().catch(() => undefined)
      pool = { cert: c.cert, agent: new Agent({ connect: trust.connector(c) }) }
    }
    return pool.agent
  }
  const ttl = options.cacheTtlMs ?? 5_000
  const timeoutMs = options.timeoutMs ?? 5_000
  const max = options.maxCacheEntries ?? 10_000
  const cache = new Map<string, { answer: Answer; until: number }>()
  const inflight = new Map<string, Promise<Answer>>()

  async function lookup(token: string, exp: number): Promise<Answer> {
    const id = createHash('sha256').update(token).digest('base64url')
    const hit = cache.get(id)
    if (hit !== undefined && hit.until > Date.now()) return hit.answer
    let pending = inflight.get(id)
    if (pending === undefined) {
      pending = query(endpoint, token, current(), timeoutMs).finally(() => inflight.delete(id))
      inflight.set(id, pending)
    }
    const answer = await pending
    cache.delete(id)
    cache.set(id, { answer, until: Math.min(Date.now() + ttl, exp * 1000) })
    if (cache.size > max) cache.delete(cache.keys().next().value!)
    return answer
  }

  return {
    async check(token, claims, thumbprint) {
      judge(await lookup(token, claims.exp), claims, thumbprint)
    },
    async close() {
      cache.clear()
      await pool?.agent.close()
    },
  }
}
