import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Agent } from 'undici'
import { parse as parseYaml, stringify } from 'yaml'
import { configFromObject } from '../../src/config/load.js'
import { workloadKeys, type WorkloadKey } from './csr.js'
import { client, closeAll, sendOk } from './http.js'
import { freePort, startChild, waitUntil, type Child } from './proc.js'

/**
 * A certbound server in its own process, driven only through its config file and its public
 * HTTP API (the contract): the storage behind it may change without this file noticing.
 */

export const TRUST_DOMAIN = 'example.org'

export type Obj = Record<string, unknown>

/** The bench's base configuration; `overrides` are merged into it key by key. */
export function benchConfig(dataDir: string, port: number, overrides: Obj = {}): Obj {
  const base: Obj = {
    trust_domain: TRUST_DOMAIN,
    data_dir: dataDir,
    log_level: 'warn',
    server: { listen: `127.0.0.1:${port}` },
    database: { synchronous: process.env.BENCH_SYNC ?? 'FULL' },
  }
  return merge(base, overrides)
}

export function merge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a }
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k]
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object'
        ? merge(prev as Obj, v as Obj)
        : v
  }
  return out
}

/**
 * `--set a.b=value` (repeatable) as an overrides object; values are YAML scalars
 * (`--set database.synchronous=NORMAL`, `--set server.workers=2`).
 */
export function parseSets(sets: readonly string[]): Obj {
  let out: Obj = {}
  for (const s of sets) {
    const eq = s.indexOf('=')
    if (eq <= 0) throw new TypeError(`--set ${s}: expected KEY.PATH=VALUE`)
    const value: unknown = parseYaml(s.slice(eq + 1))
    const obj = s
      .slice(0, eq)
      .split('.')
      .reduceRight<unknown>((v, k) => ({ [k]: v }), value) as Obj
    out = merge(out, obj)
  }
  return out
}

/**
 * Whether this checkout's config accepts `overrides` (e.g. `server.workers`, which another
 * branch is adding): the bench reports "n/a" for a figure whose key does not exist yet.
 */
export function configAccepts(overrides: Obj): boolean {
  try {
    configFromObject(benchConfig('/tmp/certbound-bench-probe', 1, overrides))
    return true
  } catch {
    return false
  }
}

export interface Credential {
  readonly spiffeId: string
  /** Leaf + intermediate, as the certificate response's `chain`. */
  readonly chain: string
  readonly keyPem: string
  readonly serial: string
}

export class CertboundServer {
  readonly admin: Agent
  readonly #agents: Agent[] = []
  private constructor(
    readonly child: Child,
    readonly url: string,
    readonly dataDir: string,
    /** The root the clients pin (ca/bundle.pem). */
    readonly bundle: string,
    readonly config: Obj,
  ) {
    this.admin = client({
      ca: bundle,
      cert: readFileSync(join(dataDir, 'admin/admin.pem'), 'utf8'),
      key: readFileSync(join(dataDir, 'admin/admin-key.pem'), 'utf8'),
    })
  }

  /** Starts `certbound serve` on a free port over `dir`/data (initialised on first start). */
  static async start(
    dir: string,
    overrides: Obj = {},
    tag = 'certbound',
  ): Promise<CertboundServer> {
    const port = await freePort()
    const dataDir = join(dir, 'data')
    const config = benchConfig(dataDir, port, overrides)
    mkdirSync(dir, { recursive: true })
    const configFile = join(dir, `${tag}.yaml`)
    writeFileSync(configFile, stringify(config))
    const prof = process.env.BENCH_PROF
    const child = startChild(
      process.execPath,
      [
        ...(prof ? ['--cpu-prof', '--cpu-prof-dir', resolve(prof)] : []),
        // e.g. BENCH_NODE_FLAGS='--prof --logfile=/tmp/v8-%p.log --no-logfile-per-isolate'
        ...(process.env.BENCH_NODE_FLAGS?.split(' ').filter((f) => f !== '') ?? []),
        // BENCH_SERVER=dist: the compiled CLI an installed package runs (npm run build first);
        // by default the sources through tsx, as `npm start` runs them (~40 MB more RSS).
        ...(process.env.BENCH_SERVER === 'dist'
          ? ['bin/certbound.js']
          : ['--conditions=certbound-source', '--import', 'tsx', 'src/cli/index.ts']),
        'serve',
        '--config',
        configFile,
      ],
      { logFile: join(dir, `${tag}.log`) },
    )
    const url = `https://127.0.0.1:${port}`
    await waitUntil(
      'certbound',
      async () => {
        if (!existsSync(join(dataDir, 'admin/admin-key.pem'))) throw new Error('initialising')
        const probe = client({ ca: readFileSync(join(dataDir, 'ca/bundle.pem'), 'utf8') })
        try {
          await sendOk(probe, `${url}/healthz`)
        } finally {
          await probe.close()
        }
      },
      child,
    )
    const bundle = readFileSync(join(dataDir, 'ca/bundle.pem'), 'utf8')
    return new CertboundServer(child, url, dataDir, bundle, config)
  }

  get pid(): number {
    return this.child.pid
  }

  /** An agent of its own (closed with the server). */
  agent(cred?: { chain: string; keyPem: string }, opts: { newHandshakes?: boolean } = {}): Agent {
    const a = client(
      { ca: this.bundle, ...(cred ? { cert: cred.chain, key: cred.keyPem } : {}) },
      opts,
    )
    this.#agents.push(a)
    return a
  }

  async createEntry(spiffeId: string, extra: Obj = {}): Promise<string> {
    const r = await sendOk(this.admin, `${this.url}/v1/entries`, {
      json: { spiffe_id: spiffeId, ...extra },
    })
    return r.id
  }

  async joinToken(entryId: string): Promise<string> {
    const r = await sendOk(this.admin, `${this.url}/v1/entries/${entryId}/join-tokens`, {
      json: {},
    })
    return r.token
  }

  /** `count` join tokens spread over `entryIds`, made `parallel` at a time. */
  async joinTokens(entryIds: readonly string[], count: number, parallel = 8): Promise<string[]> {
    const out: string[] = new Array(count)
    let next = 0
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < count) {
          const i = next++
          out[i] = await this.joinToken(entryIds[i % entryIds.length]!)
        }
      }),
    )
    return out
  }

  async enroll(token: string, key: WorkloadKey, via: Agent): Promise<Credential> {
    const r = await sendOk(via, `${this.url}/v1/enroll`, {
      json: { csr: key.csrPem },
      headers: { authorization: `Bearer ${token}` },
    })
    return { spiffeId: r.spiffe_id, chain: r.chain, keyPem: key.keyPem, serial: r.serial }
  }

  /** `n` workloads, each with its own entry and a certificate: the bench's mTLS clients. */
  async workloads(n: number, prefix: string): Promise<{ creds: Credential[]; entryIds: string[] }> {
    const ids = Array.from({ length: n }, (_, i) => `spiffe://${TRUST_DOMAIN}/bench/${prefix}-${i}`)
    const entryIds = await Promise.all(ids.map((id) => this.createEntry(id)))
    const keys = await workloadKeys(n, () => ({}))
    const anon = this.agent()
    const creds = await Promise.all(
      entryIds.map(async (e, i) => this.enroll(await this.joinToken(e), keys[i]!, anon)),
    )
    return { creds, entryIds }
  }

  async stop(): Promise<void> {
    await closeAll([this.admin, ...this.#agents])
    await this.child.stop()
  }
}
