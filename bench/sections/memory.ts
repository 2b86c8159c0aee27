import { join } from 'node:path'
import {
  CertboundServer,
  configAccepts,
  merge,
  type Credential,
  type Obj,
} from '../lib/certbound.js'
import { ratio, type Report } from '../lib/report.js'
import type { ScenarioOptions } from '../lib/scenario.js'
import { certboundLoad, type HttpsResults } from './https.js'

/**
 * Section 7: the server's peak RSS under section 3's load, then token grants and enrolments on
 * the running 1-worker server and right after on the same database with `server.workers: 2`
 * (node:cluster); "n/a" while that key does not exist. Stops `running`.
 */
export async function memorySection(
  report: Report,
  running: CertboundServer,
  creds: readonly Credential[],
  entryIds: readonly string[],
  https: HttpsResults | undefined,
  load: ScenarioOptions,
  base: Obj = {},
): Promise<void> {
  const S = '7. memory and workers'
  const mb = (b: number | undefined) => (b === undefined ? null : b / 1024 / 1024)
  report.add({
    section: S,
    name: 'server peak RSS under the HTTPS load (1 worker)',
    value: mb(https?.peakRssBytes),
    unit: 'MB',
  })
  const overrides = merge(base, { server: { workers: 2 } })
  if (!configAccepts(overrides)) {
    await running.stop()
    report.add({
      section: S,
      name: 'token grants, 2 workers vs 1',
      value: null,
      unit: 'x',
      note: 'server.workers is not a config key yet',
    })
    return
  }
  const scenarios = ['token', 'enroll'] as const
  let one: HttpsResults
  try {
    one = await certboundLoad(running, creds, entryIds, load, scenarios)
  } finally {
    await running.stop()
  }
  const home = join(running.dataDir, '..')
  const server = await CertboundServer.start(home, overrides, 'certbound-2w')
  try {
    const two = await certboundLoad(server, creds, entryIds, load, scenarios)
    const label = { token: 'token grants', enroll: 'enrolments' }
    for (const name of scenarios) {
      for (const [n, r] of [
        [1, one[name]],
        [2, two[name]],
      ] as const) {
        report.add({
          section: S,
          name: `${label[name]}, ${n} worker${n === 1 ? '' : 's'}`,
          value: r?.perSecond ?? null,
          unit: '/s',
          ...(r ? { p50Ms: r.p50, p99Ms: r.p99, cpuUs: r.cpuUs } : {}),
          ...(n === 2
            ? { ratio: { value: ratio(r?.perSecond, one[name]?.perSecond), to: '1 worker' } }
            : {}),
        })
      }
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
