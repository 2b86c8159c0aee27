import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLocalJWKSet, jwtVerify } from 'jose'
import type { JWTPayload } from 'jose'
import { x5tS256 } from '../../src/crypto/thumbprint.js'
import type { TestServer } from './server.js'

const ROOT = join(import.meta.dirname, '../..')

/** One pino line from the agent's stderr (plain lines are kept as `{ msg }`). */
export interface LogLine {
  readonly level?: number
  readonly time?: number
  readonly msg: string
  readonly [key: string]: unknown
}

/** A `certbound agent` child process (the real CLI, run with tsx). */
export class AgentProcess {
  readonly lines: LogLine[] = []
  stderr = ''
  readonly exited: Promise<number | null>
  readonly #child: ChildProcess
  #waiters: (() => void)[] = []

  constructor(args: readonly string[], env: Record<string, string> = {}) {
    this.#child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', 'agent', ...args],
      {
        cwd: ROOT,
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let partial = ''
    this.#child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk
      partial += chunk
      const parts = partial.split('\n')
      partial = parts.pop()!
      for (const line of parts.filter((l) => l.trim() !== '')) {
        try {
          this.lines.push(JSON.parse(line) as LogLine)
        } catch {
          this.lines.push({ msg: line })
        }
      }
      for (const wake of this.#waiters.splice(0)) wake()
    })
    this.#child.stdout!.resume()
    this.exited = new Promise((resolve) => this.#child.on('close', (code) => resolve(code)))
  }

  /** Resolves with the first line (from index `from`) matching, or rejects after `timeoutMs`. */
  async waitFor(match: (l: LogLine) => boolean, timeoutMs = 20_000, from = 0): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const found = this.lines.slice(from).find(match)
      if (found) return found
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for a log line; got:\n${this.stderr.slice(-4000)}`)
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 200)
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.#child.kill(signal)
  }
}

/** Runs the agent to completion (`--once`): exit code and stderr. */
export async function runAgent(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number | null; stderr: string; lines: LogLine[] }> {
  const p = new AgentProcess(args, env)
  const code = await p.exited
  return { code, stderr: p.stderr, lines: p.lines }
}

const tempDirs: string[] = []

/** A temporary directory for one test; removed by {@link removeTempDirs}. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), `certbound-agent-${prefix}-`))
  tempDirs.push(dir)
  return dir
}

/** Removes the directories made by {@link tempDir} (call in `afterAll`). */
export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true })
}

/** The common flags for a workload against `s`. */
export function agentArgs(s: TestServer, spiffeId: string, out: string, server = s.url): string[] {
  const bundle = join(out, '..', `${out.split('/').pop()}-bundle.pem`)
  writeFileSync(bundle, s.bundlePem)
  return ['--server', server, '--ca-bundle', bundle, '--spiffe-id', spiffeId, '--out', out]
}

/**
 * Makes the next run renew at once: a state that does not say when the certificate was received
 * renews it now (src/agent/existing.ts), as after a lost state file.
 */
export function renewalDueNow(out: string): void {
  const file = join(out, '..state', 'agent.json')
  const { certificate: _receipt, ...rest } = JSON.parse(readFileSync(file, 'utf8'))
  writeFileSync(file, JSON.stringify(rest))
}

/** A TCP port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** The files of the generation currently published in `out`, read through the stable links. */
export function readOut(out: string) {
  const read = (f: string) => readFileSync(join(out, f), 'utf8')
  const certPem = read('cert.pem')
  return {
    certPem,
    keyPem: read('key.pem'),
    chainPem: read('chain.pem'),
    bundlePem: read('bundle.pem'),
    token: JSON.parse(read('token.json')) as Record<string, string>,
    cert: new X509Certificate(certPem),
    serial: new X509Certificate(certPem).serialNumber.toLowerCase(),
    thumbprint: x5tS256(new X509Certificate(certPem).raw),
  }
}

/** Verifies an access token against the server's JWKS, as a resource server would. */
export async function verifyAccessToken(s: TestServer, token: string): Promise<JWTPayload> {
  const jwks = await s.call('GET', '/.well-known/jwks.json')
  const { payload } = await jwtVerify(token, createLocalJWKSet(jwks.body), {
    issuer: s.config.tokens.issuer,
    audience: [...s.config.tokens.audience],
    typ: 'at+jwt',
  })
  return payload
}

function consistent(dir: string): boolean {
  const cert = new X509Certificate(readFileSync(join(dir, 'cert.pem')))
  const key = createPrivateKey(readFileSync(join(dir, 'key.pem')))
  const token = JSON.parse(readFileSync(join(dir, 'token.json'), 'utf8')) as Record<string, string>
  return cert.checkPrivateKey(key) && token['x5t#S256'] === x5tS256(cert.raw)
}

/**
 * Reads `cert.pem`, `key.pem` and `token.json` in a loop until stopped, two ways:
 * - through `..data` resolved once (as the certbound client does): must always be consistent;
 * - through the stable paths: three opens, so a set that straddles a switch of `..data` (the
 *   link moved between the reads) is counted apart; a mismatch without a switch is torn.
 */
export function startReader(out: string) {
  const stats = { reads: 0, straddled: 0, torn: [] as string[] }
  const link = () => readlinkSync(join(out, '..data'))
  let running = true
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setImmediate(r))
      let before: string
      try {
        before = link()
      } catch {
        continue // not published yet
      }
      try {
        if (!consistent(join(out, before))) stats.torn.push(`mismatch inside ${before}`)
        const viaStablePaths = consistent(out)
        stats.reads++
        if (!viaStablePaths && link() === before) stats.torn.push('mismatch via the stable paths')
        if (!viaStablePaths && link() !== before) stats.straddled++
      } catch (e) {
        // A generation pruned two switches after `before` was resolved: not torn either.
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' && link() !== before) stats.straddled++
        else stats.torn.push(String(e))
      }
    }
  })()
  return {
    stats,
    async stop() {
      running = false
      await loop
      return stats
    },
  }
}
