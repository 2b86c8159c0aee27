import { readFile } from 'node:fs/promises'
import type { Logger } from 'pino'
import { request } from 'undici'

import { AgentFailure } from './errors.js'
import { Interrupted } from './retry.js'
import { sleep } from './schedule.js'

/** Where the agent gets an OIDC identity token to enrol with (no stored secret). */
export type OidcSourceOptions =
  /** GitHub Actions: the job's ID token from the runner (`permissions: id-token: write`). */
  | { readonly kind: 'github'; readonly audience: string }
  /** A file the platform keeps current: a Kubernetes projected token, GitLab id_tokens. */
  | { readonly kind: 'file'; readonly path: string }
  /** An environment variable (GitLab CI `id_tokens`). */
  | { readonly kind: 'env'; readonly name: string }

const FILE_POLL_MS = 1_000
const GITHUB_TIMEOUT_MS = 30_000
// Compact JWS; never echoed (it is a credential).
const JWT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** One source of OIDC identity tokens; a token is read or fetched anew for every enrolment. */
export class OidcTokenSource {
  constructor(
    readonly options: OidcSourceOptions,
    private readonly log: Logger,
    private readonly signal: AbortSignal,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /** What the token is, for messages (never the token). */
  get description(): string {
    const o = this.options
    if (o.kind === 'github') return 'the GitHub Actions ID token'
    return o.kind === 'file' ? `the token in ${o.path}` : `the token in $${o.name}`
  }

  /** How a new token can be had after one was spent or went stale. */
  get renewal(): 'fetch' | 'wait' | 'never' {
    const kind = this.options.kind
    return kind === 'github' ? 'fetch' : kind === 'file' ? 'wait' : 'never'
  }

  /** A token to enrol with now. */
  async get(): Promise<string> {
    const o = this.options
    const token =
      o.kind === 'github'
        ? await this.#github(o.audience)
        : o.kind === 'file'
          ? await this.#file(o.path)
          : (this.env[o.name] ?? '').trim()
    if (token === '') throw new AgentFailure('refused', `${this.description} is empty or missing`)
    if (!JWT.test(token)) throw new AgentFailure('refused', `${this.description} is not a JWT`)
    return token
  }

  /**
   * Waits until the file holds a token other than `spent` (the kubelet replaces a projected
   * token at 80% of its lifetime), logging once. Throws `Interrupted` on SIGTERM.
   */
  async waitForNew(spent: string): Promise<void> {
    if (this.options.kind !== 'file') return
    const path = this.options.path
    this.log.info(
      { file: path },
      `${this.description} was already used or is stale: waiting for the next one`,
    )
    for (;;) {
      await sleep(FILE_POLL_MS, this.signal)
      if (this.signal.aborted) throw new Interrupted()
      const now = await this.#file(path).catch(() => '')
      if (now !== '' && now !== spent) return
    }
  }

  async #file(path: string): Promise<string> {
    try {
      return (await readFile(path, 'utf8')).trim()
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? String(e)
      throw new AgentFailure('unavailable', `cannot read ${this.description}: ${code}`)
    }
  }

  /** GitHub Actions' runtime token request: `$ACTIONS_ID_TOKEN_REQUEST_URL&audience=…`. */
  async #github(audience: string): Promise<string> {
    const url = this.env.ACTIONS_ID_TOKEN_REQUEST_URL
    const bearer = this.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN
    if (!url || !bearer) {
      throw new AgentFailure(
        'usage',
        '--oidc github needs ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN: ' +
          'run it in a GitHub Actions job with "permissions: id-token: write"',
      )
    }
    let target: URL
    try {
      target = new URL(url)
    } catch {
      throw new AgentFailure('usage', 'ACTIONS_ID_TOKEN_REQUEST_URL is not a URL')
    }
    if (target.protocol !== 'https:') {
      throw new AgentFailure('usage', 'ACTIONS_ID_TOKEN_REQUEST_URL must be https')
    }
    target.searchParams.set('audience', audience)
    let status: number
    let body: unknown
    try {
      const res = await request(target, {
        method: 'GET',
        headers: {
          authorization: `Bearer ${bearer}`,
          accept: 'application/json; api-version=2.0',
        },
        headersTimeout: GITHUB_TIMEOUT_MS,
        bodyTimeout: GITHUB_TIMEOUT_MS,
        signal: this.signal,
      })
      status = res.statusCode
      body = await res.body.json().catch(() => undefined)
    } catch (e) {
      if (this.signal.aborted) throw new Interrupted()
      throw new AgentFailure('unavailable', `the GitHub ID token request failed: ${String(e)}`)
    }
    const value = (body as { value?: unknown } | undefined)?.value
    if (status !== 200 || typeof value !== 'string') {
      const kind = status >= 500 ? 'unavailable' : 'refused'
      throw new AgentFailure(kind, `the GitHub ID token request answered HTTP ${status}`)
    }
    return value.trim()
  }
}
