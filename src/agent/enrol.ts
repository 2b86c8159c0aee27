import type { X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'

import { parseDuration } from '../config/duration.js'
import type { CaApi } from './api.js'
import { credentialFromResponse, newKeyAndCsr } from './credential.js'
import type { Credential } from './credential.js'
import { AgentFailure, ServerError } from './errors.js'
import { enrolByOidc } from './oidc-enrol.js'
import { OidcTokenSource } from './oidc-token.js'
import type { AgentOptions } from './options.js'
import type { RetryPolicy } from './retry.js'

/** What the enroller borrows from the agent: its API, retries and current trust anchors. */
export interface EnrollerDeps {
  readonly options: AgentOptions
  readonly log: Logger
  readonly signal: AbortSignal
  readonly api: CaApi
  readonly anchors: () => readonly X509Certificate[]
  readonly retry: <T>(step: string, attempt: () => Promise<T>, policy: RetryPolicy) => Promise<T>
  readonly policy: (deadline: number, lifetimeMs: number) => RetryPolicy
}

/**
 * Enrolments (POST /v1/enroll with a fresh key): with the one-time join token, or with an OIDC
 * identity token of the configured source, read or fetched anew each time (nothing stored).
 */
export class Enroller {
  #joinToken: string | undefined
  readonly #oidc: OidcTokenSource | undefined

  constructor(private readonly deps: EnrollerDeps) {
    const { options, log, signal } = deps
    this.#joinToken = options.joinToken
    this.#oidc = options.oidc && new OidcTokenSource(options.oidc, log, signal)
  }

  /** Whether another enrolment is possible: an unspent join token, or an OIDC source. */
  get canEnrol(): boolean {
    return this.#joinToken !== undefined || this.#oidc !== undefined
  }

  get holdsJoinToken(): boolean {
    return this.#joinToken !== undefined
  }

  /** Enrols (`why` says why, for the log); throws an `AgentFailure` when refused. */
  enrol(why: string): Promise<Credential> {
    const { log, options } = this.deps
    const source = this.#oidc
    if (source === undefined) return this.#byJoinToken(why)
    log.info({ spiffe_id: options.spiffeId }, `${why}: enrolling with ${source.description}`)
    return enrolByOidc({
      source,
      once: options.once,
      log,
      enrolWith: (token) => this.#attempts(token, true),
    })
  }

  async #byJoinToken(why: string): Promise<Credential> {
    const joinToken = this.#joinToken
    if (joinToken === undefined) {
      const how = 'a new join token (--join-token or --join-token-file)'
      throw new AgentFailure('refused', `${why}; enrol with ${how}`)
    }
    this.deps.log.info(
      { spiffe_id: this.deps.options.spiffeId },
      `${why}: enrolling with the join token`,
    )
    let cred: Credential
    try {
      cred = await this.#attempts(joinToken, false)
    } catch (e) {
      if (e instanceof ServerError && e.credentialRefused) {
        throw new AgentFailure('refused', `the join token was refused: ${e.message}`)
      }
      throw e
    }
    this.#joinToken = undefined // spent
    return cred
  }

  /** POST /v1/enroll with a fresh key, retried while the server is unreachable or busy. */
  #attempts(credential: string, oidc: boolean): Promise<Credential> {
    const { options, api, retry, policy, anchors } = this.deps
    const { keyType, spiffeId, dnsNames, ttl } = options
    return retry(
      'enrol',
      async () => {
        const { keyPem, csr } = await newKeyAndCsr(keyType, spiffeId, dnsNames)
        const res = await api.enroll(credential, csr, ttl, oidc ? spiffeId : undefined)
        return credentialFromResponse(res, keyPem, spiffeId, Date.now(), anchors())
      },
      policy(Infinity, parseDuration(ttl ?? '1h')!),
    )
  }
}
