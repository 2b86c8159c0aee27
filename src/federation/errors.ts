import { CAError } from '../errors.js'

/**
 * The checks an OIDC identity token is refused by (CONTRACT "Enrolment by an OIDC identity
 * token"): named in the problem details' `check` member and in the `detail`, which never holds
 * the token itself.
 */
export type OidcCheck =
  | 'format' // not a compact JWS, or its header or payload is not JSON
  | 'alg' // none, a symmetric algorithm, or one not allowed
  | 'issuer' // the entry's issuer is not configured, or its discovery or JWKS is refused
  | 'signature' // no key of the issuer's JWKS verifies it
  | 'iss'
  | 'aud'
  | 'exp'
  | 'nbf'
  | 'iat' // missing, in the future, or older than federation.max_token_age
  | 'sub'
  | 'entry' // no entry for the SPIFFE ID accepts OIDC tokens
  | 'claims' // a claim of the entry's rule is missing, not a string, or does not match
  | 'replay' // this token enrolled already

/** A refused OIDC token: 401, `check` names the failed check. */
export function oidcRefusal(check: OidcCheck, detail: string): CAError {
  return new CAError('ERR_OIDC_TOKEN_INVALID', `OIDC token refused (${check}): ${detail}`, {
    extensions: { check },
  })
}

/** The issuer could not be asked (timeout, connection, HTTP error): 503, try again later. */
export function issuerUnavailable(name: string, detail: string): CAError {
  return new CAError(
    'ERR_OIDC_ISSUER_UNAVAILABLE',
    `OIDC issuer "${name}" is unavailable: ${detail}`,
    { extensions: { check: 'issuer' } },
  )
}
