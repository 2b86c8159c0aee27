import type { Context } from 'hono'
import { CAError } from '../errors.js'

/** A JSON object body; anything else is a 400 with a message saying what was wrong. */
export async function readJsonObject(
  c: Context,
  { optional = false } = {},
): Promise<Record<string, unknown>> {
  const text = await c.req.text()
  if (text.trim() === '' && optional) return {}
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
export async function readOAuthForm(c: Context): Promise<Map<string, string>> {
  const type = c.req.header('content-type') ?? ''
  if (!type.toLowerCase().startsWith('application/x-www-form-urlencoded')) {
    throw new CAError(
      'ERR_INVALID_OAUTH_REQUEST',
      'the body must be application/x-www-form-urlencoded',
    )
  }
  const params = new URLSearchParams(await c.req.text())
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
  const n = Number(raw)
  if (!Number.isInteger(n) || n < 1 || n > 1000)
    throw new CAError('ERR_BAD_REQUEST', '"limit" must be an integer from 1 to 1000')
  return n
}
