import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { inspectDatabase, type DbInspector } from '../helpers/db-inspect.js'
import { createTestDatabase, testPostgres } from '../helpers/postgres.js'
import { freePort, ProcessServer } from '../helpers/process-server.js'
import { sleep } from '../helpers/server.js'
import { databaseInvariants } from './invariants.js'
import { Ledger } from './ledger.js'
import { LoadActors, type Target } from './load.js'

/*
 * Issue 14, crash safety: load against a real `certbound serve`, SIGKILLed at random moments and
 * restarted on the same data_dir (and database). After every restart the database must satisfy
 * its invariants (integrity, audit one to one, no half-rotated family); at the end it must hold
 * everything any client was told, and nothing no client could have been told.
 */

const CLI = join(process.cwd(), 'src/cli/index.ts')
const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** Starts `serve` on the same config and SIGKILLs it `afterMs` later, mid-start (or just after). */
async function killDuringStart(configFile: string, afterMs: number): Promise<void> {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'serve', '--config', configFile], {
    stdio: 'ignore',
    detached: true,
  })
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  await sleep(afterMs)
  try {
    process.kill(-child.pid!, 'SIGKILL')
  } catch {
    // already gone
  }
  await exited
}

/** A server that crashes on request; clients wait through its restarts. */
class CrashingServer implements Target {
  #server!: ProcessServer
  #ready!: Promise<ProcessServer>
  readonly problems: string[] = []
  restarts = 0

  constructor(
    private readonly start: () => Promise<ProcessServer>,
    private readonly db: () => DbInspector,
  ) {}

  async boot(): Promise<void> {
    this.#server = await this.start()
    this.#ready = Promise.resolve(this.#server)
  }

  get(): Promise<ProcessServer> {
    return this.#ready
  }

  get current(): ProcessServer {
    return this.#server
  }

  /** SIGKILL, maybe a crash of the restart itself, a restart, and the invariants, before load resumes. */
  async crash(opts: { duringStart: boolean }): Promise<void> {
    let release!: (s: ProcessServer) => void
    this.#ready = new Promise((r) => (release = r))
    await this.#server.kill()
    if (opts.duringStart) await killDuringStart(this.#server.configFile, 200 + Math.random() * 1500)
    this.#server = await this.start()
    this.restarts++
    const found = await databaseInvariants(this.db())
    this.problems.push(...found.map((p) => `after restart ${this.restarts}: ${p}`))
    release(this.#server)
  }
}

interface CrashRun {
  readonly kills: number
  readonly actors: number
  readonly workers?: number
  readonly databaseUrl?: string
}

/** The whole scenario: load, kills at random moments, final checks. */
async function crashRun(run: CrashRun): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-crash-'))
  dirs.push(dir)
  // One port for every restart: the issuer (and so every token's `iss`) names it.
  const listen = `127.0.0.1:${await freePort()}`
  const config = {
    server: { listen, ...(run.workers ? { workers: run.workers } : {}) },
    ...(run.databaseUrl ? { database: { url: run.databaseUrl } } : {}),
  }
  const inspector = inspectDatabase({ dataDir: join(dir, 'data'), url: run.databaseUrl })
  const server = new CrashingServer(
    () => ProcessServer.start(config, { dir, workers: run.workers, detached: true }),
    () => inspector,
  )
  const ledger = new Ledger()
  await server.boot()
  const load = new LoadActors(server, ledger, `crash-${run.workers ?? 1}`)
  try {
    load.start(run.actors)
    for (let k = 0; k < run.kills; k++) {
      // A random moment of the load: anything from a quiet loop to a burst of commits.
      await sleep(250 + Math.random() * 1000)
      await server.crash({ duringStart: k % 4 === 3 })
    }
    // The recovered server serves every workload again before the load stops.
    await sleep(1500)
    await load.stop()
    expect(ledger.failures).toEqual([])
    expect(server.problems).toEqual([])
    expect(await ledger.problems(inspector)).toEqual([])
    expect(await server.current.stop()).toBe(0)
    expect(await databaseInvariants(inspector)).toEqual([])
    // The run did what it claims: real load, real losses.
    expect(server.restarts).toBe(run.kills)
    expect(ledger.certs.size).toBeGreaterThan(run.kills)
    expect(ledger.counts.ok).toBeGreaterThan(run.kills * 10)
    console.info(
      `crash run (${run.workers ?? 1} process(es)${run.databaseUrl ? ', PostgreSQL' : ''}): ${run.kills} kills, ` +
        `${ledger.counts.ok} answered, ${ledger.counts.unknown} lost, ${ledger.certs.size} certificates, ` +
        `${ledger.families.length} families`,
    )
  } finally {
    await load.stop()
    await server.current.kill()
    await inspector.close()
  }
}

describe('crash safety: SIGKILL under load, restart on the same data_dir', () => {
  it('one process on SQLite, 10 kills', { timeout: 150_000 }, () =>
    crashRun({ kills: 10, actors: 6 }),
  )

  it('two workers on SQLite, the whole process group killed 3 times', { timeout: 90_000 }, () =>
    crashRun({ kills: 3, actors: 6, workers: 2 }),
  )
})

const postgres = await testPostgres()
describe.skipIf(!postgres.cluster)(`crash safety on PostgreSQL${postgres.skipped}`, () => {
  it('one process, 4 kills, the same database each restart', { timeout: 90_000 }, async () => {
    const db = await createTestDatabase(postgres.cluster!)
    try {
      await crashRun({ kills: 4, actors: 6, databaseUrl: db.url })
    } finally {
      await db.drop()
    }
  })
})
