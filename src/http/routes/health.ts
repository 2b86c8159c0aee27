import { Hono } from 'hono'
import type { CrlPublisher } from '../../ca/crl.js'
import type { CaMaterial } from '../../ca/material.js'
import type { Clock } from '../../clock.js'
import { spkiDer } from '../../crypto/keys.js'
import type { Store } from '../../db/port.js'
import type { AppEnv } from '../mtls.js'

export interface HealthDeps {
  readonly store: Store
  readonly clock: Clock
  readonly ca: CaMaterial
  readonly crl: CrlPublisher
}

/** A check that takes longer than this has failed: a hung database is not a ready one. */
const CHECK_TIMEOUT_MS = 2_000

type Check = () => Promise<string | undefined>

/**
 * `GET /readyz`: 200 when this process can serve — the database answers, the issuing CA's key
 * is loaded and is the key of `ca/intermediate.pem`, and the stored CRL reflects every committed
 * revocation and is inside its validity window — else 503 naming what failed. `/healthz` says
 * only that the process is alive.
 */
export function healthRoutes(deps: HealthDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>()
  const checks: Record<string, Check> = {
    database: async () => {
      await deps.store.ops.schemaVersion()
      return undefined
    },
    ca_key: async () => caKeyProblem(deps.ca),
    crl: async () => crlProblem(deps),
  }
  app.get('/readyz', async (c) => {
    const names = Object.keys(checks)
    const outcomes = await Promise.all(names.map((n) => run(checks[n]!)))
    const results = Object.fromEntries(names.map((n, i) => [n, outcomes[i] ?? 'ok']))
    const ready = outcomes.every((o) => o === undefined)
    return c.json({ status: ready ? 'ready' : 'not ready', checks: results }, ready ? 200 : 503, {
      'cache-control': 'no-store',
    })
  })
  return app
}

async function run(check: Check): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS)
  })
  try {
    return await Promise.race([check(), timeout])
  } catch (e) {
    return (e as Error).message
  } finally {
    clearTimeout(timer)
  }
}

function caKeyProblem(ca: CaMaterial): string | undefined {
  const key = ca.issuer.privateKey
  if (key.type !== 'private') return 'the issuing CA private key is not loaded'
  if (!Buffer.from(spkiDer(key)).equals(Buffer.from(ca.intermediate.spkiDer)))
    return 'the loaded CA key does not match the issuing CA certificate'
  return undefined
}

async function crlProblem(deps: HealthDeps): Promise<string | undefined> {
  const status = await deps.crl.status()
  if (!status) return 'no CRL stored yet'
  if (!status.current) return 'the stored CRL misses revocations committed since it was built'
  if (deps.clock.now().getTime() >= status.nextUpdate)
    return `the stored CRL expired at ${new Date(status.nextUpdate).toISOString()}`
  return undefined
}
