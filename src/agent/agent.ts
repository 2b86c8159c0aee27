import type { X509Certificate } from 'node:crypto'
import type { Logger } from 'pino'

import { CaServerTrust } from '@certbound/verifier/mtls'
import { CaApi } from './api.js'
import type { TokenResponse } from './api.js'
import { credentialFromResponse, newKeyAndCsr } from './credential.js'
import type { Credential } from './credential.js'
import { CrlKeeper } from './crls.js'
import { AgentFailure, ServerError, cloneFailure, toFailure } from './errors.js'
import { loadExisting } from './existing.js'
import { Enroller } from './enrol.js'
import { generationFiles, publishGeneration, publishedKey, runExecHook } from './publish.js'
import { renewalProof } from './proof.js'
import { Interrupted, withRetries } from './retry.js'
import type { RetryPolicy } from './retry.js'
import type { AgentOptions } from './options.js'
import { backoffDelay, refreshTime, renewalTime, sleep } from './schedule.js'
import { crlNumbersOf, loadState, saveState, stateOf } from './state.js'
import { acceptBundle, anchorsPem, parseAnchors } from './trust.js'
import { accessTokenFrom, checkTokenResponse } from './token.js'
import type { AccessToken, Grant } from './token.js'

/** Attempts per step in `--once` mode (1 s and 2 s apart). */
const ONCE_ATTEMPTS = 3
const MAX_TIMER_MS = 2 ** 31 - 1

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * The workload agent: enrols once with a join token, then keeps a certificate and a
 * certificate-bound access token fresh in the output directory (see out-dir.ts).
 */
export class WorkloadAgent {
  readonly #o: AgentOptions
  readonly #log: Logger
  readonly #signal: AbortSignal
  readonly #api: CaApi
  readonly #trust: CaServerTrust
  readonly #crls: CrlKeeper
  #crlNumbers = new Map<string, bigint>()
  /** Trust anchors: `--ca-bundle`, plus anchors a current one signed (see trust.ts). */
  #anchors: X509Certificate[]
  readonly #enroller: Enroller
  #cred: Credential | undefined
  /** A new credential (renewed or enrolled) not published yet: in the state before its use. */
  #pending: Credential | undefined
  #token: AccessToken | undefined
  #refreshToken: string | undefined
  #renewAt = 0
  #tokenAt = 0
  #published: string | undefined

  constructor(options: AgentOptions, log: Logger, signal: AbortSignal) {
    this.#o = options
    this.#log = log
    this.#signal = signal
    this.#anchors = parseAnchors(options.caBundlePem, '--ca-bundle')
    // One record of the highest CRL numbers, for the server's certificate and published CRLs.
    const numbers = {
      get: (issuer: string) => this.#crlNumbers.get(issuer),
      set: (issuer: string, n: bigint) => void this.#crlNumbers.set(issuer, n),
    }
    this.#trust = new CaServerTrust({ ca: options.caBundlePem, crlNumbers: numbers })
    this.#api = new CaApi(options.server, this.#trust, signal)
    this.#crls = new CrlKeeper({
      server: options.server,
      fetch: (url) => this.#api.crl(url),
      numbers,
      log,
    })
    this.#enroller = new Enroller({
      options,
      log,
      signal,
      api: this.#api,
      anchors: () => this.#anchors,
      retry: (step, attempt, policy) => this.#retry(step, attempt, policy),
      policy: (deadline, lifetimeMs) => this.#policy(deadline, lifetimeMs),
    })
  }

  /**
   * Runs until stopped by `signal` (resolves) or, with `once`, one cycle. Throws an
   * `AgentFailure` with a one-line reason when it cannot go on.
   */
  async run(): Promise<void> {
    try {
      await this.#start()
      await this.#cycle(true)
      while (!this.#o.once) {
        await this.#waitForWork()
        await this.#cycle(false)
      }
    } catch (e) {
      if (!(e instanceof Interrupted)) throw toFailure(e)
      if (this.#o.once) throw new AgentFailure('interrupted', 'interrupted before finishing')
      this.#log.info('stopping')
    } finally {
      await this.#api.close()
      await this.#trust.close()
    }
  }

  async #start(): Promise<void> {
    const state = await loadState(this.#o.outDir, (reason) => this.#log.warn(reason))
    this.#crlNumbers = crlNumbersOf(state)
    const existing = await loadExisting(this.#o, this.#log, state)
    if (existing === undefined) return this.#enrol(`no certificate in ${this.#o.outDir}`)
    const { cred, receiptKnown, token, refreshToken, bundlePem, crlsPem } = existing
    this.#cred = cred
    if (existing.pending) this.#pending = cred
    this.#token = token
    this.#refreshToken = refreshToken
    // A bundle published earlier counts only as far as --ca-bundle vouches for it.
    if (bundlePem !== undefined) this.#anchors = acceptBundle(bundlePem, this.#anchors).anchors
    this.#crls.restore(crlsPem, cred, this.#anchors)
    // An unknown receipt time cannot be told from the backdated notBefore: renew now.
    this.#renewAt = receiptKnown ? renewalTime(cred.receivedAt, cred.notAfter) : 0
    this.#published = publishedKey(cred, token, this.#crls.key())
    if (this.#enroller.holdsJoinToken) {
      this.#log.info('the output directory holds a certificate: the join token is kept unused')
    }
  }

  /**
   * One round: enrol again if the certificate expired (only with a join token), renew if due,
   * refresh the token if due, then the CRLs if due, and publish what changed (one generation).
   * The first round (startup, `--once`) always gets a token: that also proves the certificate
   * still counts. A token refresh that falls due while the
   * renewal is due before that token would expire renews first, so that the token is fetched
   * once, with the new certificate.
   */
  async #cycle(first: boolean): Promise<void> {
    const cred = this.#cred!
    const now = Date.now()
    const tokenDue = now >= this.#tokenAt
    const expiry = this.#token?.expiresAt
    const early = !first && tokenDue && expiry !== undefined && this.#renewAt <= expiry
    if (now >= cred.notAfter) {
      await this.#renewExpired(cred)
    } else if (now >= this.#renewAt || early) {
      await this.#renew(cred)
    }
    if (first || Date.now() >= this.#tokenAt) await this.#obtainToken()
    // After the token: a short-lived certificate gets its token first, the CRLs can wait.
    if (Date.now() >= this.#crls.dueAt) await this.#crls.refresh(this.#cred!, this.#anchors)
    // Even when stopped during the CRLs: what this round obtained (a certificate a spent token
    // paid for, its token) is published before stopping, as after a failed token request.
    await this.#publish()
    if (this.#signal.aborted) throw new Interrupted()
  }

  async #waitForWork(): Promise<void> {
    const next = Math.min(this.#renewAt, this.#tokenAt, this.#cred!.notAfter, this.#crls.dueAt)
    const ms = Math.min(MAX_TIMER_MS, next - Date.now())
    this.#log.debug({ next_at: iso(next) }, 'waiting')
    await sleep(ms, this.#signal)
    if (this.#signal.aborted) throw new Interrupted()
  }

  #policy(deadline: number, lifetimeMs: number): RetryPolicy {
    return { deadline, lifetimeMs, maxAttempts: this.#o.once ? ONCE_ATTEMPTS : Infinity }
  }

  #retry<T>(step: string, attempt: () => Promise<T>, policy: RetryPolicy): Promise<T> {
    return withRetries(step, attempt, policy, this.#log, this.#signal)
  }

  /**
   * Enrols with the join token or an OIDC identity token (first boot, a dead or refused
   * certificate, or a re-enrolment the CA asks for).
   */
  async #enrol(why: string): Promise<void> {
    const cred = await this.#enroller.enrol(why)
    // A new enrolment starts a new lineage: the old token family cannot follow it.
    this.#token = undefined
    this.#refreshToken = undefined
    // Kept in the state until published, like a renewal: the token it cost is spent, and a
    // pending renewal of the lineage it replaces must not come back after a restart.
    await this.#switchTo(cred)
    this.#log.info(
      { serial: cred.serial, not_after: iso(cred.notAfter), renew_at: iso(this.#renewAt) },
      'enrolled',
    )
  }

  /**
   * The certificate expired (the agent was stopped, say): renew after expiry with a proof of
   * possession by its key, if its entry allows that (CONTRACT "Lineages"); else enrol with the
   * join token, if there is one.
   */
  async #renewExpired(cred: Credential): Promise<void> {
    const why = `the certificate ${cred.serial} expired at ${iso(cred.notAfter)}`
    const { keyType, spiffeId, dnsNames, ttl } = this.#o
    let next: Credential
    try {
      next = await this.#retry(
        'renew after expiry',
        async () => {
          const audience = `${await this.#api.issuer()}/v1/renew`
          const { keyPem, csr } = await newKeyAndCsr(keyType, spiffeId, dnsNames)
          const proof = renewalProof(cred, audience, spiffeId)
          const res = await this.#api.renewAfterExpiry(proof, csr, ttl)
          return credentialFromResponse(res, keyPem, spiffeId, Date.now(), this.#anchors)
        },
        this.#policy(Infinity, Math.max(1000, cred.notAfter - cred.receivedAt)),
      )
    } catch (e) {
      if (e instanceof ServerError && e.cloneSuspected) throw cloneFailure(e)
      if (!(e instanceof ServerError) || e.retryable) throw e
      this.#log.info(`${why}; renewal after expiry refused (${e.message})`)
      return this.#enrol(why)
    }
    await this.#switchTo(next)
    this.#log.info(
      { serial: next.serial, previous_serial: cred.serial, not_after: iso(next.notAfter) },
      'renewed the certificate after expiry',
    )
  }

  /**
   * Switches to a new credential: kept in the state before anything uses it, then the only one
   * used — after a renewal, the one before is retired at the server by its first use.
   */
  async #switchTo(next: Credential): Promise<void> {
    this.#pending = next
    await this.#adopt(next)
  }

  /** Renews over mTLS with the current certificate and a new key. */
  async #renew(cred: Credential): Promise<void> {
    const { keyType, spiffeId, dnsNames, ttl } = this.#o
    let next: Credential
    try {
      next = await this.#retry(
        'renew',
        async () => {
          const { keyPem, csr } = await newKeyAndCsr(keyType, spiffeId, dnsNames)
          const res = await this.#api.renew(cred, csr, ttl)
          return credentialFromResponse(res, keyPem, spiffeId, Date.now(), this.#anchors)
        },
        this.#policy(cred.notAfter, cred.notAfter - cred.receivedAt),
      )
    } catch (e) {
      if (e instanceof ServerError && e.cloneSuspected) throw cloneFailure(e)
      if (e instanceof ServerError && e.reenrolRequired) return this.#reenrol(e)
      if (e instanceof ServerError && e.credentialRefused) return this.#certificateRefused(e)
      if (e instanceof ServerError && e.retryable && !this.#o.once) {
        throw new AgentFailure(
          'unavailable',
          `the certificate ${cred.serial} expired at ${iso(cred.notAfter)} before it could be ` +
            `renewed (${e.message}); enrol again with a new --join-token`,
        )
      }
      throw e
    }
    await this.#switchTo(next)
    this.#log.info(
      {
        serial: next.serial,
        previous_serial: cred.serial,
        not_after: iso(next.notAfter),
        renew_at: iso(this.#renewAt),
      },
      'renewed the certificate',
    )
  }

  /** The CA renews this lineage no more (`renewal.max_lineage`): a new enrolment, if possible. */
  async #reenrol(e: ServerError): Promise<void> {
    const why = `the CA asks for a new enrolment (${e.message})`
    if (!this.#enroller.canEnrol) {
      throw new AgentFailure('refused', `${why}; enrol again with a new --join-token`)
    }
    await this.#enrol(why)
  }

  async #certificateRefused(e: ServerError): Promise<void> {
    // Two holders of this lineage: no automatic re-enrolment; an operator decides which is real.
    if (e.cloneSuspected) throw cloneFailure(e)
    const serial = this.#cred!.serial
    const why = `the server refused the certificate ${serial} (${e.message})`
    if (!this.#enroller.canEnrol) {
      throw new AgentFailure('refused', `${why}; enrol again with a new --join-token`)
    }
    await this.#enrol(why)
  }

  async #adopt(cred: Credential): Promise<void> {
    this.#cred = cred
    this.#renewAt = renewalTime(cred.receivedAt, cred.notAfter)
    this.#tokenAt = 0 // a new certificate gets a token bound to it right away
    this.#crls.invalidate() // and the CRLs of its chain, which may be a new one
    try {
      const offered = acceptBundle(await this.#api.bundle(), this.#anchors)
      if (offered.refused !== undefined) {
        this.#log.warn(
          `the server offers trust anchors that no current anchor signed (${offered.refused}); ` +
            'keeping the bundle this agent trusts (an operator changes it with --ca-bundle)',
        )
      }
      this.#anchors = offered.anchors
    } catch (e) {
      this.#log.warn(`could not fetch the trust bundle (keeping the one we have): ${e}`)
    }
    await this.#saveState()
  }

  /** Refreshes the token (at most once per refresh token) or gets one with client_credentials. */
  async #obtainToken(): Promise<void> {
    const cred = this.#cred!
    let got: { res: TokenResponse; grant: Grant }
    try {
      got = await this.#retry(
        'token',
        () => this.#tokenRequest(cred),
        this.#policy(Math.max(this.#renewAt, Date.now()), cred.notAfter - cred.receivedAt),
      )
    } catch (e) {
      if (e instanceof ServerError && e.credentialRefused) {
        await this.#certificateRefused(e)
        return this.#obtainToken()
      }
      await this.#publish() // a renewed certificate is kept even without its token
      if (!(e instanceof ServerError && e.retryable) || this.#o.once) throw e
      this.#tokenAt = Date.now() + backoffDelay(1, cred.notAfter - cred.receivedAt)
      return
    }
    const token = accessTokenFrom(got.res, cred.thumbprint, Date.now())
    this.#token = token
    this.#refreshToken = got.res.refresh_token
    this.#tokenAt = refreshTime(token.receivedAt, token.expiresAt)
    this.#log.info(
      {
        grant: got.grant,
        expires_at: iso(token.expiresAt),
        refresh_at: iso(this.#tokenAt),
        'x5t#S256': cred.thumbprint,
      },
      'obtained an access token',
    )
  }

  async #tokenRequest(cred: Credential): Promise<{ res: TokenResponse; grant: Grant }> {
    const refreshToken = this.#refreshToken
    if (refreshToken !== undefined) {
      // Spent from here on, whatever happens to the request: never sent twice (reuse would
      // revoke the whole family), so a failed refresh falls back to client_credentials.
      this.#refreshToken = undefined
      await this.#saveState()
      try {
        const form = { grant_type: 'refresh_token', refresh_token: refreshToken }
        return checkTokenResponse(await this.#api.token(cred, form), 'refresh_token')
      } catch (e) {
        if (this.#signal.aborted) throw e
        this.#log.warn(
          { step: 'refresh', status: e instanceof ServerError ? (e.status ?? null) : null },
          `refresh failed: ${(e as Error).message}; falling back to client_credentials ` +
            '(a refresh token is never sent twice)',
        )
      }
    }
    const res = await this.#api.token(cred, { grant_type: 'client_credentials' })
    return checkTokenResponse(res, 'client_credentials')
  }

  #saveState(): Promise<void> {
    return saveState(
      this.#o.outDir,
      stateOf(this.#cred, this.#token, this.#refreshToken, this.#crlNumbers, this.#pending),
    )
  }

  /** Writes and switches to a new generation if anything changed, then runs `--exec`. */
  async #publish(): Promise<void> {
    const cred = this.#cred!
    const key = publishedKey(cred, this.#token, this.#crls.key())
    if (key === this.#published) return
    const files = generationFiles(cred, this.#token, anchorsPem(this.#anchors), this.#crls.files())
    const name = await publishGeneration(
      this.#o.outDir,
      files,
      () => this.#saveState(),
      this.#o.fileAccess,
    )
    this.#published = key
    if (this.#pending?.thumbprint === cred.thumbprint) {
      // Published: the generation on disk is the one to go on with from now on.
      this.#pending = undefined
      await this.#saveState()
    }
    const withToken = files['token.json'] !== undefined
    this.#log.info(
      { generation: name, serial: cred.serial, token: withToken, crls: this.#crls.key() },
      'switched to a new generation',
    )
    if (this.#o.exec === undefined) return
    const env = { CERTBOUND_OUT: this.#o.outDir, CERTBOUND_SERIAL: cred.serial }
    await runExecHook(this.#o.exec, env, this.#o.once, this.#log)
  }
}
