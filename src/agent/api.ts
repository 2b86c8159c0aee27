import { Agent, request } from 'undici'

import type { CertificateResponse, TokenResponse } from '../contract.js'
import type { CaServerTrust } from '@certbound/verifier/mtls'
import { ServerError } from './errors.js'

export type { CertificateResponse, TokenResponse }

/** A client certificate (leaf + intermediate) and its private key, both PEM. */
export interface TlsCredential {
  readonly chainPem: string
  readonly keyPem: string
}

interface Call {
  readonly operation: string
  readonly method: 'GET' | 'POST'
  readonly path: string
  readonly credential?: TlsCredential
  readonly headers?: Record<string, string>
  readonly json?: unknown
  readonly form?: Record<string, string>
}

const TIMEOUTS = { headersTimeout: 30_000, bodyTimeout: 30_000 }
const MAX_CRL_BYTES = 8 * 1024 * 1024

function transportReason(e: unknown): string {
  const err = e as { code?: string; message?: string; cause?: { code?: string; message?: string } }
  const code = err.code ?? err.cause?.code
  const message = err.cause?.message ?? err.message ?? String(e)
  return code && !message.includes(code) ? `${code}: ${message}` : message
}

/** The server's own reason: problem+json `detail`, OAuth `error_description`, or the text. */
function serverReason(
  status: number,
  text: string,
): { reason: string; oauthError?: string; problem?: { code?: string; check?: string } } {
  let body: Record<string, unknown> | undefined
  try {
    body = JSON.parse(text) as Record<string, unknown>
  } catch {
    // not JSON
  }
  if (body && typeof body.error === 'string') {
    const description =
      typeof body.error_description === 'string' ? `: ${body.error_description}` : ''
    return { reason: `${status} ${body.error}${description}`, oauthError: body.error }
  }
  if (body && typeof body.detail === 'string') {
    const title = typeof body.title === 'string' ? ` ${body.title}` : ''
    const member = (k: string) => (typeof body[k] === 'string' ? (body[k] as string) : undefined)
    return {
      reason: `${status}${title}: ${body.detail}`,
      problem: { code: member('code'), check: member('check') },
    }
  }
  const snippet = text.replace(/\s+/g, ' ').trim().slice(0, 200)
  return { reason: snippet ? `${status}: ${snippet}` : `HTTP ${status}` }
}

/**
 * The few certbound endpoints a workload calls. Every request is HTTPS pinned to the CA
 * bundle, to the CA server only (its EKU, its certificate not revoked per the CA's CRL: see
 * `CaServerTrust`); mTLS requests present the given credential on a fresh connection (a pooled
 * one would keep presenting the certificate it was opened with).
 */
export class CaApi {
  #crlAgent: Agent | undefined
  #plainAgent: Agent | undefined

  constructor(
    private readonly base: string,
    private readonly trust: CaServerTrust,
    private readonly signal: AbortSignal,
  ) {}

  /**
   * `POST /v1/enroll` with the join token, or with an OIDC identity token and the SPIFFE ID of
   * the entry it enrols for.
   */
  enroll(
    credential: string,
    csr: string,
    ttl: string | undefined,
    oidcSpiffeId?: string,
  ): Promise<CertificateResponse> {
    return this.call({
      operation: 'enrol',
      method: 'POST',
      path: '/v1/enroll',
      headers: { authorization: `Bearer ${credential}` },
      json: {
        csr,
        ...(ttl ? { ttl } : {}),
        ...(oidcSpiffeId ? { spiffe_id: oidcSpiffeId } : {}),
      },
    })
  }

  /** `POST /v1/renew` over mTLS with the current certificate. */
  renew(
    current: TlsCredential,
    csr: string,
    ttl: string | undefined,
  ): Promise<CertificateResponse> {
    return this.call({
      operation: 'renew',
      method: 'POST',
      path: '/v1/renew',
      credential: current,
      json: { csr, ...(ttl ? { ttl } : {}) },
    })
  }

  /**
   * `POST /v1/renew` without a client certificate: renewal after expiry, with a proof of
   * possession by the expired certificate's key (see proof.ts).
   */
  renewAfterExpiry(
    proof: string,
    csr: string,
    ttl: string | undefined,
  ): Promise<CertificateResponse> {
    return this.call({
      operation: 'renew after expiry',
      method: 'POST',
      path: '/v1/renew',
      headers: { authorization: `Bearer ${proof}` },
      json: { csr, ...(ttl ? { ttl } : {}) },
    })
  }

  /** The server's OAuth issuer (RFC 8414 metadata): the audience of a renewal proof names it. */
  async issuer(): Promise<string> {
    const doc = await this.call<{ issuer?: unknown }>({
      operation: 'metadata',
      method: 'GET',
      path: '/.well-known/oauth-authorization-server',
    })
    if (typeof doc.issuer !== 'string')
      throw new ServerError('metadata', 200, 'metadata: the answer names no issuer')
    return doc.issuer
  }

  /** `POST /oauth/token` over mTLS (RFC 8705 tls_client_auth). */
  token(credential: TlsCredential, form: Record<string, string>): Promise<TokenResponse> {
    const operation = form.grant_type === 'refresh_token' ? 'refresh' : 'token'
    return this.call({ operation, method: 'POST', path: '/oauth/token', credential, form })
  }

  /** `GET /v1/bundle`: the trust bundle (PEM). */
  async bundle(): Promise<string> {
    return this.call<string>({ operation: 'bundle', method: 'GET', path: '/v1/bundle' }, false)
  }

  /**
   * `GET` of a CRL by URL (a distribution point or the server's own route): its DER, or
   * undefined for a 404. HTTPS goes to the CA server only, pinned as every call; plain HTTP is
   * allowed, since a CRL is judged by its signature (RFC 5280 §5), not by how it came. No
   * client certificate, so one pooled connection serves every CRL of a round.
   */
  async crl(url: string): Promise<Uint8Array | undefined> {
    this.#crlAgent ??= new Agent({ ...TIMEOUTS, connect: this.trust.connector() })
    const dispatcher = url.startsWith('https:')
      ? this.#crlAgent
      : (this.#plainAgent ??= new Agent(TIMEOUTS))
    try {
      const res = await request(url, { dispatcher, signal: this.signal })
      const body = Buffer.from(await res.body.arrayBuffer())
      if (res.statusCode === 404) return undefined
      if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`)
      if (body.length > MAX_CRL_BYTES) throw new Error(`${url}: over ${MAX_CRL_BYTES} bytes`)
      return new Uint8Array(body)
    } catch (e) {
      if (this.signal.aborted) throw e
      throw new Error(transportReason(e), { cause: e })
    }
  }

  /** Closes the pooled CRL connections. */
  async close(): Promise<void> {
    await Promise.all([this.#crlAgent?.close(), this.#plainAgent?.close()])
  }

  private async call<T>(c: Call, json = true): Promise<T> {
    const headers: Record<string, string> = {
      accept: json ? 'application/json' : '*/*',
      ...c.headers,
    }
    let body: string | undefined
    if (c.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(c.json)
    } else if (c.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(c.form).toString()
    }
    const cred = c.credential ? { cert: c.credential.chainPem, key: c.credential.keyPem } : {}
    const dispatcher = new Agent({ ...TIMEOUTS, connect: this.trust.connector(cred) })
    try {
      let status: number
      let text: string
      try {
        const res = await request(`${this.base}${c.path}`, {
          method: c.method,
          headers,
          body,
          dispatcher,
          signal: this.signal,
        })
        status = res.statusCode
        text = await res.body.text()
      } catch (e) {
        const reason = `cannot reach ${this.base}: ${transportReason(e)}`
        throw new ServerError(c.operation, undefined, `${c.operation}: ${reason}`, undefined, {
          cause: e,
        })
      }
      if (status < 200 || status > 299) {
        const { reason, oauthError, problem } = serverReason(status, text)
        throw new ServerError(c.operation, status, `${c.operation}: ${reason}`, oauthError, {
          problem,
        })
      }
      if (!json) return text as T
      try {
        return JSON.parse(text) as T
      } catch (e) {
        throw new ServerError(
          c.operation,
          status,
          `${c.operation}: the answer is not JSON`,
          undefined,
          { cause: e },
        )
      }
    } finally {
      dispatcher.destroy().catch(() => undefined)
    }
  }
}
