/**
 * Why the agent stopped, and its exit code:
 * - `unavailable` (1): the server could not be reached or failed; trying again later may work.
 * - `usage` (2): bad flags or an output directory that belongs to another identity.
 * - `refused` (3): the server refused the credential (revoked, expired, unknown, entry disabled,
 *   its lineage revoked as a suspected clone) or the join token; only a new join token helps.
 * - `interrupted` (1): SIGTERM/SIGINT arrived during a `--once` run.
 */
export type FailureKind = 'unavailable' | 'usage' | 'refused' | 'interrupted'

const EXIT_CODES: Readonly<Record<FailureKind, number>> = {
  unavailable: 1,
  usage: 2,
  refused: 3,
  interrupted: 1,
}

/** A failure that ends the agent with a one-line reason. */
export class AgentFailure extends Error {
  override readonly name = 'AgentFailure'
  constructor(
    readonly kind: FailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }

  get exitCode(): number {
    return EXIT_CODES[this.kind]
  }
}

/**
 * A failed call to the certbound server. `status` is undefined when no HTTP answer arrived
 * (connection refused, TLS failure, timeout). The message carries the server's own reason:
 * the problem+json `detail` or the OAuth `error_description`.
 */
export class ServerError extends Error {
  override readonly name = 'ServerError'
  /** The problem details' `code` and `check` members, when the server sent them. */
  readonly problem: { readonly code?: string; readonly check?: string }
  constructor(
    readonly operation: string,
    readonly status: number | undefined,
    message: string,
    readonly oauthError?: string,
    options?: { cause?: unknown; problem?: { code?: string; check?: string } },
  ) {
    super(message, options)
    this.problem = options?.problem ?? {}
  }

  /**
   * The CA wants a new enrolment rather than a renewal (a lineage older than
   * `renewal.max_lineage`): an agent with an OIDC token source enrols again by itself.
   */
  get reenrolRequired(): boolean {
    return this.problem.code !== undefined && REENROL_CODES.has(this.problem.code)
  }

  /** Worth another attempt later: no answer, a server error, or "slow down". */
  get retryable(): boolean {
    const s = this.status
    return s === undefined || s >= 500 || s === 408 || s === 429
  }

  /** The server refused the credential presented (certificate or join token). */
  get credentialRefused(): boolean {
    return this.status === 401 || this.reenrolRequired
  }

  /**
   * The server saw two holders of this lineage and revoked it (CONTRACT "Lineages"): 403
   * `clone_suspected` on CA routes, `invalid_client` naming it on the token endpoint.
   */
  get cloneSuspected(): boolean {
    if (this.problem.code === 'clone_suspected') return true
    return this.oauthError === 'invalid_client' && /suspected clone/.test(this.message)
  }
}

/** The one line an operator gets after a clone alarm (see README "Cloned credentials"). */
export function cloneFailure(e: ServerError): AgentFailure {
  return new AgentFailure(
    'refused',
    `lineage revoked: suspected clone (${e.message}); another host used this credential. ` +
      'Find out which host is the real workload (audit event lineage.clone_detected), then ' +
      'enrol it again with a new join token',
    { cause: e },
  )
}

/** Problem `code`s by which the CA asks for a re-enrolment (`renewal.max_lineage`). */
export const REENROL_CODES: ReadonlySet<string> = new Set(['ERR_LINEAGE_TOO_OLD'])

/** Maps anything thrown to a one-line `AgentFailure`. */
export function toFailure(e: unknown): AgentFailure {
  if (e instanceof AgentFailure) return e
  if (e instanceof ServerError && e.cloneSuspected) return cloneFailure(e)
  if (e instanceof ServerError) {
    return new AgentFailure(e.retryable ? 'unavailable' : 'refused', e.message, { cause: e })
  }
  const message = e instanceof Error ? e.message : String(e)
  return new AgentFailure('unavailable', message.split('\n')[0]!, { cause: e })
}
