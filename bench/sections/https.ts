import type { Agent } from 'undici'
import type { CertboundServer, Credential } from '../lib/certbound.js'
import { workloadKeys } from '../lib/csr.js'
import { closedLoop } from '../lib/measure.js'
import { sendOk } from '../lib/http.js'
import { RssSampler, processTree, treePeakRssBytes } from '../lib/proc.js'
import { ratio, type Report } from '../lib/report.js'
import {
  runScenario,
  type Scenario,
  type ScenarioOptions,
  type ScenarioResult,
} from '../lib/scenario.js'
import type { CryptoLimits } from './crypto.js'

/**
 * Section 3: certbound over HTTPS, in its own process, driven by `clients` concurrent
 * keep-alive connections that each present a real client certificate of its own.
 */

export interface HttpsResults {
  readonly healthz?: ScenarioResult
  readonly token?: ScenarioResult
  readonly refresh?: ScenarioResult
  readonly introspect?: ScenarioResult
  readonly enroll?: ScenarioResult
  readonly renew?: ScenarioResult
  readonly enrollHandshake?: ScenarioResult
  /** Access tokens issued during the token scenario, with the credential each is bound to. */
  readonly issued: { token: string; cred: Credential }[]
  readonly peakRssBytes: number
}

/** The scenarios, keyed as in HttpsResults; `only` picks some (the workers comparison). */
export type ScenarioName = Exclude<keyof HttpsResults, 'issued' | 'peakRssBytes'>

export async function certboundLoad(
  server: CertboundServer,
  creds: readonly Credential[],
  entryIds: readonly string[],
  opts: ScenarioOptions,
  only?: readonly ScenarioName[],
): Promise<HttpsResults> {
  const url = server.url
  const W = creds.length
  const mtls = creds.map((c) => server.agent(c))
  const anon = creds.map(() => server.agent())
  const fresh = creds.map(() => server.agent(undefined, { newHandshakes: true }))
  const want = (s: ScenarioName) => only === undefined || only.includes(s)
  const results: Partial<Record<ScenarioName, ScenarioResult>> = {}
  const issued: { token: string; cred: Credential }[] = []
  const refreshTokens: string[] = []
  const sampler = new RssSampler(server.pid)
  sampler.start()
  const run = async (name: ScenarioName, sc: Scenario) => {
    if (want(name)) results[name] = await runScenario(server.pid, sc, opts)
  }
  const form = (w: number, extra: Record<string, string>) => ({
    form: { client_id: creds[w]!.spiffeId, ...extra },
  })

  // A new server's first seconds cost more than its steady state (the first scenario measured
  // up to 1.8x its later self: a WAL file still growing, whose every fdatasync also journals its
  // new size; a cold JIT). Grants first, unmeasured, so whichever scenario comes first is not
  // charged for that.
  const grant = (w: number) =>
    sendOk(mtls[w]!, `${url}/oauth/token`, form(w, { grant_type: 'client_credentials' }))
  await closedLoop(150 * W, W, async (_i, w) => void (await grant(w)))
  await run('token', {
    workers: W,
    prepare: async () => async (_i, w) => {
      const r = await grant(w)
      if (issued.length < 20_000) issued.push({ token: r.access_token, cred: creds[w]! })
      refreshTokens[w] = r.refresh_token
    },
  })
  // Each client refreshes its own family, one refresh at a time (a refresh token works once).
  if (refreshTokens.length === W)
    await run('refresh', {
      workers: W,
      prepare: async () => async (_i, w) => {
        const r = await sendOk(
          mtls[w]!,
          `${url}/oauth/token`,
          form(w, { grant_type: 'refresh_token', refresh_token: refreshTokens[w]! }),
        )
        refreshTokens[w] = r.refresh_token
      },
    })
  // The reference of introspection, measured right before it: as the first scenario on the new
  // server it ran beside the server's start-up work and cost up to 1.8x what it costs warm,
  // which flattered the introspection ratio.
  await run('healthz', {
    workers: W,
    prepare: async () => async (_i, w) => void (await sendOk(mtls[w]!, `${url}/healthz`)),
  })
  if (issued.length > 0)
    await run('introspect', {
      workers: W,
      prepare: async () => async (i, w) => {
        const r = await sendOk(mtls[w]!, `${url}/oauth/introspect`, {
          form: { token: issued[i % issued.length]!.token },
        })
        if (r.active !== true) throw new Error('introspection: the token is not active')
      },
    })
  const enrolment = (agents: Agent[], reset: boolean): Scenario => ({
    workers: W,
    prepare: async (n) => {
      const [tokens, keys] = await Promise.all([
        server.joinTokens(entryIds, n),
        workloadKeys(n, () => ({})),
      ])
      return async (i, w) =>
        void (await sendOk(agents[w]!, `${url}/v1/enroll`, {
          json: { csr: keys[i]!.csrPem },
          headers: { authorization: `Bearer ${tokens[i]}` },
          reset,
        }))
    },
  })
  await run('enroll', enrolment(anon, false))
  await run('renew', {
    workers: W,
    prepare: async (n) => {
      const keys = await workloadKeys(n, () => ({}))
      return async (i, w) =>
        void (await sendOk(mtls[w]!, `${url}/v1/renew`, { json: { csr: keys[i]!.csrPem } }))
    },
  })
  await run('enrollHandshake', enrolment(fresh, true))
  const peak = Math.max(sampler.stop(), treePeakRssBytes(processTree(server.pid)))
  return { ...results, issued, peakRssBytes: peak }
}

const LABELS: Record<ScenarioName, string> = {
  healthz: 'GET /healthz (bare mTLS request)',
  token: 'POST /oauth/token client_credentials',
  refresh: 'POST /oauth/token refresh_token',
  introspect: 'POST /oauth/introspect (access token)',
  enroll: 'POST /v1/enroll (keep-alive)',
  renew: 'POST /v1/renew (mTLS keep-alive)',
  enrollHandshake: 'POST /v1/enroll, new TLS handshake each (boot storm)',
}

/** Adds section 3's rows: each figure with its ratio to the relevant crypto limit or baseline. */
export function reportHttps(
  report: Report,
  r: HttpsResults,
  limits: CryptoLimits,
  clients: number,
): void {
  const S = `3. certbound over HTTPS (${clients} keep-alive mTLS clients, server in its own process)`
  const refs: Record<ScenarioName, { value: number | undefined; to: string }> = {
    healthz: { value: undefined, to: '' },
    token: { value: limits.token, to: 'the token crypto limit' },
    refresh: { value: r.token?.perSecond, to: 'client_credentials' },
    introspect: { value: r.healthz?.perSecond, to: 'bare mTLS /healthz' },
    enroll: { value: limits.issuance, to: 'the issuance crypto limit' },
    renew: { value: r.enroll?.perSecond, to: 'enroll' },
    enrollHandshake: { value: r.enroll?.perSecond, to: 'keep-alive enroll' },
  }
  for (const name of Object.keys(LABELS) as ScenarioName[]) {
    const s = r[name]
    report.add({
      section: S,
      name: LABELS[name],
      value: s?.perSecond ?? null,
      unit: '/s',
      ...(s ? { p50Ms: s.p50, p99Ms: s.p99, cpuUs: s.cpuUs } : {}),
      ...(refs[name].to
        ? { ratio: { value: ratio(s?.perSecond, refs[name].value), to: refs[name].to } }
        : {}),
    })
  }
}
