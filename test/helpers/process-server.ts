import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { stringify } from 'yaml'
import { ApiClient, UNLIMITED } from './server.js'

const CLI = join(process.cwd(), 'src/cli/index.ts')

/** A port that was free a moment ago (listen on 0, read it, close). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

/**
 * `certbound serve` as a real process (node:cluster workers included) on a config file of its
 * own; ready when `ready` log lines "certbound serving" were written (one per worker).
 */
export class ProcessServer extends ApiClient {
  private constructor(
    readonly child: ChildProcess,
    url: string,
    dataDir: string,
    readonly configFile: string,
    /** Everything the process (and its workers) wrote to stdout and stderr so far. */
    readonly logs: () => string,
    readonly detached = false,
  ) {
    super(
      url,
      dataDir,
      readFileSync(join(dataDir, 'ca/bundle.pem'), 'utf8'),
      readFileSync(join(dataDir, 'ca/intermediate.pem'), 'utf8'),
    )
  }

  static async start(
    config: Record<string, any> = {},
    opts: {
      dir?: string
      workers?: number
      env?: NodeJS.ProcessEnv
      configName?: string
      /** Its own process group, so that {@link kill} ends the primary and its workers at once. */
      detached?: boolean
    } = {},
  ): Promise<ProcessServer> {
    const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'certbound-proc-'))
    const port = config.server?.listen ? undefined : await freePort()
    const full = {
      trust_domain: 'example.org',
      data_dir: './data',
      log_level: 'info',
      limits: { failed_auth: UNLIMITED },
      ...config,
      server: { listen: `127.0.0.1:${port}`, ...config.server },
    }
    const configFile = join(dir, opts.configName ?? 'ca-config.yaml')
    writeFileSync(configFile, stringify(full))
    return ProcessServer.startFile(configFile, opts)
  }

  /** `certbound serve --config FILE` (data_dir `./data` beside the file). */
  static async startFile(
    configFile: string,
    opts: { workers?: number; env?: NodeJS.ProcessEnv; detached?: boolean } = {},
  ): Promise<ProcessServer> {
    const env = { ...process.env, ...opts.env }
    delete env.CERTBOUND_CONFIG
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', CLI, 'serve', '--config', configFile],
      { env, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached === true },
    )
    let log = ''
    child.stdout!.on('data', (d: Buffer) => (log += d.toString()))
    child.stderr!.on('data', (d: Buffer) => (log += d.toString()))
    const ready = opts.workers ?? 1
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start:\n${log}`)), 45_000)
      const check = () => {
        const serving = [...log.matchAll(/"url":"(https:[^"]+)"[^\n]*certbound serving/g)]
        if (serving.length >= ready) {
          clearTimeout(timer)
          resolve(serving[0]![1]!)
        }
      }
      child.stdout!.on('data', check)
      child.stderr!.on('data', check)
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`serve exited with ${code}:\n${log}`))
      })
    })
    return new ProcessServer(
      child,
      url,
      join(dirname(configFile), 'data'),
      configFile,
      () => log,
      opts.detached === true,
    )
  }

  /** SIGTERM, then waits for the process (and its workers) to exit; returns the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    await this.closeAgents()
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode
    const exited = new Promise<number | null>((r) => this.child.once('exit', (code) => r(code)))
    this.child.kill(signal)
    return exited
  }

  /**
   * SIGKILL, as a crash or a power loss would end it: no drain, no close. A detached server's
   * whole process group (its workers too) dies at the same instant.
   */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise<void>((r) => this.child.once('exit', () => r()))
      try {
        if (this.detached) process.kill(-this.child.pid!, 'SIGKILL')
        else this.child.kill('SIGKILL')
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e
      }
      await exited
    }
    // Requests in flight fail now (their connections are gone); closing waits for nothing.
    await this.closeAgents()
  }

  async close(): Promise<void> {
    await this.stop()
    rmSync(join(this.dataDir, '..'), { recursive: true, force: true })
  }

  /** Starts the same config file again (a restart on the same data_dir and database). */
  static restart(previous: ProcessServer, opts: { workers?: number } = {}): Promise<ProcessServer> {
    return ProcessServer.startFile(previous.configFile, opts)
  }
}
