import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, fetch } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestServer } from '../helpers/server.js'
import { readOut, runAgent, removeTempDirs, tempDir } from '../helpers/agent.js'

// The examples run as written: examples/protected-api.ts (its own certificate from an agent
// directory), examples/client.ts (certbound/client) and examples/ci-runner.sh (agent --once
// before each step, then curl), against a real CA.

const ROOT = join(import.meta.dirname, '../..')
let s: TestServer
let dir: string
let bundle: string
let api: ReturnType<typeof spawn> | undefined
let apiUrl: string

/** Runs a command to completion without blocking this process (the CA runs in it). */
function exec(cmd: string, args: string[], env: Record<string, string | undefined> = {}) {
  return new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('close', (status) => resolve({ status, stdout, stderr }))
  })
}

async function enrol(name: string, extra: string[] = [], entry: Record<string, unknown> = {}) {
  const spiffeId = `spiffe://example.org/${name}`
  const token = await s.joinToken(await s.createEntry(spiffeId, entry))
  const out = join(dir, name.replaceAll('/', '-'))
  const args = ['--server', s.url, '--ca-bundle', bundle, '--spiffe-id', spiffeId, '--out', out]
  const r = await runAgent([...args, ...extra, '--join-token', token, '--once'])
  expect(r.code, r.stderr).toBe(0)
  return out
}

beforeAll(async () => {
  s = await TestServer.start()
  dir = tempDir('examples')
  bundle = join(dir, 'bundle.pem')
  writeFileSync(bundle, s.bundlePem)
  const apiOut = await enrol('api', ['--dns', 'localhost'], { dns_names: ['localhost'] })
  api = spawn(process.execPath, ['--import', 'tsx', 'examples/protected-api.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      CERTBOUND_DIR: apiOut,
      CERTBOUND_SERVER: s.url,
      CERTBOUND_ISSUER: s.config.tokens.issuer,
      CERTBOUND_ONLINE: '1',
      PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  apiUrl = await new Promise<string>((resolve, reject) => {
    let out = ''
    api!.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d
      const m = /listening on (https:\/\/localhost:\d+)/.exec(out)
      if (m) resolve(`${m[1]}/api/hello`)
    })
    api!.on('exit', (code) => reject(new Error(`protected-api exited with ${code}: ${out}`)))
  })
})

afterAll(async () => {
  if (api && api.exitCode === null) {
    const exited = new Promise((r) => api!.on('exit', r))
    api.kill('SIGTERM')
    await exited
  }
  await s?.close()
  removeTempDirs()
})

describe('examples', () => {
  it('client.ts calls protected-api.ts with its certificate and bound token', async () => {
    const out = await enrol('client')
    const r = await exec(process.execPath, ['--import', 'tsx', 'examples/client.ts', apiUrl], {
      CERTBOUND_DIR: out,
    })
    expect(r.status, r.stderr).toBe(0)
    const [status, body] = [r.stdout.slice(0, 3), JSON.parse(r.stdout.slice(4))]
    expect(status).toBe('200')
    expect(body).toEqual({
      hello: 'spiffe://example.org/client',
      'x5t#S256': readOut(out).thumbprint,
      certificate: 'tls',
    })

    // The same certificate without the token, and the token without the certificate: 401.
    const creds = readOut(out)
    const withCert = new Agent({
      connect: { ca: s.bundlePem, cert: creds.chainPem, key: creds.keyPem },
    })
    const noCert = new Agent({ connect: { ca: s.bundlePem } })
    try {
      const a = await fetch(apiUrl, { dispatcher: withCert })
      expect(a.status).toBe(401)
      expect(a.headers.get('www-authenticate')).toMatch(/^Bearer realm="example-api"/)
      const b = await fetch(apiUrl, {
        dispatcher: noCert,
        headers: { authorization: `Bearer ${creds.token.access_token}` },
      })
      expect(b.status).toBe(401)
      expect(b.headers.get('www-authenticate')).toContain('error="invalid_token"')
    } finally {
      await Promise.all([withCert.close(), noCert.close()])
    }
  })

  it('ci-runner.sh enrols on its first run, then works from the directory; a revoked certificate stops it', async () => {
    const spiffeId = 'spiffe://example.org/ci/runner'
    const joinFile = join(dir, 'runner.join')
    writeFileSync(joinFile, await s.joinToken(await s.createEntry(spiffeId)))
    const out = join(dir, 'runner')
    const env = {
      CERTBOUND_SERVER: s.url,
      CERTBOUND_BUNDLE: bundle,
      CERTBOUND_SPIFFE_ID: spiffeId,
      CERTBOUND_OUT: out,
      API_URL: apiUrl,
    }
    const run = (extra: Record<string, string> = {}) =>
      exec('bash', ['examples/ci-runner.sh'], { ...env, ...extra })

    const first = await run({ CERTBOUND_JOIN_TOKEN_FILE: joinFile })
    expect(first.status, first.stderr).toBe(0)
    expect(first.stdout).toContain(`"hello":"${spiffeId}"`)
    expect(first.stdout).toMatch(/"active":true,.*"sub":"spiffe:\/\/example\.org\/ci\/runner"/)

    const again = await run() // no join token: the certificate in CERTBOUND_OUT is re-used
    expect(again.status, again.stderr).toBe(0)
    expect(again.stdout).toContain(`"hello":"${spiffeId}"`)

    const { serial } = readOut(out)
    await s.call('POST', `/v1/certificates/${serial}/revoke`, { as: s.admin, json: {} })
    const revoked = await run()
    expect(revoked.status).toBe(3)
    expect(revoked.stdout).not.toContain('"hello"') // step 2 never ran
    expect(revoked.stderr).toMatch(/certbound agent: the server refused the certificate .*revoked/)
  })
})
