import type { Logger } from 'pino'

import type { Credential } from './credential.js'
import { AgentFailure, ServerError } from './errors.js'
import type { OidcTokenSource } from './oidc-token.js'

/** Checks by which the CA refuses a token that a newer token of the same source would pass. */
const STALE_CHECKS: ReadonlySet<string> = new Set(['replay', 'exp', 'iat', 'nbf'])

export interface OidcEnrolDeps {
  readonly source: OidcTokenSource
  readonly once: boolean
  readonly log: Logger
  /** Enrols with this token (the caller retries what is worth retrying). */
  enrolWith(token: string): Promise<Credential>
}

/**
 * Enrols with a token of the source. A token the CA refuses as spent or stale (each token
 * enrols once; `iat` too old) is replaced: GitHub is asked for a new one (once), a token file is
 * watched until the platform writes its next token (not with `--once`: a CI step should fail
 * rather than hang), an environment variable cannot change.
 */
export async function enrolByOidc(deps: OidcEnrolDeps): Promise<Credential> {
  const { source, log } = deps
  let fetchedAgain = false
  for (;;) {
    const token = await source.get()
    try {
      return await deps.enrolWith(token)
    } catch (e) {
      if (!(e instanceof ServerError) || !e.credentialRefused) throw e
      const stale = STALE_CHECKS.has(e.problem.check ?? '')
      if (stale && source.renewal === 'fetch' && !fetchedAgain) {
        fetchedAgain = true
        log.info(
          { check: e.problem.check },
          `${source.description} was refused: asking for a new one`,
        )
        continue
      }
      if (stale && source.renewal === 'wait' && !deps.once) {
        await source.waitForNew(token)
        continue
      }
      const hint = !stale
        ? ''
        : source.renewal === 'wait'
          ? '; the platform writes a new token before this one expires: run again then'
          : '; a new job (or a new token) is needed'
      throw new AgentFailure('refused', `${source.description} was refused: ${e.message}${hint}`, {
        cause: e,
      })
    }
  }
}
