import type { Context } from 'hono'
import type { ContentfulStatusCode } from 'hono/utils/http-status'
import { CAError, RateLimitedError, type CAErrorCode } from '../errors.js'

/** The one place a domain error code becomes an HTTP status (and a title for problem+json). */
const STATUS: Record<CAErrorCode, [ContentfulStatusCode, string]> = {
  ERR_BAD_REQUEST: [400, 'Bad request'],
  ERR_PEM_INVALID: [400, 'Invalid PEM'],
  ERR_CSR_INVALID: [400, 'Invalid certificate signing request'],
  ERR_POLICY_DENIED: [400, 'Refused by policy'],
  ERR_KEY_UNSUPPORTED: [400, 'Key type not allowed'],
  ERR_TTL_TOO_LONG: [400, 'Lifetime over the maximum'],
  ERR_NOT_FOUND: [404, 'Not found'],
  ERR_METHOD_NOT_ALLOWED: [405, 'Method not allowed'],
  ERR_CONFLICT: [409, 'Conflict'],
  ERR_JOIN_TOKEN_INVALID: [401, 'Invalid join token'],
  ERR_OIDC_TOKEN_INVALID: [401, 'Invalid OIDC identity token'],
  ERR_OIDC_ISSUER_UNAVAILABLE: [503, 'OIDC issuer unavailable'],
  ERR_CLIENT_CERT_REQUIRED: [401, 'Client certificate required'],
  ERR_FORBIDDEN: [403, 'Forbidden'],
  ERR_ENTRY_DISABLED: [403, 'Entry disabled'],
  ERR_CERT_REVOKED: [401, 'Certificate revoked'],
  ERR_CERT_EXPIRED: [401, 'Certificate expired'],
  ERR_CERT_SUPERSEDED: [401, 'Certificate superseded'],
  ERR_CLONE_SUSPECTED: [403, 'Suspected clone'],
  ERR_LINEAGE_TOO_OLD: [403, 'Lineage too old'],
  ERR_PROOF_INVALID: [401, 'Invalid proof of possession'],
  ERR_PAYLOAD_TOO_LARGE: [413, 'Request body too large'],
  ERR_UNSUPPORTED_MEDIA_TYPE: [415, 'Unsupported media type'],
  ERR_RATE_LIMITED: [429, 'Too many failed authentications'],
  ERR_CA_EXISTS: [409, 'CA exists'],
  ERR_CONFIG_INVALID: [500, 'Configuration invalid'],
  ERR_DB_TOO_NEW: [500, 'Database too new'],
  ERR_AUDIT_LOG_INVALID: [500, 'Audit log invalid'],
  ERR_STORAGE_CONFLICT: [409, 'Conflict'],
  ERR_STORAGE_UNAVAILABLE: [503, 'Database unavailable'],
  ERR_STORAGE_FULL: [503, 'Database full'],
  ERR_INVALID_CURSOR: [400, 'Bad request'],
  ERR_INVALID_CLIENT: [401, 'invalid_client'],
  ERR_INVALID_GRANT: [400, 'invalid_grant'],
  ERR_INVALID_SCOPE: [400, 'invalid_scope'],
  ERR_UNSUPPORTED_GRANT_TYPE: [400, 'unsupported_grant_type'],
  ERR_INVALID_OAUTH_REQUEST: [400, 'invalid_request'],
  ERR_TOKEN_INVALID: [401, 'invalid_token'],
  ERR_TOKEN_BINDING_MISMATCH: [401, 'invalid_token'],
}

/*
 * What our secrets look like: join and refresh tokens (a 16-character id and 43 characters of
 * secret, base64url: src/crypto/secret-token.ts), JWTs, PEM private keys. A message that echoes
 * what a client sent (an invalid SPIFFE ID, an unknown route) never carries one of them back out
 * in an error body, whatever field the secret was pasted into (LIFECYCLE invariant 8).
 */
const SECRET_SHAPES = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
  /eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g,
  /(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{59}(?![A-Za-z0-9_-])/g,
]

export function withoutSecrets(message: string): string {
  return SECRET_SHAPES.reduce((m, re) => m.replace(re, '[redacted]'), message)
}

/** Problem `code`s the contract fixes in its own words; every other code is the ERR_* name. */
const PROBLEM_CODE: Partial<Record<CAErrorCode, string>> = {
  ERR_CLONE_SUSPECTED: 'clone_suspected',
}

/** RFC 9457 problem details for the non-OAuth API. */
export function problemResponse(c: Context, e: CAError): Response {
  const [status, title] = STATUS[e.code]
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    ...extraHeaders(e),
  }
  // RFC 9110 §15.5.2 / RFC 6750 §3: a 401 names its scheme (the join token is a bearer token),
  // with an error code only when credentials were sent.
  if (
    e.code === 'ERR_JOIN_TOKEN_INVALID' ||
    e.code === 'ERR_PROOF_INVALID' ||
    e.code === 'ERR_OIDC_TOKEN_INVALID'
  ) {
    headers['www-authenticate'] =
      c.req.header('authorization') === undefined
        ? 'Bearer realm="certbound"'
        : 'Bearer realm="certbound", error="invalid_token"'
  }
  return c.body(
    JSON.stringify({
      ...e.extensions,
      type: 'about:blank',
      title,
      status,
      detail: withoutSecrets(e.message),
      code: PROBLEM_CODE[e.code] ?? e.code,
    }),
    status,
    headers,
  )
}

/** RFC 6749 §5.2 error codes for the OAuth endpoints. */
const OAUTH: Partial<Record<CAErrorCode, [ContentfulStatusCode, string]>> = {
  ERR_INVALID_CLIENT: [401, 'invalid_client'],
  ERR_CLIENT_CERT_REQUIRED: [401, 'invalid_client'],
  ERR_ENTRY_DISABLED: [401, 'invalid_client'],
  ERR_CERT_SUPERSEDED: [401, 'invalid_client'],
  ERR_CLONE_SUSPECTED: [401, 'invalid_client'],
  ERR_INVALID_GRANT: [400, 'invalid_grant'],
  ERR_INVALID_SCOPE: [400, 'invalid_scope'],
  ERR_UNSUPPORTED_GRANT_TYPE: [400, 'unsupported_grant_type'],
  ERR_INVALID_OAUTH_REQUEST: [400, 'invalid_request'],
  ERR_BAD_REQUEST: [400, 'invalid_request'],
  ERR_METHOD_NOT_ALLOWED: [405, 'invalid_request'],
  ERR_PAYLOAD_TOO_LARGE: [400, 'invalid_request'],
  // A valid client this endpoint is not for (tokens.introspection_clients).
  ERR_FORBIDDEN: [403, 'unauthorized_client'],
  // RFC 6749 §5.2 has no code for "try later"; RFC 6749 §4.1.2.1's temporarily_unavailable fits.
  ERR_STORAGE_UNAVAILABLE: [503, 'temporarily_unavailable'],
  ERR_STORAGE_FULL: [503, 'temporarily_unavailable'],
  // Over limits.failed_auth: the client's authentication failed too often (RFC 6585 §4).
  ERR_RATE_LIMITED: [429, 'invalid_client'],
}

/** Seconds a client should wait before retrying a request the database could not take. */
export const RETRY_AFTER_SECONDS = 1

/** Headers an error response carries beyond its body (RFC 9110 §10.2.3 Retry-After). */
function extraHeaders(e: CAError): Record<string, string> {
  if (e instanceof RateLimitedError) return { 'retry-after': String(e.retryAfterSeconds) }
  return e.code === 'ERR_STORAGE_UNAVAILABLE' ||
    e.code === 'ERR_STORAGE_FULL' ||
    e.code === 'ERR_OIDC_ISSUER_UNAVAILABLE'
    ? { 'retry-after': String(RETRY_AFTER_SECONDS) }
    : {}
}

/**
 * RFC 6749 §5.2: error_description is limited to %x20-21 / %x23-5B / %x5D-7E, so no
 * double quote, backslash, control or non-ASCII character (messages may echo input).
 */
function oauthDescription(message: string): string {
  return message
    .replaceAll('"', "'")
    .replaceAll('\\', '/')
    .replaceAll('§', 'section ')
    .replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '?')
}

export function oauthErrorResponse(c: Context, e: CAError): Response {
  const [status, error] = OAUTH[e.code] ?? [400, 'invalid_request']
  return c.json({ error, error_description: oauthDescription(withoutSecrets(e.message)) }, status, {
    'cache-control': 'no-store',
    pragma: 'no-cache',
    ...extraHeaders(e),
  })
}

export function isOAuthPath(path: string): boolean {
  return path.startsWith('/oauth/')
}
