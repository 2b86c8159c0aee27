import { spawn, type ChildProcess } from 'node:child_process'
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join, relative, resolve } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * docs/walkthrough.md and then the README's shell blocks, run as written, in order, in one bash:
 * the walk-through with curl and openssl, the CLI, Tokens, Run a workload, CI runners — twice,
 * each time after the walk-through's own "start from a fresh CA" step, as a user who runs it
 * again would. Only what a user's machine fixes differs: the port (8443 may be taken) and the
 * directory (a temp one, with its own config).
 */
const ROOT = join(import.meta.dirname, '..')
const DOCS = ['docs/walkthrough.md', 'README.md', 'docs/est.md', 'docs/ci-without-secrets.md']

function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

const isQuickstart = (block: string) => /^npm (install|test)/m.test(block)
const isFreshStart = (block: string) => /^npm start$/m.test(block)

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

describe('docs/walkthrough.md and README.md run as written, and again', () => {
  let dir: string
  let port: number
  // docs/ci-without-secrets.md runs a CA and a loopback OIDC issuer of its own on these.
  let ciPorts: { ca: number; issuer: number }
  let metricsPort: number
  let server: ChildProcess | undefined
  let serverLog = ''
  const env = () => ({ ...process.env, CERTBOUND_CONFIG: join(dir, 'ca-config.yaml') })

  /** `npm start`, on this test's port and directory. */
  async function start() {
    serverLog = ''
    server = spawn(process.execPath, ['--import', 'tsx', 'src/cli/index.ts', 'serve'], {
      cwd: ROOT,
      env: env(),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    server.stderr!.on('data', (d: Buffer) => (serverLog += d.toString()))
    server.stdout!.resume()
    const deadline = Date.now() + 30_000
    while (!serverLog.includes('certbound serving') && server.exitCode === null) {
      if (Date.now() > deadline) throw new Error(`serve did not start:\n${serverLog}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  async function stop() {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server!.once('exit', resolve))
      server.kill('SIGTERM')
      await exited
    }
    server = undefined
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certbound-readme-'))
    // Commands name files of the checkout (docs/audit-check.py), as from the repository root.
    symlinkSync(join(ROOT, 'docs'), join(dir, 'docs'))
    port = await freePort()
    ciPorts = { ca: await freePort(), issuer: await freePort() }
    metricsPort = await freePort()
    writeFileSync(
      join(dir, 'ca-config.yaml'),
      `trust_domain: example.org\ndata_dir: ./data\n` +
        `server:\n  listen: 127.0.0.1:${port}\ntokens:\n  issuer: https://localhost:${port}\n` +
        `metrics:\n  listen: 127.0.0.1:${metricsPort}\n`,
    )
  })

  afterAll(async () => {
    await stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** Runs a script in its own process group; what it left running in the background is stopped. */
  function bash(script: string): Promise<{ code: number | null; out: string }> {
    return new Promise((resolve) => {
      const sh = spawn('bash', ['-c', script], { cwd: dir, env: env(), detached: true })
      let out = ''
      sh.stdout.on('data', (d: Buffer) => (out += d.toString()))
      sh.stderr.on('data', (d: Buffer) => (out += d.toString()))
      sh.on('exit', () => {
        try {
          process.kill(-sh.pid!, 'SIGTERM')
        } catch {
          // nothing left
        }
      })
      sh.on('close', (c) => resolve({ code: c, out }))
    })
  }

  it('walk-through, CLI, Tokens, Run a workload and CI runners: every command succeeds, twice', async () => {
    const blocks = DOCS.flatMap((f) => shellBlocks(readFileSync(join(ROOT, f), 'utf8')))
    const fresh = blocks.filter(isFreshStart)
    expect(fresh).toHaveLength(1) // the walk-through says how to start from a fresh data/
    const steps = blocks.filter((b) => !isQuickstart(b) && !isFreshStart(b))
    expect(steps.length).toBeGreaterThanOrEqual(5)
    const loader = import.meta.resolve('tsx') // what `node --import tsx` loads, from any cwd
    const script = [
      'set -euo pipefail',
      // `npm run -s certbound -- …` from the checkout, while the files live in this temp dir.
      `npm() { if [ "$1 $2 $3 $4" = "run -s certbound --" ]; then shift 4; node --import ${loader} ${ROOT}/src/cli/index.ts "$@"; else command npm "$@"; fi; }`,
      // `npx tsx examples/….ts` from the checkout, likewise.
      `npx() { if [ "$1" = tsx ]; then shift; f=$1; shift; node --import ${loader} ${ROOT}/$f "$@"; else command npx "$@"; fi; }`,
      ...steps.map((b) =>
        b
          .replaceAll('localhost:8443', `localhost:${port}`)
          .replaceAll(':8445', `:${ciPorts.ca}`)
          .replaceAll(':9445', `:${ciPorts.issuer}`)
          .replaceAll('127.0.0.1:9464', `127.0.0.1:${metricsPort}`),
      ),
    ].join('\n')
    // The fresh-start block without its `npm start`, which start() stands for.
    const reset = fresh[0]!.replace(/^npm start$/m, '')

    const roots: string[] = []
    for (const round of [1, 2]) {
      await stop()
      const cleared = await bash(`set -euo pipefail\n${reset}`)
      expect(cleared.code, cleared.out).toBe(0)
      await start()
      const { code, out } = await bash(script)
      expect(code, `round ${round}:\n${out}\n--- server ---\n${serverLog}`).toBe(0)
      // What the comments say the commands print.
      expect(out).toContain('cert.pem: OK') // openssl verify -x509_strict
      expect(out).toMatch(/verify OK/) // openssl crl -verify
      // Revocation status and CA rotation: both CRLs, OCSP, the previous issuer's CRL.
      expect(out).toContain('walk/api/cert.pem: OK')
      expect(out).toContain('Response verify OK')
      expect(out).toMatch(/Cert Status: good/)
      expect(out).toContain('"error":"invalid_grant"') // the replayed refresh token
      expect(out).toMatch(/\{"active":true,/) // the fresh token, and the CI runner's
      expect(out.match(/\{"active":false\}/g)?.length).toBeGreaterThanOrEqual(2)
      // The Security section: the scope default, the CA server's marker, the emergency rotation.
      expect(out).toMatch(/anything-at-all$/m)
      expect(out).toContain(
        'TLS Web Server Authentication, 2.25.10365697400001155744715433452568906552',
      )
      expect(out).toMatch(/^\["[A-Za-z0-9_-]{43}"\]$/m) // withdrawn_kids: the old kid
      expect(out).toMatch(/^cache-control: public, max-age=60\s*$/im)
      // Files for nginx: the key for the group; docs/est.md: enrolled, spent, renewed, asked.
      expect(out).toMatch(/^640 \S+ walk\/api\/key\.pem$/m)
      expect(out).toContain('walk/est-cert.pem: OK')
      expect(out).toMatch(/^401$/m)
      expect(out).toContain('walk/est-cert2.pem: OK')
      expect(out).toMatch(/:Extension Request/)
      // CI without secrets: the job's token enrols once, and only where its claims match.
      expect(out.match(/\{"active":true,/g)?.length).toBeGreaterThanOrEqual(3)
      expect(out).toMatch(/^201 enrolled$/m)
      expect(out).toMatch(/^401 replay$/m)
      expect(out).toMatch(/^401 claims$/m)
      // Operating certbound: readiness, metrics, the echoed trace, backup, doctor, key protection.
      expect(out).toContain(
        '{"status":"ready","checks":{"database":"ok","ca_key":"ok","crl":"ok"}}',
      )
      expect(out).toMatch(/^certbound_certificates_issued_total\{operation="enroll"\} [1-9]/m)
      expect(out).toMatch(/^traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-[0-9a-f]{16}-01\s*$/im)
      expect(out).toContain('"not_included":"ca/root-key.pem ca/intermediate-key.pem ca/kek.key')
      expect(out).toMatch(/a server is running on .* stop it first/)
      expect(out).toMatch(/^ok {4}integrity: PRAGMA integrity_check: ok$/m)
      expect(out).not.toMatch(/^fail /m)
      expect(out).toContain('-----BEGIN ENCRYPTED PRIVATE KEY-----')
      expect(out).toContain('key opens')
      // The audit log: verified, and the issuance proof checked by the documented procedure.
      expect(out).toMatch(
        /^certificate\.enroll [0-9a-f]+: leaf \d+ of \d+ in localhost:\d+\/v1\/audit: OK$/m,
      )
      expect(out).toMatch(/^\{"origin":"localhost:\d+\/v1\/audit","verifier_key"/m)
      roots.push(readFileSync(join(dir, 'data/ca/bundle.pem'), 'utf8'))
    }
    // The second round ran against a new CA, not the first one's.
    expect(roots[1]).not.toBe(roots[0])
  }, 600_000) // two rounds of every block, docs/est.md and docs/ci-without-secrets.md included
})

describe('README.md and docs/ link only inside the repository', () => {
  const pages = [
    'README.md',
    'examples/README.md',
    ...readdirSync(join(ROOT, 'docs')).map((f) => `docs/${f}`),
    ...readdirSync(join(ROOT, 'packages')).map((p) => `packages/${p}/README.md`),
  ].filter((f) => f.endsWith('.md'))

  it.each(pages)('%s: every relative link names a file of this checkout', (page) => {
    const text = readFileSync(join(ROOT, page), 'utf8').replace(/```[\s\S]*?```/g, '')
    const targets = [...text.matchAll(/\]\(([^)\s]+)\)/g)]
      .map((m) => m[1]!)
      .filter((t) => !/^[a-z]+:/i.test(t) && !t.startsWith('#'))
    for (const target of targets) {
      const file = resolve(ROOT, dirname(page), target.split('#')[0]!)
      expect(relative(ROOT, file).startsWith('..'), `${page} → ${target}`).toBe(false)
      expect(existsSync(file), `${page} → ${target}`).toBe(true)
    }
  })

  it('the README names no file outside the repository, nor the build requirements loosely', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    expect(readme).not.toMatch(/\.\.\/shared|\]\(\.\.\//)
    for (const need of ['Node.js 20.19', 'make', 'g++', 'Python 3']) expect(readme).toContain(need)
    for (const doc of ['contract', 'lifecycle', 'walkthrough', 'configuration']) {
      expect(readme).toContain(`](docs/${doc}.md)`)
    }
  })
})
