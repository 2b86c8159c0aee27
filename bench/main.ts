import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { configFromObject } from '../src/config/load.js'
import { benchConfig, CertboundServer, configAccepts } from './lib/certbound.js'
import { ratio, renderTable, Report } from './lib/report.js'
import type { ScenarioOptions, ScenarioResult } from './lib/scenario.js'
import { cryptoSection, type CryptoLimits } from './sections/crypto.js'
import { certboundLoad, reportHttps, type HttpsResults } from './sections/https.js'
import { inProcessSection } from './sections/inprocess.js'
import { cfsslAvailable, cfsslSign, oidcProviderTokens } from './sections/peers.js'
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
}

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
    },
  })
  const seconds = Number(values.seconds ?? (values.quick ? 1 : 3))
  if (!(seconds > 0)) throw new TypeError('--seconds must be a positive number')
  return {
    scale: values.scale!,
    seconds,
    clients: Number(values.clients),
    only: values.only?.split(',').map((s) => s.trim()),
    out: values.out ?? (values.scale ? 'bench/results-scale.json' : 'bench/results.json'),
    keep: values.keep!,
  }
}

const SECTIONS = ['crypto', 'inprocess', 'https', 'peers', 'verifier', 'memory'] as const

function packageVersion(name: string): string {
  try {
    const require = createRequire(import.meta.url)
    return JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')).version
  } catch {
    return '?'
  }
}

function cfsslVersion(): string {
  try {
    return /Version:\s*(\S+)/.exec(execFileSync('cfssl', ['version'], { encoding: 'utf8' }))![1]!
  } catch {
    return '?'
  }
}

export async function runBench(argv: readonly string[]): Promise<Report> {
  const opts = parseOptions(argv)
  const report = new Report()
  const dir = mkdtempSync(join(tmpdir(), 'certbound-bench-'))
  const load: ScenarioOptions = {
    seconds: opts.seconds,
    warmup: Math.max(50, opts.clients * 8),
    minRequests: 200,
    maxRequests: 20_000,
  }
  const want = (s: string) => opts.only === undefined || opts.only.includes(s)
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
  const cfg = configFromObject(benchConfig(join(dir, 'probe'), 1))
  const types = {
    ca: cfg.ca.keyType,
    workload: 'ec-p256' as const,
    token: cfg.tokens.signingKeyType,
  }
  try {
    if (opts.scale) {
      await section('scale', () => scaleSection(report, dir, opts.clients, load))
    } else {
      await runMain(report, dir, opts, load, types, want, section)
    }
  } finally {
    const extra = {
      options: { ...opts, synchronous: cfg.database.synchronous, key_types: types },
      versions: {
        'oidc-provider': packageVersion('oidc-provider'),
        cfssl: cfsslVersion(),
        jose: packageVersion('jose'),
      },
    }
    writeFileSync(opts.out, `${JSON.stringify(report.toJSON(extra), null, 2)}\n`)
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
      inProcessSection(report, limits, { seconds: opts.seconds, maxRequests: 20_000 }),
    )
  if (!['https', 'peers', 'verifier', 'memory'].some((s) => want(s as never))) return

  let server: CertboundServer | undefined
  let https: HttpsResults | undefined
  let oidc: ScenarioResult | undefined
  let cfssl: ScenarioResult | undefined
  let verifier: { verifier: number; jose: number } | undefined
  try {
    server = await CertboundServer.start(join(dir, 'certbound'))
    const { creds, entryIds } = await server.workloads(opts.clients, 'client')
    if (want('https') || want('memory') || want('verifier'))
      https = await section('certbound over HTTPS', () =>
        certboundLoad(server!, creds, entryIds, load),
      )
    if (https) reportHttps(report, https, limits, opts.clients)
    if (want('peers')) {
      oidc = await section('node-oidc-provider', () =>
        oidcProviderTokens(dir, creds, server!.bundle, load),
      )
      if (cfsslAvailable()) cfssl = await section('cfssl', () => cfsslSign(dir, opts.clients, load))
      reportPeers(report, https, oidc, cfssl)
    }
    if (want('verifier') && https)
      verifier = await section('verifier', () =>
        verifierSection(report, server!, https!.issued, opts.seconds * 500),
      )
    if (want('memory')) {
      await server.stop()
      server = undefined
      await section('memory and workers', () =>
        memorySection(report, dir, creds, entryIds, https, load),
      )
    }
  } finally {
    await server?.stop()
  }
  addTargets(report, limits, https, oidc, cfssl, verifier)
}

function reportPeers(
  report: Report,
  https: HttpsResults | undefined,
  oidc: ScenarioResult | undefined,
  cfssl: ScenarioResult | undefined,
): void {
  const S = '4. peers, same run, same driver'
  const row = (name: string, r: ScenarioResult | undefined, note?: string) =>
    report.add({
      section: S,
      name,
      value: r?.perSecond ?? null,
      unit: '/s',
      ...(r ? { p50Ms: r.p50, p99Ms: r.p99, cpuUs: r.cpuUs } : {}),
      ...(note ? { note } : {}),
    })
  row(`node-oidc-provider ${packageVersion('oidc-provider')} POST /token client_credentials`, oidc)
  report.add({
    section: S,
    name: 'certbound token grants vs node-oidc-provider',
    value: ratio(https?.token?.perSecond, oidc?.perSecond),
    unit: 'x',
    ...(https?.token && oidc
      ? { note: `CPU per grant ${ratio(https.token.cpuUs, oidc.cpuUs)?.toFixed(2)}x` }
      : {}),
  })
  row(
    `cfssl ${cfsslVersion()} POST /api/v1/cfssl/sign (HTTP)`,
    cfssl,
    cfssl
      ? `GOMAXPROCS=${process.env.BENCH_CFSSL_GOMAXPROCS ?? '1'}`
      : 'cfssl not on PATH: skipped',
  )
  report.add({
    section: S,
    name: 'certbound enrolment vs cfssl signing',
    value: ratio(https?.enroll?.perSecond, cfssl?.perSecond),
    unit: 'x',
  })
}

async function memorySection(
  report: Report,
  dir: string,
  creds: Parameters<typeof certboundLoad>[1],
  entryIds: readonly string[],
  https: HttpsResults | undefined,
  load: ScenarioOptions,
): Promise<void> {
  const S = '7. memory and workers'
  const mb = (b: number | undefined) => (b === undefined ? null : b / 1024 / 1024)
  report.add({
    section: S,
    name: 'server peak RSS under the HTTPS load (1 worker)',
    value: mb(https?.peakRssBytes),
    unit: 'MB',
  })
  const overrides = { server: { workers: 2 } }
  if (!configAccepts(overrides)) {
    report.add({
      section: S,
      name: 'token grants, 2 workers vs 1',
      value: null,
      unit: 'x',
      note: 'server.workers is not a config key yet',
    })
    return
  }
  const server = await CertboundServer.start(join(dir, 'certbound'), overrides, 'certbound-2w')
  try {
    const two = await certboundLoad(server, creds, entryIds, load, ['token', 'enroll'])
    for (const [name, label] of [
      ['token', 'token grants'],
      ['enroll', 'enrolments'],
    ] as const) {
      report.add({
        section: S,
        name: `${label}, 2 workers`,
        value: two[name]?.perSecond ?? null,
        unit: '/s',
        ...(two[name]
          ? { p50Ms: two[name].p50, p99Ms: two[name].p99, cpuUs: two[name].cpuUs }
          : {}),
        ratio: { value: ratio(two[name]?.perSecond, https?.[name]?.perSecond), to: '1 worker' },
      })
    }
    report.add({
      section: S,
      name: 'server peak RSS, 2 workers (all processes)',
      value: mb(two.peakRssBytes),
      unit: 'MB',
    })
  } finally {
    await server.stop()
  }
}

function addTargets(
  report: Report,
  limits: CryptoLimits,
  https: HttpsResults | undefined,
  oidc: ScenarioResult | undefined,
  cfssl: ScenarioResult | undefined,
  verifier: { verifier: number; jose: number } | undefined,
): void {
  const inproc = report.rows.find((r) => r.section.startsWith('2.') && r.name.startsWith('enroll'))
  const rss = report.rows.find((r) => r.section.startsWith('7.') && r.name.includes('1 worker'))
  const t = report.target.bind(report)
  t({
    name: 'token grants over HTTPS vs node-oidc-provider',
    value: ratio(https?.token?.perSecond, oidc?.perSecond),
    op: '>=',
    bound: 2,
    unit: 'x',
  })
  t({
    name: 'refresh vs client_credentials (within 20%)',
    value: ratio(https?.refresh?.perSecond, https?.token?.perSecond),
    op: '>=',
    bound: 0.8,
    unit: 'x',
  })
  t({
    name: 'introspection vs bare mTLS /healthz',
    value: ratio(https?.introspect?.perSecond, https?.healthz?.perSecond),
    op: '>=',
    bound: 0.6,
    unit: 'x',
  })
  t({
    name: 'enrolment over HTTPS vs cfssl signing',
    value: ratio(https?.enroll?.perSecond, cfssl?.perSecond),
    op: '>=',
    bound: 0.7,
    unit: 'x',
  })
  t({
    name: 'in-process issuance vs the issuance crypto limit',
    value: inproc?.value == null ? null : ratio(inproc.value, limits.issuance),
    op: '>=',
    bound: 0.3,
    unit: 'x',
  })
  t({
    name: '@certbound/verifier vs jose.jwtVerify',
    value: ratio(verifier?.verifier, verifier?.jose),
    op: '>=',
    bound: 0.9,
    unit: 'x',
  })
  t({
    name: 'server peak RSS under the HTTPS load',
    value: rss?.value ?? null,
    op: '<',
    bound: 200,
    unit: 'MB',
  })
}
