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
    if (form.has(key))
      throw new CAError('ERR_INVALID_OAUTH_REQUEST', `parameter "${key.slice(0, 64)}" is repeated`)
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
