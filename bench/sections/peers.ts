import { execFileSync } from 'node:child_process'
import { X509Certificate, createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Credential } from '../lib/certbound.js'
import { workloadKeys } from '../lib/csr.js'
import { client, closeAll, send, sendOk } from '../lib/http.js'
import { selfSigned } from '../lib/openssl.js'
import { freePort, startChild, waitUntil } from '../lib/proc.js'
import { ratio, type Report } from '../lib/report.js'
import { runScenario, type ScenarioOptions, type ScenarioResult } from '../lib/scenario.js'
import { cfsslVersion, packageVersion } from '../lib/versions.js'

/**
 * Section 4: the servers users would pick instead, in the same run, driven by the same client
 * (undici, the same number of keep-alive connections, the same certificates).
 */

/**
 * node-oidc-provider as an RFC 8705 token endpoint: client_credentials with tls_client_auth,
 * the same 16 certbound workload certificates, certificate-bound ES256 JWT access tokens.
 */
export async function oidcProviderTokens(
  dir: string,
  creds: readonly Credential[],
  caBundle: string,
  opts: ScenarioOptions,
): Promise<ScenarioResult> {
  const port = await freePort()
  const tls = selfSigned(dir, 'oidc-provider', { ca: false, san: 'IP:127.0.0.1' })
  const configFile = join(dir, 'oidc-provider.json')
  writeFileSync(
    configFile,
    JSON.stringify({
      port,
      cert: tls.cert,
      key: tls.key,
      ca: caBundle,
      clients: creds.map((c) => c.spiffeId),
    }),
  )
  const child = startChild(
    process.execPath,
    [
      '--conditions=certbound-source',
      '--import',
      'tsx',
      'bench/peers/oidc-provider-server.ts',
      configFile,
    ],
    { logFile: join(dir, 'oidc-provider.log') },
  )
  const url = `https://127.0.0.1:${port}`
  const agents = creds.map((c) => client({ ca: tls.cert, cert: c.chain, key: c.keyPem }))
  try {
    await waitUntil(
      'oidc-provider',
      () => sendOk(agents[0]!, `${url}/.well-known/openid-configuration`, { method: 'GET' }),
      child,
    )
    // One grant checked by hand: a certificate-bound JWT, so the peer does the same work.
    const first = await sendOk(agents[0]!, `${url}/token`, {
      form: { grant_type: 'client_credentials', client_id: creds[0]!.spiffeId },
    })
    const [h, p] = (first.access_token as string)
      .split('.')
      .slice(0, 2)
      .map((x) => JSON.parse(Buffer.from(x, 'base64url').toString()))
    const leaf = new X509Certificate(creds[0]!.chain)
    const x5t = createHash('sha256').update(leaf.raw).digest('base64url')
    if (h.alg !== 'ES256' || p.cnf?.['x5t#S256'] !== x5t)
      throw new Error(
        `oidc-provider's token is not an ES256 token bound to the client: ${JSON.stringify([h, p])}`,
      )
    return await runScenario(
      child.pid,
      {
        workers: creds.length,
        prepare: async () => async (_i, w) =>
          void (await sendOk(agents[w]!, `${url}/token`, {
            form: { grant_type: 'client_credentials', client_id: creds[w]!.spiffeId },
          })),
      },
      opts,
    )
  } finally {
    await closeAll(agents)
    await child.stop()
  }
}

/** Whether the cfssl binary is on PATH. */
export function cfsslAvailable(): boolean {
  try {
    execFileSync('cfssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * cfssl's signing endpoint (`cfssl serve`, plain HTTP, no database) with a P-256 CA like
 * certbound's. cfssl 1.2 drops URI SANs, so its CSRs carry a DNS SAN instead. GOMAXPROCS=1
 * unless BENCH_CFSSL_GOMAXPROCS says otherwise: one core, as certbound's one server process.
 */
export async function cfsslSign(
  dir: string,
  workers: number,
  opts: ScenarioOptions,
): Promise<ScenarioResult> {
  const port = await freePort()
  const ca = selfSigned(dir, 'cfssl-ca', { ca: true })
  const configFile = join(dir, 'cfssl.json')
  writeFileSync(
    configFile,
    JSON.stringify({
      signing: {
        default: { expiry: '1h', usages: ['digital signature', 'client auth', 'server auth'] },
      },
    }),
  )
  const child = startChild(
    'cfssl',
    [
      'serve',
      `-address=127.0.0.1`,
      `-port=${port}`,
      `-ca=${ca.certFile}`,
      `-ca-key=${ca.keyFile}`,
      `-config=${configFile}`,
      '-loglevel=2', // warnings: like certbound's log_level warn, no line per request
    ],
    {
      logFile: join(dir, 'cfssl.log'),
      env: { ...process.env, GOMAXPROCS: process.env.BENCH_CFSSL_GOMAXPROCS ?? '1' },
    },
  )
  const url = `http://127.0.0.1:${port}/api/v1/cfssl/sign`
  const agents = Array.from({ length: workers }, () => client(undefined))
  try {
    await waitUntil(
      'cfssl',
      async () => {
        const r = await send(agents[0]!, `http://127.0.0.1:${port}/api/v1/cfssl/health`)
        if (r.status >= 500) throw new Error(`${r.status}`)
      },
      child,
    )
    return await runScenario(
      child.pid,
      {
        workers,
        prepare: async (n) => {
          const keys = await workloadKeys(n, (i) => ({ dnsNames: [`w${i}.bench.example`] }))
          return async (i, w) => {
            const r = await sendOk(agents[w]!, url, {
              json: { certificate_request: keys[i]!.csrPem },
            })
            if (r.success !== true) throw new Error(`cfssl: ${JSON.stringify(r.errors)}`)
          }
        },
      },
      opts,
    )
  } finally {
    await closeAll(agents)
    await child.stop()
  }
}

/** A peer's figure and certbound's for the same work, measured around it. */
export interface Comparison {
  readonly peer: ScenarioResult
  readonly certbound: ScenarioResult | undefined
}

function mean(a: ScenarioResult | undefined, b: ScenarioResult | undefined) {
  if (!a || !b) return a ?? b
  const avg = (f: (r: ScenarioResult) => number) => (f(a) + f(b)) / 2
  return {
    requests: a.requests + b.requests,
    seconds: a.seconds + b.seconds,
    perSecond: avg((r) => r.perSecond),
    p50: avg((r) => r.p50),
    p99: avg((r) => r.p99),
    cpuUs: avg((r) => r.cpuUs),
  }
}

/**
 * certbound, the peer, certbound again: the peer is compared with the mean of the two runs
 * around it, so that a change in the machine's load during the run moves both sides alike.
 */
export async function bracketed(
  certbound: () => Promise<ScenarioResult | undefined>,
  peer: () => Promise<ScenarioResult>,
): Promise<Comparison> {
  const before = await certbound()
  const p = await peer()
  const after = await certbound()
  return { peer: p, certbound: mean(before, after) }
}

/** Section 4's rows: each peer's figures, certbound's around it, and their ratio. */
export function reportPeers(
  report: Report,
  token: Comparison | undefined,
  enroll: Comparison | undefined,
  cfsslSkipped: boolean,
): void {
  const S = '4. peers, same run, same driver (certbound measured before and after each)'
  const row = (name: string, r: ScenarioResult | undefined, note?: string) =>
    report.add({
      section: S,
      name,
      value: r?.perSecond ?? null,
      unit: '/s',
      ...(r ? { p50Ms: r.p50, p99Ms: r.p99, cpuUs: r.cpuUs } : {}),
      ...(note ? { note } : {}),
    })
  const versus = (name: string, c: Comparison | undefined) =>
    report.add({
      section: S,
      name,
      value: ratio(c?.certbound?.perSecond, c?.peer.perSecond),
      unit: 'x',
      ...(c?.certbound
        ? { note: `CPU per request ${ratio(c.certbound.cpuUs, c.peer.cpuUs)?.toFixed(2)}x` }
        : {}),
    })
  row(
    `node-oidc-provider ${packageVersion('oidc-provider')} POST /token client_credentials`,
    token?.peer,
  )
  row('certbound POST /oauth/token client_credentials (mean)', token?.certbound)
  versus('certbound token grants vs node-oidc-provider', token)
  row(
    `cfssl ${cfsslVersion()} POST /api/v1/cfssl/sign (HTTP)`,
    enroll?.peer,
    cfsslSkipped
      ? 'cfssl not on PATH: skipped'
      : `GOMAXPROCS=${process.env.BENCH_CFSSL_GOMAXPROCS ?? '1'}`,
  )
  row('certbound POST /v1/enroll keep-alive (mean)', enroll?.certbound)
  versus('certbound enrolment vs cfssl signing', enroll)
}
