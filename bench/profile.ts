/**
 * One certbound server under one kind of load, for profiling it (not part of `npm run bench`):
 *
 *   npm run bench:profile -- token 5     # scenario (healthz, token, refresh, introspect,
 *                                        # enroll, renew, enrollHandshake; comma-separated) and seconds
 *
 * The server's pid and the moment the load starts are written to BENCH_PHASE_FILE (default
 * `bench/.phase`), so a profiler can attach to just that part; see bench/README.md, "Profiling".
 * BENCH_SERVER=dist and BENCH_NODE_FLAGS apply as in the bench.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CertboundServer } from './lib/certbound.js'
import { sendOk } from './lib/http.js'
import { runScenario } from './lib/scenario.js'
import { certboundLoad, type ScenarioName } from './sections/https.js'

const names = (process.argv[2] ?? 'token').split(',') as ScenarioName[]
const seconds = Number(process.argv[3] ?? 5)
const phaseFile = process.env.BENCH_PHASE_FILE ?? join('bench', '.phase')
// BENCH_PROFILE_HOME: an existing server directory (say one `--scale --keep` left), kept.
const home = process.env.BENCH_PROFILE_HOME
const dir = home ?? mkdtempSync(join(tmpdir(), 'certbound-profile-'))
const server = await CertboundServer.start(home ?? join(dir, 'certbound'), {})
const mark = (what: string) => writeFileSync(phaseFile, `${server.pid} ${what}\n`)
try {
  const { creds, entryIds } = await server.workloads(16, home ? `profile${Date.now()}` : 'client')
  const load = { seconds, warmup: 128, warmupSeconds: 1, minRequests: 200, maxRequests: 1e6 }
  if (names.length === 1 && names[0] === 'introspect') {
    // Tokens first (not profiled), then introspection alone.
    const { issued } = await certboundLoad(server, creds, entryIds, { ...load, seconds: 1 }, [
      'token',
    ])
    const agents = creds.map((c) => server.agent(c))
    mark('introspect')
    const result = await runScenario(
      server.pid,
      {
        workers: creds.length,
        prepare: async () => async (i, w) => {
          const r = await sendOk(agents[w]!, `${server.url}/oauth/introspect`, {
            form: { token: issued[i % issued.length]!.token },
          })
          if (r.active !== true) throw new Error('introspection: the token is not active')
        },
      },
      load,
    )
    console.log('introspect', JSON.stringify(result))
  } else {
    mark(names.join(','))
    const results = await certboundLoad(server, creds, entryIds, load, names)
    for (const n of names) console.log(n, JSON.stringify(results[n]))
  }
} finally {
  await server.stop()
  rmSync(phaseFile, { force: true })
  if (home === undefined) rmSync(dir, { recursive: true, force: true })
}
