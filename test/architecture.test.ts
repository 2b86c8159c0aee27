import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

/** The dependency rules of STYLE.md, checked on the real import graph of src/. */
const SRC = resolve('src')

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const specs = [
    ...text.matchAll(
      /(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    ),
  ]
  return specs
    .map((m) => m[1] ?? m[2]!)
    .map((s) =>
      s.startsWith('.') ? relative(SRC, resolve(dirname(file), s)).replace(/\.js$/, '.ts') : s,
    )
}

/** Every module reachable from `entry` (relative to src/), following relative imports. */
export function closure(entry: string): Set<string> {
  const seen = new Set<string>()
  const queue = [entry]
  while (queue.length) {
    const f = queue.pop()!
    if (seen.has(f)) continue
    seen.add(f)
    for (const i of imports(join(SRC, f)))
      if (!i.startsWith('.') && i.endsWith('.ts') && !i.includes('node_modules')) queue.push(i)
  }
  return seen
}

const all = files(SRC).map((f) => relative(SRC, f))

describe('architecture', () => {
  it('nothing imports http/ except main.ts and http/ itself', () => {
    const offenders = all.filter(
      (f) =>
        !f.startsWith('http/') &&
        f !== 'main.ts' &&
        imports(join(SRC, f)).some((i) => i.startsWith('http/')),
    )
    expect(offenders).toEqual([])
  })

  it('domain code (ca/, tokens/) never imports hono or the HTTP layer', () => {
    const offenders = all.filter(
      (f) =>
        /^(ca|tokens)\//.test(f) &&
        imports(join(SRC, f)).some(
          (i) => i.startsWith('hono') || i.startsWith('@hono') || i.startsWith('http/'),
        ),
    )
    expect(offenders).toEqual([])
  })

  it('all SQL lives in src/db/', () => {
    const sql = /\.prepare\(|\bdb\.exec\(|\b(SELECT|INSERT INTO|UPDATE)\s+[a-z_]+\s/
    const offenders = all.filter(
      (f) => !f.startsWith('db/') && sql.test(readFileSync(join(SRC, f), 'utf8')),
    )
    expect(offenders).toEqual([])
  })

  it('the verifier, the client helper and the agent never reach the database code', () => {
    for (const entry of [
      'verifier/index.ts',
      'verifier/hono.ts',
      'client/index.ts',
      'agent/command.ts',
    ]) {
      if (!all.includes(entry)) continue
      const reach = [...closure(entry)]
      expect(
        reach.filter((f) => f.startsWith('db/') || f.startsWith('ca/') || f === 'main.ts'),
        entry,
      ).toEqual([])
      const external = reach.flatMap((f) => imports(join(SRC, f))).filter((i) => !i.endsWith('.ts'))
      expect(external, entry).not.toContain('better-sqlite3')
    }
  })
})

describe('architecture checks can fail', () => {
  it('the import closure of main.ts does reach the database code', () => {
    expect([...closure('main.ts')]).toContain('db/store.ts')
  })
})
