/**
 * Coded domain errors (jose style). Domain code throws these; only `http/errors.ts`
 * maps a code to a status, a problem+json body or an RFC 6749 error.
 */
export type CAErrorCode =
  | 'ERR_BAD_REQUEST' // malformed body, JSON, form, parameter
  | 'ERR_PEM_INVALID'
  | 'ERR_CSR_INVALID' // cannot parse, bad signature (no proof of possession)
  | 'ERR_POLICY_DENIED' // identity mismatch, CA:true, DNS not allowed, key refused
  | 'ERR_KEY_UNSUPPORTED' // key type or size outside allowed_key_types
  | 'ERR_TTL_TOO_LONG'
  | 'ERR_NOT_FOUND'
  | 'ERR_METHOD_NOT_ALLOWED'
  | 'ERR_CONFLICT'
  | 'ERR_JOIN_TOKEN_INVALID' // unknown, used, expired
  | 'ERR_OIDC_TOKEN_INVALID' // an OIDC identity token that fails a check (extension `check` names it)
  | 'ERR_OIDC_ISSUER_UNAVAILABLE' // the issuer's discovery or JWKS could not be fetched in time
  | 'ERR_CLIENT_CERT_REQUIRED' // no / untrusted / expired / unknown / revoked client certificate
  | 'ERR_FORBIDDEN' // a valid certificate that may not do this
  | 'ERR_ENTRY_DISABLED'
  | 'ERR_CERT_REVOKED'
  | 'ERR_CERT_EXPIRED'
  | 'ERR_CERT_SUPERSEDED' // a retired generation of its lineage (a newer certificate is in use)
  | 'ERR_CLONE_SUSPECTED' // a retired generation was used where only the current may: lineage revoked
  | 'ERR_LINEAGE_TOO_OLD' // renewal.max_lineage: enrol again
  | 'ERR_PROOF_INVALID' // renewal after expiry: a proof of possession that does not hold
  | 'ERR_PAYLOAD_TOO_LARGE'
  | 'ERR_UNSUPPORTED_MEDIA_TYPE' // a body of a content type the route does not take
  | 'ERR_RATE_LIMITED' // too many failed authentications from this peer address (limits.*)
  | 'ERR_CA_EXISTS'
  | 'ERR_CONFIG_INVALID'
  | 'ERR_DB_TOO_NEW'
  | 'ERR_AUDIT_LOG_INVALID' // the audit log's tree, tiles or checkpoints do not verify
  // storage (any backend)
  | 'ERR_STORAGE_CONFLICT' // a unique or primary-key constraint refused the write
  | 'ERR_STORAGE_UNAVAILABLE' // busy beyond database.busy_timeout, unreachable, failing over
  | 'ERR_STORAGE_FULL' // no space left for the write
  | 'ERR_INVALID_CURSOR' // a list cursor this server did not issue
  // OAuth (RFC 6749 §5.2)
  | 'ERR_INVALID_CLIENT'
  | 'ERR_INVALID_GRANT'
  | 'ERR_INVALID_SCOPE'
  | 'ERR_UNSUPPORTED_GRANT_TYPE'
  | 'ERR_INVALID_OAUTH_REQUEST'
  // resource-server verification
  | 'ERR_TOKEN_INVALID'
  | 'ERR_TOKEN_BINDING_MISMATCH'

export class CAError extends Error {
  readonly code: CAErrorCode
  override readonly name = 'CAError'
  /** Extra members of the problem details (RFC 9457 §3.2), e.g. the OIDC `check` that failed. */
  readonly extensions: Readonly<Record<string, string>> | undefined
  constructor(
    code: CAErrorCode,
    message: string,
    options?: { cause?: unknown; extensions?: Readonly<Record<string, string>> },
  ) {
    super(message, options)
    this.code = code
    this.extensions = options?.extensions
  }
}

/** 429: the peer failed to authenticate too often; it may try again after `retryAfterSeconds`. */
export class RateLimitedError extends CAError {
  constructor(
    readonly retryAfterSeconds: number,
    message = `too many failed authentications from this address; retry after ${retryAfterSeconds} s`,
  ) {
    super('ERR_RATE_LIMITED', message)
  }
}

export function isCAError(e: unknown, code?: CAErrorCode): e is CAError {
  return e instanceof CAError && (code === undefined || e.code === code)
}
