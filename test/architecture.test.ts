import { readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { describe, expect, it } from 'vitest'

/**
 * The dependency rules of STYLE.md, checked on the real import graph of src/ and packages/.
 * Paths are relative to the repository root.
 */
const ROOT = resolve(import.meta.dirname, '..')
const PACKAGES = ['verifier', 'client'] as const

function files(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const p = join(dir, name)
    return statSync(join(ROOT, p)).isDirectory() ? files(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** Import specifiers of a file; relative ones resolved to repository paths (`src/x.ts`). */
function imports(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8')
    .replace(/\/\*[\s\S]*?\*\//g, '') // TSDoc examples import the published names
    .replace(/^\s*\/\/.*$/gm, '')
  const specs = [
    ...text.matchAll(
      /(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    ),
  ]
  return specs
    .map((m) => m[1] ?? m[2]!)
    .map((s) =>
      s.startsWith('.')
        ? relative(ROOT, resolve(ROOT, dirname(file), s)).replace(/\.js$/, '.ts')
        : s,
    )
}

const isLocal = (spec: string) => spec.endsWith('.ts') && !spec.startsWith('node:')
const packageName = (spec: string) =>
  spec
    .split('/')
    .slice(0, spec.startsWith('@') ? 2 : 1)
    .join('/')

/** Every module reachable from `entry` (a repository path), following relative imports. */
export function closure(entry: string): Set<string> {
  const seen = new Set<string>()
  const queue = [entry]
  while (queue.length) {
    const f = queue.pop()!
    if (seen.has(f)) continue
    seen.add(f)
    for (const i of imports(f)) if (isLocal(i)) queue.push(i)
  }
  return seen
}

const src = files('src')

describe('architecture', () => {
  it('nothing imports src/http/ except src/main.ts and src/http/ itself', () => {
    const offenders = [...src, ...PACKAGES.flatMap((p) => files(`packages/${p}/src`))].filter(
      (f) =>
        !f.startsWith('src/http/') &&
        f !== 'src/main.ts' &&
        imports(f).some((i) => i.startsWith('src/http/')),
    )
    expect(offenders).toEqual([])
  })

  it('domain code (ca/, tokens/) never imports hono or the HTTP layer', () => {
    const offenders = src.filter(
      (f) =>
        /^src\/(ca|tokens)\//.test(f) &&
        imports(f).some(
          (i) => i.startsWith('hono') || i.startsWith('@hono') || i.startsWith('src/http/'),
        ),
    )
    expect(offenders).toEqual([])
  })

  it('all SQL lives in src/db/', () => {
    const sql = /\.prepare\(|\bdb\.exec\(|\b(SELECT|INSERT INTO|UPDATE)\s+[a-z_]+\s/
    const everything = [...src, ...PACKAGES.flatMap((p) => files(`packages/${p}/src`))]
    const offenders = everything.filter(
      (f) => !f.startsWith('src/db/') && sql.test(readFileSync(join(ROOT, f), 'utf8')),
    )
    expect(offenders).toEqual([])
  })

  for (const name of PACKAGES) {
    it(`packages/${name} imports nothing outside itself but node: and its declared dependencies`, () => {
      const manifest = JSON.parse(
        readFileSync(join(ROOT, `packages/${name}/package.json`), 'utf8'),
      ) as { dependencies?: object; peerDependencies?: object }
      const runtime = Object.keys(manifest.dependencies ?? {})
      // The contract: jose and undici at most, never better-sqlite3, pg, pkijs, pino.
      expect(
        runtime.filter((d) => d !== 'jose' && d !== 'undici'),
        name,
      ).toEqual([])
      const allowed = new Set([...runtime, ...Object.keys(manifest.peerDependencies ?? {})])
      const own = files(`packages/${name}/src`)
      const specs = own.flatMap((f) => imports(f).map((i) => ({ f, i })))
      expect(
        specs.filter(({ i }) => isLocal(i) && !i.startsWith(`packages/${name}/src/`)),
        'relative imports leave the package',
      ).toEqual([])
      expect(
        specs.filter(
          ({ i }) => !isLocal(i) && !i.startsWith('node:') && !allowed.has(packageName(i)),
        ),
        'undeclared packages',
      ).toEqual([])
    })
  }

  it('hono, an optional peer, is only named by the ./hono entry and only for types', () => {
    const users = files('packages/verifier/src').filter((f) =>
      imports(f).some((i) => packageName(i) === 'hono'),
    )
    expect(users).toEqual(['packages/verifier/src/hono.ts'])
    const text = readFileSync(join(ROOT, 'packages/verifier/src/hono.ts'), 'utf8')
    expect(text).not.toMatch(/^import (?!type )[^\n]*from 'hono/m)
  })

  it('the shared mTLS module is neutral: node: built-ins, undici (the CA-server connector) and the error vocabulary only', () => {
    const mtls = files('packages/verifier/src/mtls')
    const outside = mtls
      .flatMap((f) => imports(f))
      .filter((i) =>
        isLocal(i)
          ? !i.startsWith('packages/verifier/src/mtls/') && i !== 'packages/verifier/src/errors.ts'
          : !i.startsWith('node:') && i !== 'undici',
      )
    expect(outside).toEqual([])
  })

  it('the shared JWS module is neutral: node:crypto and jose types only', () => {
    const outside = imports('packages/verifier/src/jws.ts').filter(
      (i) => i !== 'node:crypto' && i !== 'jose',
    )
    expect(outside).toEqual([])
  })

  it('src/ uses the packages only through @certbound/verifier/mtls and /jws', () => {
    const uses = src.flatMap((f) =>
      imports(f)
        .filter((i) => i.startsWith('@certbound/'))
        .map((i) => `${f}: ${i}`),
    )
    const shared = /: @certbound\/verifier\/(mtls|jws)$/
    expect(uses.filter((u) => !shared.test(u))).toEqual([])
    expect(uses.length).toBeGreaterThan(0)
  })

  it('the agent never reaches the database or the CA', () => {
    const reach = [...closure('src/agent/command.ts')]
    expect(
      reach.filter(
        (f) => f.startsWith('src/db/') || f.startsWith('src/ca/') || f === 'src/main.ts',
      ),
    ).toEqual([])
    expect(reach.flatMap((f) => imports(f)).filter((i) => !isLocal(i))).not.toContain(
      'better-sqlite3',
    )
  })
})

describe('architecture checks can fail', () => {
  it('the import closure of main.ts does reach the database code', () => {
    expect([...closure('src/main.ts')]).toContain('src/db/store.ts')
  })

  it('an import that leaves a package is seen as one', () => {
    // src/http/mtls.ts stands in for a package file that imports the CA's code.
    expect(imports('src/http/mtls.ts')).toContain('src/ca/client-identity.ts')
    expect(imports('src/http/mtls.ts')).toContain('@certbound/verifier/mtls')
  })
})
