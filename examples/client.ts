/**
 * A Node workload calling the protected API with `@certbound/client`: every request presents
 * the agent's current certificate (mTLS) and the access token bound to it, and a rotation by
 * the agent is followed without a restart. From the repository root, with the CA, the API
 * (examples/protected-api.ts) and the client's agent running:
 *
 *   npm run -s certbound -- agent --server https://localhost:8443 --ca-bundle data/ca/bundle.pem \
 *     --spiffe-id spiffe://example.org/client --out walk/client --join-token-file walk/client.join &
 *   npx tsx examples/client.ts https://localhost:8444/api/hello
 *
 * Environment: CERTBOUND_DIR [walk/client]; REPEAT [1] calls, INTERVAL [2000] ms apart (run
 * with REPEAT=30 across a few rotations of a short-lived certificate to watch it follow them).
 * Exits non-zero if a call does not answer 2xx.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { createBoundFetch } from '@certbound/client'

const url = process.argv[2] ?? 'https://localhost:8444/api/hello'
const repeat = Number(process.env.REPEAT ?? 1)
const interval = Number(process.env.INTERVAL ?? 2_000)

const api = await createBoundFetch({
  dir: process.env.CERTBOUND_DIR || 'walk/client',
  onReload: (g) => console.error(`client: rotated to certificate ${g.certificate.serialNumber}`),
})
try {
  for (let i = 1; i <= repeat; i++) {
    const res = await api.fetch(url)
    console.log(`${res.status} ${await res.text()}`)
    if (!res.ok) process.exitCode = 1
    if (i < repeat) await sleep(interval)
  }
} finally {
  await api.close()
}
