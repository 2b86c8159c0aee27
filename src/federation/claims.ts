import type { OidcRule } from '../db/types.js'

/*
 * The claims an entry's `oidc` rule pins (CONTRACT "Enrolment by an OIDC identity token"): a
 * claim is named by its top-level name or by a JSON Pointer (RFC 6901) for nested claims, such
 * as Kubernetes' `/kubernetes.io/namespace` (the key itself holds a dot); only string values
 * match; a pattern is an exact value or a glob whose `*` matches any run of characters, `/`
 * included.
 */

export const MAX_RULE_CLAIMS = 32
const MAX_NAME = 256
const MAX_PATTERN = 1024

/** The value a claim name selects in a token's payload, or undefined. */
export function claimValue(payload: Readonly<Record<string, unknown>>, name: string): unknown {
  if (!name.startsWith('/')) return Object.hasOwn(payload, name) ? payload[name] : undefined
  let node: unknown = payload
  // RFC 6901 §4: split on "/", then unescape "~1" before "~0".
  for (const raw of name.slice(1).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~')
    if (typeof node !== 'object' || node === null || Array.isArray(node)) return undefined
    if (!Object.hasOwn(node, key)) return undefined
    node = (node as Record<string, unknown>)[key]
  }
  return node
}

/**
 * Whether `value` matches `pattern`, `*` matching any run of characters. Greedy with one
 * backtrack point, so time stays linear in practice and never exponential (no regular
 * expression is built from admin input).
 */
export function globMatch(pattern: string, value: string): boolean {
  let p = 0
  let v = 0
  let star = -1
  let mark = 0
  while (v < value.length) {
    if (p < pattern.length && pattern[p] === '*') {
      star = p++
      mark = v
    } else if (p < pattern.length && pattern[p] === value[v]) {
      p++
      v++
    } else if (star !== -1) {
      p = star + 1
      v = ++mark
    } else {
      return false
    }
  }
  while (p < pattern.length && pattern[p] === '*') p++
  return p === pattern.length
}

/** The outcome of matching a token's payload against a rule's claims. */
export type ClaimsMatch =
  | { readonly ok: true; readonly matched: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly claim: string; readonly reason: 'missing' | 'mismatch' }

/** Every claim of the rule must be a string that matches its pattern. */
export function matchClaims(
  rule: Readonly<Record<string, string>>,
  payload: Readonly<Record<string, unknown>>,
): ClaimsMatch {
  const matched: Record<string, string> = {}
  for (const [name, pattern] of Object.entries(rule)) {
    const value = claimValue(payload, name)
    if (typeof value !== 'string') return { ok: false, claim: name, reason: 'missing' }
    if (!globMatch(pattern, value)) return { ok: false, claim: name, reason: 'mismatch' }
    matched[name] = value
  }
  return { ok: true, matched }
}

/** Why a rule's claims are unusable, or undefined. A rule must pin something. */
export function claimsProblem(claims: Readonly<Record<string, unknown>>): string | undefined {
  const entries = Object.entries(claims)
  if (entries.length === 0 || entries.length > MAX_RULE_CLAIMS) {
    return `"oidc.claims" must name 1 to ${MAX_RULE_CLAIMS} claims`
  }
  for (const [name, pattern] of entries) {
    const shown = JSON.stringify(name.slice(0, 64))
    if (name === '' || name.length > MAX_NAME) {
      return `"oidc.claims": a claim name must have 1 to ${MAX_NAME} characters`
    }
    if (name.startsWith('/') && /~(?![01])/.test(name)) {
      return `"oidc.claims": ${shown} is not a JSON Pointer (RFC 6901: "~" only as "~0" or "~1")`
    }
    if (typeof pattern !== 'string' || pattern === '' || pattern.length > MAX_PATTERN) {
      return `"oidc.claims.${name.slice(0, 64)}" must be a string of 1 to ${MAX_PATTERN} characters`
    }
  }
  // A rule of wildcards only would admit every token its issuer signs for this audience — on a
  // public CI platform, anyone's.
  if (entries.every(([, pattern]) => /^\**$/.test(pattern as string))) {
    return '"oidc.claims" must pin at least one claim to more than "*"'
  }
  return undefined
}

/** A rule as the admin API shows it. */
export function ruleView(rule: OidcRule): { issuer: string; claims: Record<string, string> } {
  return { issuer: rule.issuer, claims: { ...rule.claims } }
}
