import { randomBytes } from 'node:crypto'
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
} from 'node:fs'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import pg from 'pg'
import { findBinaries, startCluster, type ClusterInfo } from './postgres-cluster.js'
import { CLUSTER_DIR_ENV } from './postgres-setup.js'

/**
 * The PostgreSQL half of the test suite. In a test file:
 *
 *   const postgres = await testPostgres()
 *   describe.skipIf(!postgres.cluster)(`… on PostgreSQL${postgres.skipped}`, () => {
 *     let db: TestDatabase
 *     beforeAll(async () => { db = await createTestDatabase(postgres.cluster!) })
 *     afterAll(() => db.drop())
 *     // db.url: a postgres:// URL of a fresh, empty database of this file's own
 *   })
 *
 * Where the server binaries are absent the suite is skipped and its name says why; with
 * CERTBOUND_REQUIRE_POSTGRES=1 (CI) their absence fails the file instead.
 */
export interface TestPostgres {
  readonly cluster: ClusterInfo | undefined
  /** '' when available, else " (skipped: <reason>)" for the suite's name. */
  readonly skipped: string
}

export interface TestDatabase {
  readonly name: string
  /** postgres://postgres:<password>@127.0.0.1:<port>/<name> */
  readonly url: string
  readonly cluster: ClusterInfo
  /** The same URL without the password (for PGPASSWORD / password_file tests). */
  readonly urlWithoutPassword: string
  drop(): Promise<void>
}

let shared: Promise<TestPostgres> | undefined

/** The run's cluster, started by whichever test file asks first (once, across workers). */
export function testPostgres(): Promise<TestPostgres> {
  shared ??= resolveCluster()
  return shared
}

async function resolveCluster(): Promise<TestPostgres> {
  const required = process.env.CERTBOUND_REQUIRE_POSTGRES === '1'
  const found = findBinaries()
  if ('reason' in found) {
    if (required) throw new Error(`CERTBOUND_REQUIRE_POSTGRES=1 but ${found.reason}`)
    console.warn(`PostgreSQL tests skipped: ${found.reason}`)
    return { cluster: undefined, skipped: ` (skipped: ${found.reason})` }
  }
  const base = process.env[CLUSTER_DIR_ENV]
  if (!base) throw new Error(`${CLUSTER_DIR_ENV} is unset: run the tests through vitest.config.ts`)
  return { cluster: await sharedCluster(base), skipped: '' }
}

/**
 * Test files run in several worker processes; the first to get the lock file (O_EXCL) starts
 * the cluster and publishes cluster.json (or failed.json), the others wait for one of them.
 */
async function sharedCluster(base: string): Promise<ClusterInfo> {
  const info = join(base, 'cluster.json')
  const failed = join(base, 'failed.json')
  let mine = false
  try {
    closeSync(openSync(join(base, 'start.lock'), 'wx'))
    mine = true
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
  }
  if (mine) {
    const publish = (file: string, value: unknown) => {
      writeFileSync(`${file}.tmp`, JSON.stringify(value))
      renameSync(`${file}.tmp`, file)
    }
    try {
      const dir = join(base, 'cluster')
      mkdirSync(dir)
      // The server's user (postgres, when we are root) must be able to reach its directory.
      chmodSync(base, 0o711)
      const cluster = await startCluster(dir)
      publish(info, cluster)
      return cluster
    } catch (e) {
      publish(failed, { message: (e as Error).message })
      throw e
    }
  }
  for (const deadline = Date.now() + 180_000; Date.now() < deadline; await sleep(100)) {
    if (existsSync(info)) return JSON.parse(readFileSync(info, 'utf8')) as ClusterInfo
    if (existsSync(failed)) {
      const { message } = JSON.parse(readFileSync(failed, 'utf8')) as { message: string }
      throw new Error(`the test PostgreSQL cluster did not start: ${message}`)
    }
  }
  throw new Error('timed out waiting for another test worker to start PostgreSQL')
}

function urlFor(c: ClusterInfo, database: string, password = true): string {
  const auth = password ? `${c.user}:${encodeURIComponent(c.password)}` : c.user
  return `postgres://${auth}@${c.host}:${c.port}/${database}`
}

/** A superuser client on the cluster's `postgres` database, for setup and inspection. */
export async function adminClient(c: ClusterInfo, database = 'postgres'): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: urlFor(c, database) })
  await client.connect()
  return client
}

/** A fresh, empty database on the cluster; `drop()` removes it (closing what is left open). */
export async function createTestDatabase(c: ClusterInfo): Promise<TestDatabase> {
  const name = `cb_${process.pid}_${randomBytes(4).toString('hex')}`
  const admin = await adminClient(c)
  try {
    await admin.query(`CREATE DATABASE ${name}`)
  } finally {
    await admin.end()
  }
  return {
    name,
    url: urlFor(c, name),
    urlWithoutPassword: urlFor(c, name, false),
    cluster: c,
    async drop() {
      const a = await adminClient(c)
      try {
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)
      } finally {
        await a.end()
      }
    },
  }
}
