/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). */
export const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/

/** Splits a space-delimited scope string; undefined when it is not well-formed. */
export function parseScopeString(scope: string): string[] | undefined {
  if (scope.length > 1024) return undefined
  const tokens = scope.split(' ')
  return tokens.every((t) => SCOPE_TOKEN.test(t)) ? tokens : undefined
}
