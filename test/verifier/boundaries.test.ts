import { readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
const ENTRIES = ['src/verifier/index.ts', 'src/verifier/hono.ts', 'src/client/index.ts']
const ALLOWED_LOCAL = /^src\/(verifier\/|client\/|crypto\/thumbprint\.ts$|errors\.ts$)/
const ALLOWED_PACKAGES = /^(node:|jose$|undici$|hono$|pino$)/

/** Every module reachable from `entry` through static imports and re-exports. */
function graph(entry: string) {
  const local = new Set<string>()
  const packages = new Set<string>()
  const visit = (file: string) => {
    if (local.has(file)) return
    local.add(file)
    const source = readFileSync(join(root, file), 'utf8')
      .replace(/\/\*[\s\S]*?\*\//g, '') // TSDoc examples import the published names
      .replace(/^\s*\/\/.*$/gm, '')
    for (const [, spec] of source.matchAll(/(?:from|import)\s*\(?\s*'([^']+)'/g)) {
      if (!spec!.startsWith('.')) packages.add(spec!)
      else visit(relative(root, resolve(root, dirname(file), spec!.replace(/\.js$/, '.ts'))))
    }
  }
  visit(entry)
  return { local: [...local], packages: [...packages] }
}

describe('resource-server entry points', () => {
  for (const entry of ENTRIES) {
    it(`${entry} never reaches the CA's database or server code`, () => {
      const { local, packages } = graph(entry)
      expect(local.filter((f) => !ALLOWED_LOCAL.test(f))).toEqual([])
      expect(packages.filter((p) => !ALLOWED_PACKAGES.test(p))).toEqual([])
    })
  }
})
