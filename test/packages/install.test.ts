import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestPki } from '../verifier/helpers/pki.js'
import type { TestPki } from '../verifier/helpers/pki.js'

/**
 * What a resource server or a workload gets from `npm install @certbound/verifier` or
 * `@certbound/client`: each package packed as it would be published, installed from its
 * tarball into an empty project, imported as ESM by plain node (no tsx, no source condition),
 * and used once. Nothing of the CA comes along.
 */
const ROOT = join(import.meta.dirname, '../..')
const NEVER = ['better-sqlite3', 'pg', 'pkijs', 'pino']

// The processes below see the packages as an outsider does: not through the workspace's
// source condition, which points at files a tarball does not carry.
const env = { ...process.env, NODE_OPTIONS: '' }
const run = (cmd: string, args: string[], cwd: string) =>
  execFileSync(cmd, args, { cwd, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })

interface Packed {
  filename: string
  files: { path: string }[]
}

/** Every package directory name under node_modules, nested and scoped ones included. */
function installed(dir: string): string[] {
  const modules = join(dir, 'node_modules')
  if (!existsSync(modules)) return []
  return readdirSync(modules).flatMap((name) => {
    if (name.startsWith('.')) return []
    const names = name.startsWith('@')
      ? readdirSync(join(modules, name)).map((n) => `${name}/${n}`)
      : [name]
    return names.flatMap((n) => [n, ...installed(join(modules, n))])
  })
}

let work: string
let pki: TestPki

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'certbound-pack-'))
  pki = createTestPki()
})
afterAll(() => {
  rmSync(work, { recursive: true, force: true })
  pki?.cleanup()
})

/** Packs packages/<name> (prepack builds it) and installs the tarball into a new project. */
function packAndInstall(name: string): { project: string; packed: Packed } {
  const [packed] = JSON.parse(
    run('npm', ['pack', '--json', '--pack-destination', work], join(ROOT, 'packages', name)),
  ) as Packed[]
  const project = join(work, `uses-${name}`)
  mkdirSync(project)
  writeFileSync(
    join(project, 'package.json'),
    JSON.stringify({ name: `uses-${name}`, private: true, type: 'module' }),
  )
  run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', join(work, packed!.filename)],
    project,
  )
  return { project, packed: packed! }
}

function node(project: string, script: string): unknown {
  return JSON.parse(run(process.execPath, ['--input-type=module', '-e', script], project))
}

describe('npm pack + install of each package, on its own', () => {
  it('@certbound/verifier: imports (., ./hono, ./mtls), verifies, and brings jose and undici only', () => {
    const { project, packed } = packAndInstall('verifier')
    const paths = packed.files.map((f) => f.path)
    expect(paths).toEqual(expect.arrayContaining(['dist/index.js', 'dist/hono.js', 'README.md']))
    expect(paths.filter((p) => p.startsWith('src/') || p.endsWith('.test.ts'))).toEqual([])

    writeFileSync(join(project, 'bundle.pem'), pki.rootPem)
    const result = node(
      project,
      `import { readFileSync } from 'node:fs'
      import { createVerifier, VerifyError } from '@certbound/verifier'
      import { certboundAuth } from '@certbound/verifier/hono'
      import { createProxyMatcher } from '@certbound/verifier/mtls'
      const issuer = 'https://ca.example.org:8443'
      const verifier = createVerifier({ issuer, audience: issuer, trustAnchors: readFileSync('bundle.pem', 'utf8') })
      const err = await verifier.verify('a.b.c', undefined).catch((e) => e)
      const middleware = certboundAuth({ verifier, logger: console })
      await verifier.close()
      console.log(JSON.stringify({
        refused: err instanceof VerifyError, code: err.code,
        middleware: typeof middleware, proxy: createProxyMatcher(['10.0.0.0/8'])('10.1.2.3'),
      }))`,
    )
    expect(result).toEqual({
      refused: true,
      code: 'ERR_CLIENT_CERT_REQUIRED',
      middleware: 'function',
      proxy: true,
    })
    const tree = installed(project)
    expect(tree).toContain('@certbound/verifier')
    expect(tree.filter((p) => NEVER.includes(p))).toEqual([])
    // hono is an optional peer: ./hono loads without it.
    expect(tree.filter((p) => p !== '@certbound/verifier').sort()).toEqual(['jose', 'undici'])
  })

  it('@certbound/client: imports, refuses a directory without a generation, brings undici only', () => {
    const { project } = packAndInstall('client')
    const result = node(
      project,
      `import { createBoundFetch, ClientError } from '@certbound/client'
      const err = await createBoundFetch({ dir: 'no-such-agent-dir' }).catch((e) => e)
      console.log(JSON.stringify({ refused: err instanceof ClientError, code: err.code }))`,
    )
    expect(result).toEqual({ refused: true, code: 'ERR_GENERATION_MISSING' })
    const tree = installed(project)
    expect(tree.filter((p) => NEVER.includes(p))).toEqual([])
    expect(tree.filter((p) => p !== '@certbound/client')).toEqual(['undici'])
  })
})
