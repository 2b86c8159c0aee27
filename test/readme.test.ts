import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * The README's shell blocks, run as written, in order, in one bash: the walk-through with curl
 * and openssl, the CLI, Tokens, Run a workload, CI runners. Only what a user's machine fixes
 * differs: the port (8443 may be taken) and the directory (a temp one, with its own config).
 */
const ROOT = join(import.meta.dirname, '..')

function shellBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)]
    .map((m) => m[1]!)
    .filter((block) => !/^npm (install|test)/m.test(block)) // the Quickstart
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

describe('README.md runs as written', () => {
  let dir: string
  let port: number
  let server: ChildProcess
  let serverLog = ''
  const env = () => ({ ...process.env, CERTBOUND_CONFIG: join(dir, 'ca-config.yaml') })

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'certbound-readme-'))
    port = await freePort()
    writeFileSync(
      join(dir, 'ca-config.yaml'),
      `trust_domain: example.org\ndata_dir: ./data\n` +
        `server:\n  listen: 127.0.0.1:${port}\ntokens:\n  issuer: https://localhost:${port}\n`,
    )
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
  }, 40_000)

  afterAll(async () => {
    if (server && server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve))
      server.kill('SIGTERM')
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  })

  it('walk-through, CLI, Tokens, Run a workload and CI runners: every command succeeds', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
    const blocks = shellBlocks(readme)
    expect(blocks.length).toBeGreaterThanOrEqual(5)
    const loader = import.meta.resolve('tsx') // what `node --import tsx` loads, from any cwd
    const script = [
      'set -euo pipefail',
      // `npm run -s certbound -- …` from the checkout, while the files live in this temp dir.
      `npm() { if [ "$1 $2 $3 $4" = "run -s certbound --" ]; then shift 4; node --import ${loader} ${ROOT}/src/cli/index.ts "$@"; else command npm "$@"; fi; }`,
      ...blocks.map((b) => b.replaceAll('localhost:8443', `localhost:${port}`)),
    ].join('\n')
    const { code, out } = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const sh = spawn('bash', ['-c', script], { cwd: dir, env: env() })
      let out = ''
      sh.stdout.on('data', (d: Buffer) => (out += d.toString()))
      sh.stderr.on('data', (d: Buffer) => (out += d.toString()))
      sh.on('close', (c) => resolve({ code: c, out }))
    })
    expect(code, `${out}\n--- server ---\n${serverLog}`).toBe(0)
    // What the README's comments say the commands print.
    expect(out).toContain('cert.pem: OK') // openssl verify -x509_strict
    expect(out).toMatch(/verify OK/) // openssl crl -verify
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
  }, 180_000)
})
