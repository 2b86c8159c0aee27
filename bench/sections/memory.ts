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
 * Section 7: the server's peak RSS under section 3's load, and the same server with
 * `server.workers: 2` (node:cluster) on the same database: "n/a" while that key does not exist.
 */
export async function memorySection(
  report: Report,
  dir: string,
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
