import type { Context } from 'hono'
import { CAError } from '../errors.js'
import { requestBody } from './body-limit.js'
import type { AppEnv } from './mtls.js'

/** UTF-8 as `Request.text()` decodes it: a leading BOM dropped, bad bytes replaced. */
const UTF8 = new TextDecoder()

/** The request body as text (UTF-8). */
export async function requestText(c: Context<AppEnv>): Promise<string> {
  return UTF8.decode(await requestBody(c))
}

/**
 * `application/json` or a `+json` type (RFC 6839), in UTF-8 (RFC 8259 §8.1). Anything else is
 * refused before the body is parsed: a JSON text sent as text/plain or as a form is what a page
 * in a browser can send cross-origin without asking first (no CORS preflight).
 */
function checkJsonType(header: string | undefined): void {
  const [type = '', ...params] = (header ?? '').toLowerCase().split(';')
  const media = type.trim()
  const charset = params.map((p) => p.trim()).find((p) => p.startsWith('charset='))
  if (!(media === 'application/json' || /^application\/[a-z0-9.-]+\+json$/.test(media))) {
    throw new CAError(
      'ERR_UNSUPPORTED_MEDIA_TYPE',
      'the request body must be JSON, sent with Content-Type: application/json',
    )
  }
  if (charset !== undefined && !/^charset="?utf-8"?$/.test(charset)) {
    throw new CAError('ERR_UNSUPPORTED_MEDIA_TYPE', 'a JSON request body must be UTF-8')
  }
}

/** A JSON object body; anything else is a 4xx with a message saying what was wrong. */
export async function readJsonObject(
  c: Context<AppEnv>,
  { optional = false } = {},
): Promise<Record<string, unknown>> {
  const text = await requestText(c)
  if (text.trim() === '' && optional) return {}
  if (text !== '') checkJsonType(c.req.header('content-type'))
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    throw new CAError('ERR_BAD_REQUEST', 'the request body is not valid JSON')
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CAError('ERR_BAD_REQUEST', 'the request body must be a JSON object')
  }
  return value as Record<string, unknown>
}

// RFC 6749 §4.4, §6; RFC 7662 §2.1; RFC 7009 §2.1.
const KNOWN_PARAMETERS = new Set([
  'grant_type',
  'scope',
  'refresh_token',
  'client_id',
  'client_secret',
  'token',
  'token_type_hint',
])

/**
 * An application/x-www-form-urlencoded body (RFC 6749 §3.2: parameters sent without a
 * value are treated as omitted; a parameter must not be sent more than once).
 */
export async function readOAuthForm(c: Context<AppEnv>): Promise<Map<string, string>> {
  const type = c.req.header('content-type') ?? ''
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new CAError(
      'ERR_INVALID_OAUTH_REQUEST',
      'the body must be application/x-www-form-urlencoded',
    )
  }
  const params = new URLSearchParams(await requestText(c))
  const form = new Map<string, string>()
  for (const [key, value] of params) {
    // Named only if it is a parameter we know: a body that is a bare secret parses as a key.
    if (form.has(key))
      throw new CAError(
        'ERR_INVALID_OAUTH_REQUEST',
        `${KNOWN_PARAMETERS.has(key) ? `parameter ${key}` : 'a parameter'} is repeated`,
      )
    if (value !== '') form.set(key, value)
  }
  return form
}

export function limitParam(c: Context): number {
  const raw = c.req.query('limit')
  if (raw === undefined) return 100
  // Decimal digits only: Number() would also take "0x10", "1e3" and " 7 ".
  const n = /^[0-9]{1,4}$/.test(raw) ? Number(raw) : NaN
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new CAError('ERR_BAD_REQUEST', '"limit" must be an integer from 1 to 1000')
  return n
}
