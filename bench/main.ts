import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { configFromObject } from '../src/config/load.js'
import { benchConfig, CertboundServer, parseSets, type Obj } from './lib/certbound.js'
import { renderTable, Report } from './lib/report.js'
import type { ScenarioOptions } from './lib/scenario.js'
import { cryptoSection, type CryptoLimits } from './sections/crypto.js'
import { certboundLoad, reportHttps, type HttpsResults } from './sections/https.js'
import { inProcessSection } from './sections/inprocess.js'
import {
  bracketed,
  cfsslAvailable,
  cfsslSign,
  oidcProviderTokens,
  reportPeers,
  type Comparison,
} from './sections/peers.js'
import { memorySection } from './sections/memory.js'
import { addTargets } from './targets.js'
import { cfsslVersion, packageVersion } from './lib/versions.js'
import { scaleSection } from './sections/scale.js'
import { verifierSection } from './sections/verifier.js'

/**
 * `npm run bench [-- options]`: every figure of issue 10 in one run, as ratios to references
 * measured in the same run on the same machine. See bench/README.md for how to read it.
 */

export interface BenchOptions {
  readonly scale: boolean
  readonly seconds: number
  readonly clients: number
  readonly only: readonly string[] | undefined
  readonly out: string
  readonly keep: boolean
  /** Config overrides for every certbound server of the run (`--set`). */
  readonly overrides: Obj
}

const SECTIONS = ['crypto', 'inprocess', 'https', 'peers', 'verifier', 'memory'] as const

export function parseOptions(argv: readonly string[]): BenchOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      scale: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      clients: { type: 'string', default: '16' },
      only: { type: 'string' },
      out: { type: 'string' },
      keep: { type: 'boolean', default: false },
      dist: { type: 'boolean', default: false },
      src: { type: 'boolean', default: false },
      set: { type: 'string', multiple: true, default: [] },
    },
  })
  const only = values.only?.split(',').map((s) => s.trim())
  const unknown = only?.filter((s) => !(SECTIONS as readonly string[]).includes(s))
  if (unknown?.length)
    throw new TypeError(`--only: no section ${unknown.join(', ')} (${SECTIONS.join(', ')})`)
  if (values.dist && values.src) throw new TypeError('--dist and --src exclude each other')
  // The compiled server (what the package's `certbound` binary runs) unless --src or
  // BENCH_SERVER=src: through tsx, as `npm start` runs it, it costs ~50 MB more RSS.
  if (values.src) process.env.BENCH_SERVER = 'src'
  else if (values.dist || process.env.BENCH_SERVER === undefined) process.env.BENCH_SERVER = 'dist'
  const seconds = Number(values.seconds ?? (values.quick ? 1 : 3))
  if (!(seconds > 0)) throw new TypeError('--seconds must be a positive number')
  return {
    scale: values.scale!,
    seconds,
    clients: Number(values.clients),
    only,
    out: values.out ?? (values.scale ? 'bench/results-scale.json' : 'bench/results.json'),
    keep: values.keep!,
    overrides: parseSets(values.set ?? []),
  }
}

/** `npm run build`, so that the compiled server is never older than the sources. */
function buildServer(): void {
  process.stderr.write('bench: npm run build ...')
  const t0 = performance.now()
  const r = spawnSync('npm', ['run', 'build', '--silent'], { encoding: 'utf8', stdio: 'pipe' })
  if (r.status !== 0) throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`)
  process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
}

export async function runBench(argv: readonly string[]): Promise<Report> {
  const opts = parseOptions(argv)
  const report = new Report()
  // Fails fast on a bad --set, before anything is started.
  const cfg = configFromObject(
    benchConfig(join(tmpdir(), 'certbound-bench-probe'), 1, opts.overrides),
  )
  const dir = mkdtempSync(join(tmpdir(), 'certbound-bench-'))
  const load: ScenarioOptions = {
    seconds: opts.seconds,
    warmup: Math.max(50, opts.clients * 8),
    // A server's first thousands of requests run cold code (the JIT has not optimised it yet):
    // every server, certbound and peers alike, is measured after this much load of the same kind.
    warmupSeconds: Math.min(1, opts.seconds),
    minRequests: 200,
    maxRequests: 20_000,
  }
  const want = (s: string) => opts.only === undefined || opts.only.includes(s)
  if (process.env.BENCH_SERVER === 'dist') buildServer()
  const section = async <T>(name: string, fn: () => Promise<T>): Promise<T | undefined> => {
    const t0 = performance.now()
    process.stderr.write(`bench: ${name} ...`)
    try {
      const r = await fn()
      process.stderr.write(` ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)
      return r
    } catch (e) {
      process.stderr.write(' failed\n')
      report.error(name, e)
      return undefined
    }
  }
  const types = {
    ca: cfg.ca.keyType,
    workload: 'ec-p256' as const,
    token: cfg.tokens.signingKeyType,
  }
  try {
    if (opts.scale) {
      await section('scale', () => scaleSection(report, dir, opts.clients, load, opts.overrides))
    } else {
      await runMain(report, dir, opts, load, types, want, section)
    }
  } finally {
    const extra = {
      options: {
        ...opts,
        synchronous: cfg.database.synchronous,
        key_types: types,
        server: process.env.BENCH_SERVER === 'dist' ? 'dist (bin/certbound.js)' : 'tsx (src/)',
      },
      versions: {
        'oidc-provider': packageVersion('oidc-provider'),
        cfssl: cfsslVersion(),
        jose: packageVersion('jose'),
      },
    }
    writeFileSync(opts.out, `${JSON.stringify(report.toJSON(extra), null, 2)}\n`)
    const j = report.toJSON(extra)
    console.log(
      `certbound bench: ${opts.clients} clients, ${opts.seconds} s per scenario, ` +
        `server ${extra.options.server}, synchronous=${cfg.database.synchronous}, ` +
        `${j.machine.cpus} × ${j.machine.model}, node ${j.machine.node}`,
    )
    console.log(renderTable(report))
    console.log(`\nwritten to ${opts.out} (${report.toJSON({}).duration_s} s)`)
    if (opts.keep) console.log(`kept ${dir}`)
    else rmSync(dir, { recursive: true, force: true })
  }
  return report
}

type Section = <T>(name: string, fn: () => Promise<T>) => Promise<T | undefined>

async function runMain(
  report: Report,
  dir: string,
  opts: BenchOptions,
  load: ScenarioOptions,
  types: Parameters<typeof cryptoSection>[1],
  want: (s: (typeof SECTIONS)[number]) => boolean,
  section: Section,
): Promise<void> {
  const ms = opts.seconds * 400
  const limits: CryptoLimits = (want('crypto')
    ? await section('crypto', async () => cryptoSection(report, types, ms))
    : undefined) ?? { issuance: NaN, token: NaN, verify: NaN }
  if (want('inprocess'))
    await section('in-process issuance', () =>
      inProcessSection(report, limits, {
        seconds: opts.seconds,
        maxRequests: 20_000,
        overrides: opts.overrides,
      }),
    )
  if (!['https', 'peers', 'verifier', 'memory'].some((s) => want(s as never))) return

  let server: CertboundServer | undefined
  let https: HttpsResults | undefined
  let token: Comparison | undefined
  let enroll: Comparison | undefined
  let verifier: { verifier: number; jose: number } | undefined
  try {
    server = await CertboundServer.start(join(dir, 'certbound'), opts.overrides)
    const { creds, entryIds } = await server.workloads(opts.clients, 'client')
    if (want('https') || want('memory') || want('verifier'))
      https = await section('certbound over HTTPS', () =>
        certboundLoad(server!, creds, entryIds, load),
      )
    if (https) reportHttps(report, https, limits, opts.clients)
    if (want('peers')) {
      const again = (name: 'token' | 'enroll') => async () =>
        (await certboundLoad(server!, creds, entryIds, load, [name]))[name]
      token = await section('node-oidc-provider', () =>
        bracketed(again('token'), () => oidcProviderTokens(dir, creds, server!.bundle, load)),
      )
      const skipped = !cfsslAvailable()
      if (!skipped)
        enroll = await section('cfssl', () =>
          bracketed(again('enroll'), () => cfsslSign(dir, opts.clients, load)),
        )
      reportPeers(report, token, enroll, skipped)
    }
    if (want('verifier') && https)
      verifier = await section('verifier', () =>
        verifierSection(report, server!, https!.issued, opts.seconds * 500),
      )
    if (want('memory')) {
      const running = server
      server = undefined // memorySection stops it
      await section('memory and workers', () =>
        memorySection(report, running, creds, entryIds, https, load, opts.overrides),
      )
    }
  } finally {
    await server?.stop()
  }
  addTargets(report, limits, https, token, enroll, verifier)
}
