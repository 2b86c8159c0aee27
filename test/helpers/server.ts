import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { pino, type Logger } from 'pino'
import { Agent, request } from 'undici'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { ServerCredentials } from '../../src/ca/server-credential.js'
import { systemClock, type Clock } from '../../src/clock.js'
import { configFromObject, type Config } from '../../src/config/load.js'
import type { SqlValue } from '../../src/db/driver.js'
import type { PostgresDriver } from '../../src/db/postgres/driver.js'
import { openPostgresDriver } from '../../src/db/postgres/open.js'
import { startServer, type RunningServer } from '../../src/main.js'
import { makeCsr, type CsrKey } from './openssl.js'
import { createTestDatabase, testPostgres } from './postgres.js'

export interface Credential {
  readonly certPem: string
  readonly keyPem: string
  readonly serial: string
  readonly chainPem: string
}

export interface ApiResponse<T = any> {
  readonly status: number
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: T
  readonly text: string
}

/**
 * A client of a real certbound server over HTTPS: undici agents that present real client
 * certificates, and the admin, enrolment and renewal calls the tests build on. The server may
 * run in this process ({@link TestServer}) or in its own (test/helpers/process-server.ts).
 */
export class ApiClient {
  readonly #agents: Agent[] = []
  constructor(
    readonly url: string,
    readonly dataDir: string,
    readonly bundlePem: string,
    readonly intermediatePem: string,
  ) {}

  /** An undici Agent presenting `cred` (or no certificate), trusting our root. */
  agent(cred?: { certPem: string; keyPem: string }): Agent {
    const agent = new Agent({
      connect: { ca: this.bundlePem, ...(cred ? { cert: cred.certPem, key: cred.keyPem } : {}) },
    })
    this.#agents.push(agent)
    return agent
  }

  get admin(): { certPem: string; keyPem: string } {
    return {
      certPem: readFileSync(join(this.dataDir, 'admin/admin.pem'), 'utf8'),
      keyPem: readFileSync(join(this.dataDir, 'admin/admin-key.pem'), 'utf8'),
    }
  }

  /** JSON request; `json` is sent as JSON, `body` (text or bytes) as it is. */
  async call<T = any>(
    method: string,
    path: string,
    opts: {
      agent?: Agent
      as?: { certPem: string; keyPem: string }
      json?: unknown
      form?: Record<string, string>
      body?: string | Buffer
      headers?: Record<string, string>
    } = {},
  ): Promise<ApiResponse<T>> {
    const dispatcher = opts.agent ?? this.agent(opts.as)
    const headers: Record<string, string> = { ...opts.headers }
    let body: string | Buffer | undefined = opts.body
    if (opts.json !== undefined) {
      headers['content-type'] = 'application/json'
      body = JSON.stringify(opts.json)
    } else if (opts.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(opts.form).toString()
    }
    const res = await request(`${this.url}${path}`, {
      method: method as 'GET',
      dispatcher,
      headers,
      body,
    })
    const text = await res.body.text()
    let parsed: any = text
    try {
      parsed = JSON.parse(text)
    } catch {
      // not JSON
    }
    return { status: res.statusCode, headers: res.headers, body: parsed as T, text }
  }

  /** Admin: creates an entry and returns its id. */
  async createEntry(spiffeId: string, extra: Record<string, unknown> = {}): Promise<string> {
    const r = await this.call('POST', '/v1/entries', {
      as: this.admin,
      json: { spiffe_id: spiffeId, ...extra },
    })
    if (r.status !== 201) throw new Error(`createEntry: ${r.status} ${r.text}`)
    return r.body.id
  }

  async joinToken(entryId: string, ttl?: string): Promise<string> {
    const r = await this.call('POST', `/v1/entries/${entryId}/join-tokens`, {
      as: this.admin,
      json: ttl ? { ttl } : {},
    })
    if (r.status !== 201) throw new Error(`joinToken: ${r.status} ${r.text}`)
    return r.body.token
  }

  /** Full enrolment with an openssl-made CSR: entry (created unless given), join token, CSR. */
  async enroll(
    spiffeId: string,
    opts: { ttl?: string; key?: CsrKey; entryId?: string } = {},
  ): Promise<Credential & { entryId: string }> {
    const entryId = opts.entryId ?? (await this.createEntry(spiffeId))
    const token = await this.joinToken(entryId)
    const { csrPem, keyPem } = makeCsr({ key: opts.key, san: `URI:${spiffeId}` })
    const r = await this.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${token}` },
      json: { csr: csrPem, ...(opts.ttl ? { ttl: opts.ttl } : {}) },
    })
    if (r.status !== 201) throw new Error(`enroll: ${r.status} ${r.text}`)
    return {
      certPem: r.body.certificate,
      chainPem: r.body.chain,
      keyPem,
      serial: r.body.serial,
      entryId,
    }
  }

  /** Renewal over mTLS with `cred`, new key by default. */
  async renew(
    cred: { certPem: string; keyPem: string },
    opts: { ttl?: string; sameKey?: boolean } = {},
  ): Promise<ApiResponse & { credential?: Credential }> {
    const { csrPem, keyPem } = makeCsr(opts.sameKey ? { keyPem: cred.keyPem } : {})
    const r = await this.call('POST', '/v1/renew', {
      as: cred,
      json: { csr: csrPem, ...(opts.ttl ? { ttl: opts.ttl } : {}) },
    })
    if (r.status !== 201) return r
    return {
      ...r,
      credential: {
        certPem: r.body.certificate,
        chainPem: r.body.chain,
        keyPem,
        serial: r.body.serial,
      },
    }
  }

  /** Closes the agents this client opened. */
  async closeAgents(): Promise<void> {
    await Promise.all(this.#agents.splice(0).map((a) => a.close().catch(() => undefined)))
  }
}

/**
 * A real certbound server on 127.0.0.1 (port 0) over a fresh data_dir with a real SQLite
 * file, in this process, plus undici clients that present real client certificates.
 */
export class TestServer extends ApiClient {
  #postgres: { driver?: PostgresDriver; drop?: () => Promise<void> } = {}

  private constructor(
    readonly running: RunningServer,
    readonly config: Config,
    dataDir: string,
    drop: (() => Promise<void>) | undefined,
  ) {
    super(
      `https://127.0.0.1:${running.address.port}`,
      dataDir,
      readFileSync(join(dataDir, 'ca/bundle.pem'), 'utf8'),
      readFileSync(join(dataDir, 'ca/intermediate.pem'), 'utf8'),
    )
    this.#postgres.drop = drop
  }

  /**
   * Starts a server on a fresh data_dir (or `dataDir`). The backend is SQLite, or PostgreSQL
   * when the suite runs in the `postgres` project (CERTBOUND_TEST_BACKEND=postgres): then a
   * fresh database of the run's throwaway cluster, or `databaseUrl` to reopen one (restarts).
   */
  static async start(
    overrides: Record<string, any> = {},
    options: { clock?: Clock; dataDir?: string; logger?: Logger; databaseUrl?: string } = {},
  ): Promise<TestServer> {
    const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'certbound-test-'))
    const { server: serverOverrides, database: databaseOverrides, ...rest } = overrides
    let url: string | undefined = databaseOverrides?.url ?? options.databaseUrl
    let drop: (() => Promise<void>) | undefined
    if (url === undefined && testBackend() === 'postgres') {
      const db = await createTestDatabase(await requirePostgres())
      url = db.url
      drop = () => db.drop()
    }
    const config = configFromObject({
      trust_domain: 'example.org',
      data_dir: dataDir,
      log_level: 'silent',
      server: { listen: '127.0.0.1:0', ...serverOverrides },
      database: { ...databaseOverrides, ...(url === undefined ? {} : { url }) },
      // Every test client connects from 127.0.0.1 and many refusals are the point: the
      // failed-authentication limit is tested on its own (test/ops/rate-limit.test.ts).
      limits: { failed_auth: UNLIMITED },
      ...rest,
    })
    const running = await startServer(config, {
      clock: options.clock,
      logger: options.logger ?? pino({ level: 'silent' }),
    })
    // The issuer default names port 0; tests that check `iss` read it from config.
    return new TestServer(running, config, dataDir, drop)
  }

  /** The PostgreSQL URL of this server's database, or undefined on SQLite. */
  get databaseUrl(): string | undefined {
    return this.config.database.url
  }

  /** Rows of one query (portable SQL, `?` placeholders) on a connection of the test's own. */
  async query<T = any>(sql: string, ...params: SqlValue[]): Promise<T[]> {
    const url = this.databaseUrl
    if (url === undefined) {
      const file = join(this.dataDir, 'certbound.db')
      const db = new Database(file, { readonly: true, fileMustExist: true })
      try {
        return db.prepare(sql).all(...params) as T[]
      } finally {
        db.close()
      }
    }
    this.#postgres.driver ??= await openPostgresDriver({ url, migrate: false })
    return this.#postgres.driver.all<T>(sql, params)
  }

  /**
   * One write (portable SQL, `?` placeholders) on a connection of the test's own, committed at
   * once: a row as an older version left it, or as damage would.
   */
  async execute(sql: string, ...params: SqlValue[]): Promise<number> {
    const url = this.databaseUrl
    if (url === undefined) {
      const db = new Database(join(this.dataDir, 'certbound.db'), { fileMustExist: true, timeout: 5_000 })
      try {
        return db.prepare(sql).run(...params).changes
      } finally {
        db.close()
      }
    }
    this.#postgres.driver ??= await openPostgresDriver({ url, migrate: false })
    return this.#postgres.driver.transaction((tx) => tx.run(sql, params))
  }

  /** Every value stored in every table, as text (BLOBs both as latin1 and as UTF-8). */
  async storedValues(): Promise<string[]> {
    const tables = await this.query<{ name: string }>(
      this.databaseUrl === undefined
        ? `SELECT name FROM sqlite_master WHERE type = 'table'`
        : `SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public'`,
    )
    const values: string[] = []
    for (const { name } of tables) {
      for (const row of await this.query<Record<string, unknown>>(`SELECT * FROM "${name}"`)) {
        for (const v of Object.values(row)) {
          if (typeof v === 'string') values.push(v)
          else if (Buffer.isBuffer(v)) values.push(v.toString('latin1'), v.toString('utf8'))
        }
      }
    }
    return values
  }

  get store() {
    return this.running.store
  }

  /** The server's own TLS certificate (chain) and key, as the database holds them. */
  async serverCredential(): Promise<{ certPem: string; keyPem: string; serial: string }> {
    const tls = await new ServerCredentials({
      config: this.config,
      store: this.store,
      clock: systemClock,
      ca: this.running.ca,
      kek: loadKeyEncryptionKey(this.dataDir),
    }).current()
    if (!tls) throw new Error('no server TLS credential stored')
    return tls
  }

  async close(): Promise<void> {
    await this.closeAgents()
    await this.running.close()
    await this.#postgres.driver?.close()
    await this.#postgres.drop?.()
    rmSync(this.dataDir, { recursive: true, force: true })
  }
}

/** limits.failed_auth of test servers unless a test sets it (the schema's maximum). */
export const UNLIMITED = 1_000_000

/** The backend the HTTP suites run on: the vitest project's (sqlite unless told otherwise). */
export function testBackend(): 'sqlite' | 'postgres' {
  return process.env.CERTBOUND_TEST_BACKEND === 'postgres' ? 'postgres' : 'sqlite'
}

async function requirePostgres() {
  const { cluster, skipped } = await testPostgres()
  if (!cluster) throw new Error(`the postgres test project needs a PostgreSQL server${skipped}`)
  return cluster
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
