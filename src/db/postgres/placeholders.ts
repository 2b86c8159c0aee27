/**
 * The repositories write positional `?` placeholders (SQLite's and the portable form);
 * PostgreSQL numbers them, `$1 … $n`. A `?` inside a string literal, a quoted identifier, a
 * comment or a dollar-quoted body is text and stays as it is. (PostgreSQL's jsonb `?`
 * operators are not portable SQL and are not used by the repositories.)
 */
export function toNumberedPlaceholders(sql: string): string {
  let out = ''
  let n = 0
  let i = 0
  const len = sql.length
  while (i < len) {
    const c = sql[i]!
    const next = sql[i + 1]
    if (c === '?') {
      out += `$${++n}`
      i++
    } else if (c === "'") {
      // E'…' strings take backslash escapes; standard ones only '' (standard_conforming_strings).
      const prev = sql[i - 1]
      const escapes = (prev === 'E' || prev === 'e') && !/[A-Za-z0-9_]/.test(sql[i - 2] ?? '')
      const end = skipQuoted(sql, i, "'", escapes)
      out += sql.slice(i, end)
      i = end
    } else if (c === '"') {
      const end = skipQuoted(sql, i, '"', false)
      out += sql.slice(i, end)
      i = end
    } else if (c === '-' && next === '-') {
      const nl = sql.indexOf('\n', i)
      const end = nl === -1 ? len : nl
      out += sql.slice(i, end)
      i = end
    } else if (c === '/' && next === '*') {
      const end = skipBlockComment(sql, i)
      out += sql.slice(i, end)
      i = end
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i))
      // `$1` or an identifier character before `$` is not a dollar quote.
      if (tag && !/[A-Za-z0-9_]/.test(sql[i - 1] ?? '')) {
        const close = sql.indexOf(tag[0], i + tag[0].length)
        const end = close === -1 ? len : close + tag[0].length
        out += sql.slice(i, end)
        i = end
      } else {
        out += c
        i++
      }
    } else {
      out += c
      i++
    }
  }
  return out
}

/** Index just past the quoted run that opens at `start` (a doubled quote is part of it). */
function skipQuoted(sql: string, start: number, quote: string, backslash: boolean): number {
  let i = start + 1
  while (i < sql.length) {
    const c = sql[i]!
    if (backslash && c === '\\') i += 2
    else if (c === quote && sql[i + 1] === quote) i += 2
    else if (c === quote) return i + 1
    else i++
  }
  return sql.length
}

/** PostgreSQL's block comments nest. */
function skipBlockComment(sql: string, start: number): number {
  let depth = 0
  let i = start
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++
      i += 2
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--
      i += 2
      if (depth === 0) return i
    } else i++
  }
  return sql.length
}

/**
 * A converter that remembers: the repositories' SQL is a fixed set of texts, so each is scanned
 * once. Bounded, in case a caller builds SQL text dynamically (IN lists of varying length).
 */
export function placeholderCache(limit = 2000): (sql: string) => string {
  const cache = new Map<string, string>()
  return (sql) => {
    let converted = cache.get(sql)
    if (converted === undefined) {
      converted = toNumberedPlaceholders(sql)
      if (cache.size >= limit) cache.delete(cache.keys().next().value!)
      cache.set(sql, converted)
    }
    return converted
  }
}
