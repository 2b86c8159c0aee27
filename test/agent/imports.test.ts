import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir } from './helpers.js'

afterAll(() => removeTempDirs())

// A workload must not need native SQLite: the agent never loads the CA's database code.

const ROOT = join(import.meta.dirname, '../..')
const FORBIDDEN = [/^src\/db\//, /^src\/ca\//, /^src\/tokens\//, /^src\/http\//, /^src\/main\.ts$/]
// @certbound/verifier for its mTLS module (checkCaServerIdentity), which loads node: built-ins only.
const ALLOWED_PACKAGES = ['asn1js', 'pkijs', 'undici', 'commander', 'pino', '@certbound/verifier']

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s+(?:type\s+)?(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g

/** Every module reachable from `entry` by value imports (`import type` is erased). */
function importGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>()
  const packages = new Set<string>()
  const todo = [entry]
  while (todo.length > 0) {
    const file = todo.pop()!
    if (files.has(file)) continue
    files.add(file)
    const source = readFileSync(join(ROOT, file), 'utf8')
    for (const m of source.matchAll(IMPORT)) {
      if (/^\s*(?:import|export)\s+type\s/.test(m[0].trimStart())) continue
      const spec = (m[1] ?? m[2])!
      if (spec.startsWith('node:')) continue
      if (!spec.startsWith('.')) {
        packages.add(
          spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!,
        )
        continue
      }
      const target = relative(ROOT, resolve(ROOT, dirname(file), spec.replace(/\.js$/, '.ts')))
      expect(existsSync(join(ROOT, target)), `${file} imports ${spec}`).toBe(true)
      todo.push(target)
    }
  }
  return { files, packages }
}

describe('the agent does not load the CA database code', () => {
  it('statically: src/agent/command.ts reaches no db/ca/tokens/http module and no better-sqlite3', () => {
    const { files, packages } = importGraph('src/agent/command.ts')
    expect(files).toContain('src/x509/csr-builder.ts')
    expect([...files].filter((f) => FORBIDDEN.some((re) => re.test(f)))).toEqual([])
    expect([...packages].filter((p) => !ALLOWED_PACKAGES.includes(p))).toEqual([])
  })

  it('at run time: `certbound agent` loads no better-sqlite3 (checked with a positive control)', () => {
    const dir = tempDir('imports')
    const report = join(dir, 'report.cjs')
    writeFileSync(
      report,
      `process.on('exit', () => {
        const loaded = Object.keys(require('node:module')._cache).filter((k) => k.includes('better-sqlite3'))
        process.stderr.write('\\nSQLITE_MODULES=' + loaded.length + '\\n')
      })\n`,
    )
    const run = (args: string[]) => {
      const r = spawnSync(process.execPath, ['--require', report, '--import', 'tsx', ...args], {
        cwd: ROOT,
        encoding: 'utf8',
      })
      return Number(/SQLITE_MODULES=(\d+)/.exec(r.stderr)?.[1] ?? NaN)
    }
    // The whole CLI entry point with the agent command; a usage error ends it after loading.
    expect(run(['src/cli/index.ts', 'agent', '--once'])).toBe(0)
    const control = join(dir, 'control.mts')
    writeFileSync(control, `import ${JSON.stringify(join(ROOT, 'src/db/store.ts'))}\n`)
    expect(run([control])).toBeGreaterThan(0)
  })
})
