import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Authority } from '../../src/ca/authority.js'
import { CrlPublisher } from '../../src/ca/crl.js'
import { systemClock } from '../../src/clock.js'
import { configFromObject } from '../../src/config/load.js'
import { startServer } from '../../src/main.js'
import { buildCertificate } from '../../src/x509/certificate.js'
import { parseCsr } from '../../src/x509/csr.js'
import { pemToDer } from '../../src/x509/pem.js'
import { newSerial } from '../../src/x509/serial.js'
import { benchConfig, TRUST_DOMAIN, type Obj } from '../lib/certbound.js'
import { workloadKeys } from '../lib/csr.js'
import { client, sendOk } from '../lib/http.js'
import { closedLoop, sizeFor, syncRate } from '../lib/measure.js'
import { ratio, type Report } from '../lib/report.js'
import type { CryptoLimits } from './crypto.js'

/**
 * Section 2: issuance in this process, on one core, without HTTP or TLS: CSR parse and
 * signature check, policy, certificate build and signature, and the commit with its audit event
 * (the server's own `Authority.enroll`, on a real SQLite file at the configured durability).
 *
 * The only part of the bench that calls the CA's internals (everything else goes through the
 * HTTP API): when the storage port or the Authority's commands change, adapt this file alone.
 */

const CONCURRENCY = 16

export async function inProcessSection(
  report: Report,
  limits: CryptoLimits,
  opts: { seconds: number; maxRequests: number; overrides: Obj },
): Promise<void> {
  const S = '2. in-process issuance (one core, no HTTP)'
  const dir = mkdtempSync(join(tmpdir(), 'certbound-bench-inproc-'))
  const config = configFromObject({
    ...benchConfig(join(dir, 'data'), 0, opts.overrides),
    log_level: 'silent',
  })
  const running = await startServer(config, { logger: pino({ level: 'silent' }) })
  try {
    const { store, ca } = running
    const crl = new CrlPublisher({
      store,
      clock: systemClock,
      ca,
      validityMs: config.crl.validityMs,
    })
    const authority = new Authority({ config, store, clock: systemClock, ca, crl })
    // Entries and join tokens through the admin API (setup, not measured).
    const admin = client({
      ca: ca.bundlePem,
      cert: readFileSync(join(config.dataDir, 'admin/admin.pem'), 'utf8'),
      key: readFileSync(join(config.dataDir, 'admin/admin-key.pem'), 'utf8'),
    })
    const ids = await Promise.all(
      Array.from({ length: CONCURRENCY }, (_, i) =>
        sendOk(admin, `${running.url}/v1/entries`, {
          json: { spiffe_id: `spiffe://${TRUST_DOMAIN}/bench/inproc-${i}` },
        }).then((r) => r.id as string),
      ),
    )
    const prepare = async (n: number) => {
      const tokens: string[] = []
      for (let i = 0; i < n; i += 8)
        tokens.push(
          ...(await Promise.all(
            Array.from({ length: Math.min(8, n - i) }, (_, k) =>
              sendOk(admin, `${running.url}/v1/entries/${ids[(i + k) % ids.length]}/join-tokens`, {
                json: {},
              }).then((r) => r.token as string),
            ),
          )),
        )
      const keys = await workloadKeys(n, () => ({}))
      return { tokens, csrs: keys.map((k) => k.csrPem) }
    }
    const run = async (n: number) => {
      const { tokens, csrs } = await prepare(n)
      const cpu0 = process.cpuUsage()
      const r = await closedLoop(n, CONCURRENCY, async (i) => {
        const grant = await authority.authenticateJoinToken(tokens[i]!)
        await authority.enroll(grant, { csr: pemToDer(csrs[i]!, 'CERTIFICATE REQUEST') })
      })
      const cpu = process.cpuUsage(cpu0)
      return { ...r, cpuUs: (cpu.user + cpu.system) / n }
    }
    const warm = await run(100)
    const n = sizeFor(warm.perSecond, opts.seconds, 200, opts.maxRequests)
    const full = await run(n)
    report.add({
      section: S,
      name: 'enroll: parse+verify+policy+build+sign+commit+audit',
      value: full.perSecond,
      unit: '/s',
      p50Ms: full.p50,
      p99Ms: full.p99,
      cpuUs: full.cpuUs,
      ratio: { value: ratio(full.perSecond, limits.issuance), to: 'the issuance crypto limit' },
      note: `${n} issuances, ${CONCURRENCY} in flight, synchronous=${config.database.synchronous}`,
    })

    // Reference column: the plain pkijs parse + build + sign, no policy, no database.
    const csrs = (await workloadKeys(64, () => ({}))).map((k) => k.csrPem)
    const pkijsRate = syncRate((i) => {
      const csr = parseCsr(csrs[i % csrs.length]!)
      buildCertificate({
        profile: 'leaf',
        subject: { organization: TRUST_DOMAIN },
        publicKey: csr.publicKey,
        serial: newSerial(),
        notBefore: new Date(),
        notAfter: new Date(Date.now() + 3_600_000),
        uris: [`spiffe://${TRUST_DOMAIN}/bench/ref`],
        issuer: ca.issuer,
      })
    }, opts.seconds * 500)
    report.add({
      section: S,
      name: 'reference: pkijs CSR parse + certificate build + sign',
      value: pkijsRate,
      unit: '/s',
      ratio: { value: ratio(pkijsRate, limits.issuance), to: 'the issuance crypto limit' },
    })
    await admin.close()
  } finally {
    await running.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
