/**
 * `npm run bench`: throughput of the hot paths, reported as ratios to the crypto limit
 * measured in the same run on the same machine (never as absolute timed assertions).
 * The server runs as a separate process; the driver is undici with client certificates
 * (wrk/h2load cannot present them). Loopback only, bounded request counts.
 */
import { spawn } from 'node:child_process'
import { sign, verify } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT } from 'jose'
import { Agent, request } from 'undici'
import { generateKeyPair } from '../src/crypto/keys.js'
import { buildCsr } from '../src/x509/csr-builder.js'
import { parseCsr } from '../src/x509/csr.js'
import { buildCertificate } from '../src/x509/certificate.js'
import { newSerial } from '../src/x509/serial.js'

const CONCURRENCY = 16

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

async function perSecond(
  n: number,
  fn: (i: number) => Promise<unknown>,
  concurrency = CONCURRENCY,
): Promise<number> {
  let next = 0
  const started = performance.now()
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) await fn(next++)
    }),
  )
  return n / ((performance.now() - started) / 1000)
}

function syncPerSecond(n: number, fn: () => void): number {
  const started = performance.now()
  for (let i = 0; i < n; i++) fn()
  return n / ((performance.now() - started) / 1000)
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-bench-'))
  const port = await freePort()
  const configFile = join(dir, 'ca-config.yaml')
  writeFileSync(
    configFile,
    `trust_domain: example.org\ndata_dir: ./data\nlog_level: warn\ndatabase:\n  synchronous: ${process.env.BENCH_SYNC ?? 'FULL'}\nserver:\n  listen: 127.0.0.1:${port}\n`,
  )
  const server = spawn(
    process.execPath,
    [
      ...(process.env.BENCH_PROF ? ['--cpu-prof', '--cpu-prof-dir', process.env.BENCH_PROF] : []),
      '--import',
      'tsx',
      'src/cli/index.ts',
      'serve',
      '--config',
      configFile,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  const base = `https://127.0.0.1:${port}`
  try {
    const data = join(dir, 'data')
    for (let i = 0; !existsSync(join(data, 'admin/admin.pem')); i++) {
      if (i > 150) throw new Error('the server did not initialise')
      await new Promise((r) => setTimeout(r, 200))
    }
    const ca = readFileSync(join(data, 'ca/bundle.pem'), 'utf8').toString()
    const admin = new Agent({
      connect: {
        ca,
        cert: readFileSync(join(data, 'admin/admin.pem')),
        key: readFileSync(join(data, 'admin/admin-key.pem')),
      },
    })
    const call = async (
      path: string,
      init: {
        method?: string
        body?: string
        headers?: Record<string, string>
        dispatcher?: Agent
      },
    ) => {
      const r = await request(`${base}${path}`, {
        method: (init.method ?? 'GET') as 'GET',
        body: init.body,
        headers: init.headers,
        dispatcher: init.dispatcher,
      })
      const text = await r.body.text()
      if (r.statusCode >= 300) throw new Error(`${path}: ${r.statusCode} ${text}`)
      return text ? JSON.parse(text) : undefined
    }
    const json = (body: unknown) => ({
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    })
    // Wait for the server (first start initialises the CA).
    for (let i = 0; ; i++) {
      try {
        await call('/healthz', { dispatcher: admin })
        break
      } catch (e) {
        if (i > 100) throw e
        await new Promise((r) => setTimeout(r, 200))
      }
    }

    // Crypto limits, measured here: what one core can do for the same work.
    const keys = await generateKeyPair('ec-p256')
    const csrPem = buildCsr({
      privateKey: keys.privateKey,
      publicKey: keys.publicKey,
      uris: ['spiffe://example.org/bench/0'],
    })
    const caKeys = await generateKeyPair('ec-p256')
    const data32 = Buffer.alloc(32, 7)
    const signVerify = syncPerSecond(2000, () =>
      verify('sha256', data32, keys.publicKey, sign('sha256', data32, keys.privateKey)),
    )
    const issuerDer = buildCertificate({
      profile: 'root',
      subject: { organization: 'bench' },
      publicKey: caKeys.publicKey,
      serial: newSerial(),
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 3_600_000),
      selfPrivateKey: caKeys.privateKey,
    })
    const parseAndSign = syncPerSecond(1000, () => {
      const csr = parseCsr(csrPem)
      buildCertificate({
        profile: 'leaf',
        subject: { organization: 'example.org' },
        publicKey: csr.publicKey,
        serial: newSerial(),
        notBefore: new Date(),
        notAfter: new Date(Date.now() + 3_600_000),
        uris: ['spiffe://example.org/bench/0'],
        issuer: { certDer: issuerDer, privateKey: caKeys.privateKey },
      })
    })
    const jwtKey = keys.privateKey
    let jwtPerSecond = 0
    {
      const started = performance.now()
      for (let i = 0; i < 2000; i++)
        await new SignJWT({ a: i }).setProtectedHeader({ alg: 'ES256' }).sign(jwtKey)
      jwtPerSecond = 2000 / ((performance.now() - started) / 1000)
    }

    // Enrolment over HTTPS: one entry + join token per request, created beforehand.
    const N_ENROLL = 400
    const tokens: string[] = []
    for (let i = 0; i < N_ENROLL; i++) {
      const entry = await call('/v1/entries', {
        ...json({ spiffe_id: `spiffe://example.org/bench/${i}` }),
        dispatcher: admin,
      })
      tokens.push(
        (await call(`/v1/entries/${entry.id}/join-tokens`, { method: 'POST', dispatcher: admin }))
          .token,
      )
    }
    const csrs = await Promise.all(
      tokens.map(async (_t, i) => {
        const k = await generateKeyPair('ec-p256')
        return {
          keyPem: k.privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
          csr: buildCsr({
            privateKey: k.privateKey,
            publicKey: k.publicKey,
            uris: [`spiffe://example.org/bench/${i}`],
          }),
        }
      }),
    )
    const anon = new Agent({ connect: { ca } })
    const issued: { cert: string; key: string }[] = []
    const enrollRate = await perSecond(N_ENROLL, async (i) => {
      const r = await call('/v1/enroll', {
        ...json({ csr: csrs[i]!.csr }),
        headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[i]}` },
        dispatcher: anon,
      })
      issued[i] = { cert: r.chain, key: csrs[i]!.keyPem }
    })

    // Tokens over mTLS: client_credentials, then introspection, per client certificate.
    const clients = issued
      .slice(0, CONCURRENCY)
      .map((c) => new Agent({ connect: { ca, cert: c.cert, key: c.key } }))
    const form = (body: Record<string, string>, i: number) => ({
      method: 'POST',
      body: new URLSearchParams(body).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      dispatcher: clients[i % clients.length],
    })
    const N_TOKEN = 2000
    const accessTokens: string[] = []
    const tokenRate = await perSecond(N_TOKEN, async (i) => {
      accessTokens[i] = (
        await call('/oauth/token', form({ grant_type: 'client_credentials' }, i))
      ).access_token
    })
    const introspectRate = await perSecond(N_TOKEN, async (i) => {
      const r = await call('/oauth/introspect', form({ token: accessTokens[i]! }, i))
      if (!r.active) throw new Error('token inactive')
    })
    const healthRate = await perSecond(N_TOKEN, () => call('/healthz', { dispatcher: clients[0] }))

    const rows = [
      ['crypto limit: ECDSA P-256 sign+verify (1 core, in-process)', signVerify, ''],
      ['crypto limit: CSR parse+verify + certificate build+sign (1 core)', parseAndSign, ''],
      ['crypto limit: jose SignJWT ES256 (1 core)', jwtPerSecond, ''],
      ['HTTPS GET /healthz over mTLS keep-alive', healthRate, ''],
      [
        `POST /v1/enroll (CSR → certificate, SQLite synchronous=${process.env.BENCH_SYNC ?? 'FULL'})`,
        enrollRate,
        `${((enrollRate / parseAndSign) * 100).toFixed(0)}% of the issuance crypto limit`,
      ],
      [
        'POST /oauth/token client_credentials (mTLS, DB check, sign, commit)',
        tokenRate,
        `${((tokenRate / jwtPerSecond) * 100).toFixed(0)}% of the JWT signing limit`,
      ],
      [
        'POST /oauth/introspect (mTLS, verify JWT, DB state)',
        introspectRate,
        `${((introspectRate / healthRate) * 100).toFixed(0)}% of a bare mTLS request`,
      ],
    ] as const
    console.log(
      `certbound bench: ${CONCURRENCY} concurrent clients on loopback, server in its own process (2-core machine)\n`,
    )
    for (const [name, rate, ratio] of rows)
      console.log(`${name.padEnd(72)} ${rate.toFixed(0).padStart(7)}/s  ${ratio}`)
    await Promise.all([admin.close(), anon.close(), ...clients.map((c) => c.close())])
  } finally {
    server.kill('SIGTERM')
    await new Promise((r) => server.once('exit', r))
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
