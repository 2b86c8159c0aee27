import { createPublicKey } from 'node:crypto'
import {
  lstatSync,
  readFileSync,
  readlinkSync,
  readdirSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openssl, verifyLeaf } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import {
  AgentProcess,
  agentArgs,
  closedPort,
  readOut,
  runAgent,
  removeTempDirs,
  tempDir,
  verifyAccessToken,
} from '../helpers/agent.js'

// `certbound agent` as a real child process against a real server: first boot, restarts, and
// the --once exit codes.

let s: TestServer
let n = 0

beforeAll(async () => {
  s = await TestServer.start()
})
afterAll(async () => {
  await s?.close()
  removeTempDirs()
})

/** A fresh identity with an entry and a join token, and an empty output directory. */
async function workload(name = `w${++n}`) {
  const spiffeId = `spiffe://example.org/agent/${name}`
  const entryId = await s.createEntry(spiffeId)
  const joinToken = await s.joinToken(entryId)
  const dir = tempDir(name)
  const out = join(dir, 'out')
  return { spiffeId, entryId, joinToken, dir, out, args: agentArgs(s, spiffeId, out) }
}

const mode = (path: string) => statSync(path).mode & 0o777

function pubkeyOf(args: string[]): string {
  const r = openssl(args)
  expect(r.code, r.out).toBe(0)
  return r.out
}

function lastLine(stderr: string): string {
  return stderr.trim().split('\n').at(-1)!
}

describe('first boot', () => {
  it('enrols with the join token and publishes a matching cert, key, chain, bundle and bound token', async () => {
    const w = await workload()
    const tokenFile = join(w.dir, 'join-token')
    writeFileSync(tokenFile, `${w.joinToken}\n`, { mode: 0o600 })
    const hook = join(w.dir, 'hook.txt')
    const exec = `printf '%s %s' "$CERTBOUND_SERIAL" "$CERTBOUND_OUT" > ${hook}`
    const r = await runAgent([...w.args, '--join-token-file', tokenFile, '--once', '--exec', exec])
    expect(r.code, r.stderr).toBe(0)

    // Layout: stable links into ..data, which points at a complete generation.
    for (const f of ['cert.pem', 'key.pem', 'chain.pem', 'bundle.pem', 'token.json']) {
      expect(lstatSync(join(w.out, f)).isSymbolicLink()).toBe(true)
      expect(readlinkSync(join(w.out, f))).toBe(`..data/${f}`)
    }
    const generation = readlinkSync(join(w.out, '..data'))
    expect(generation).toMatch(/^\.\.\d{8}T\d{9}Z-[0-9a-f]{8}$/)
    expect(mode(join(w.out, 'key.pem'))).toBe(0o600)
    expect(mode(join(w.out, 'token.json'))).toBe(0o600)
    expect(mode(join(w.out, '..state'))).toBe(0o700)
    expect(mode(join(w.out, '..state/agent.json'))).toBe(0o600)

    // openssl, independently: the certificate carries the SPIFFE ID, chains to the CA, and its
    // public key is the key file's.
    const files = readOut(w.out)
    const certPub = pubkeyOf(['x509', '-in', join(w.out, 'cert.pem'), '-noout', '-pubkey'])
    const keyPub = pubkeyOf(['pkey', '-in', join(w.out, 'key.pem'), '-pubout'])
    expect(certPub).toBe(keyPub)
    expect(createPublicKey(files.keyPem).asymmetricKeyDetails?.namedCurve).toBe('prime256v1')
    expect(
      openssl(['x509', '-in', join(w.out, 'cert.pem'), '-noout', '-ext', 'subjectAltName']).out,
    ).toContain(`URI:${w.spiffeId}`)
    expect(verifyLeaf(files.certPem, s.bundlePem, s.intermediatePem).code).toBe(0)
    expect(files.chainPem).toBe(`${files.certPem.trim()}\n${s.intermediatePem.trim()}\n`)
    expect(files.bundlePem.trim()).toBe(s.bundlePem.trim())

    // token.json: a JWT that verifies against the server's JWKS, bound to cert.pem.
    expect(files.token.token_type).toBe('Bearer')
    expect(files.token['x5t#S256']).toBe(files.thumbprint)
    const claims = await verifyAccessToken(s, files.token.access_token!)
    expect(claims.sub).toBe(w.spiffeId)
    expect((claims.cnf as Record<string, string>)['x5t#S256']).toBe(files.thumbprint)
    expect(new Date(files.token.expires_at!).getTime()).toBe(claims.exp! * 1000)

    // The join token is spent; no secret reached the logs.
    const again = await s.call('POST', '/v1/enroll', {
      headers: { authorization: `Bearer ${w.joinToken}` },
      json: { csr: 'x' },
    })
    expect(again.status).toBe(401)
    const state = JSON.parse(readFileSync(join(w.out, '..state/agent.json'), 'utf8'))
    expect(typeof state.refresh_token).toBe('string')
    const keyBody = files.keyPem.split('\n')[1]!
    for (const secret of [w.joinToken, files.token.access_token!, state.refresh_token, keyBody]) {
      expect(r.stderr).not.toContain(secret)
    }
    expect(r.lines.some((l) => l.msg === 'enrolled' && l.serial === files.serial)).toBe(true)
    // --exec ran after the switch, with the new serial and the output directory.
    expect(readFileSync(hook, 'utf8')).toBe(`${files.serial} ${w.out}`)
  })
})

describe('restart', () => {
  it('re-uses the certificate in --out: --once keeps the serial, refreshes the token, ignores a spent join token', async () => {
    const w = await workload()
    expect((await runAgent([...w.args, '--join-token', w.joinToken, '--once'])).code).toBe(0)
    const first = readOut(w.out)

    // No join token: renewal is not due, so the same certificate; the token is refreshed.
    const r = await runAgent([...w.args, '--once'])
    expect(r.code, r.stderr).toBe(0)
    const second = readOut(w.out)
    expect(second.serial).toBe(first.serial)
    expect(second.keyPem).toBe(first.keyPem)
    expect(second.token.access_token).not.toBe(first.token.access_token)
    expect(second.token['x5t#S256']).toBe(first.thumbprint)
    expect(r.lines.some((l) => l.grant === 'refresh_token')).toBe(true)
    expect(r.lines.some((l) => l.msg === 'enrolled')).toBe(false)

    // The spent join token again: a valid certificate is there, so it is not used at all.
    const r2 = await runAgent([...w.args, '--join-token', w.joinToken, '--once'])
    expect(r2.code, r2.stderr).toBe(0)
    expect(readOut(w.out).serial).toBe(first.serial)

    // Old generations are pruned: the current one and the one before it stay.
    expect(readdirSync(w.out).filter((e) => /^\.\.\d/.test(e))).toHaveLength(2)

    // The long-running mode restarts on the same certificate too, and stops cleanly.
    const agent = new AgentProcess(w.args)
    await agent.waitFor((l) => l.msg === 'switched to a new generation')
    expect(readOut(w.out).serial).toBe(first.serial)
    agent.kill('SIGTERM')
    expect(await agent.exited).toBe(0)
  })
})

describe('--once exit codes', () => {
  it('server down: non-zero with a one-line reason', async () => {
    const w = await workload()
    expect((await runAgent([...w.args, '--join-token', w.joinToken, '--once'])).code).toBe(0)
    const before = readOut(w.out)
    const port = await closedPort()
    const args = agentArgs(s, w.spiffeId, w.out, `https://127.0.0.1:${port}`)
    const r = await runAgent([...args, '--once'])
    expect(r.code).toBe(1)
    expect(lastLine(r.stderr)).toMatch(
      /^certbound agent: token: cannot reach https:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED/,
    )
    // Each attempt logged; the published files are untouched.
    expect(r.lines.filter((l) => l.step === 'token' && l.level === 40)).toHaveLength(3)
    expect(readOut(w.out).token.access_token).toBe(before.token.access_token)

    // The refresh token was spent by the failed attempt (it may have reached a server): the next
    // run never sends it again, it falls back to client_credentials.
    const back = await runAgent([...w.args, '--once'])
    expect(back.code, back.stderr).toBe(0)
    expect(back.lines.filter((l) => l.grant !== undefined).map((l) => l.grant)).toEqual([
      'client_credentials',
    ])
  })

  it('expired certificate: exits 3 naming the expiry; a new join token enrols again', async () => {
    const w = await workload()
    // Long enough for the first run to enrol and fetch its token even on a loaded machine.
    const first = await runAgent([...w.args, '--join-token', w.joinToken, '--ttl', '8s', '--once'])
    expect(first.code, first.stderr).toBe(0)
    const { serial, cert } = readOut(w.out)
    const expiry = Date.parse(cert.validTo) + 500 - Date.now()
    await new Promise((r) => setTimeout(r, Math.max(0, expiry)))

    const r = await runAgent([...w.args, '--once'])
    expect(r.code).toBe(3)
    expect(lastLine(r.stderr)).toMatch(
      new RegExp(
        `^certbound agent: the certificate ${serial} expired at \\S+; enrol with a new join token`,
      ),
    )
    const fresh = await s.joinToken(w.entryId)
    const r2 = await runAgent([...w.args, '--join-token', fresh, '--once'])
    expect(r2.code, r2.stderr).toBe(0)
    expect(readOut(w.out).serial).not.toBe(serial)
  })

  it('revoked certificate: exits 3 naming the reason; a new join token enrols again', async () => {
    const w = await workload()
    expect((await runAgent([...w.args, '--join-token', w.joinToken, '--once'])).code).toBe(0)
    const { serial } = readOut(w.out)
    const rev = await s.call('POST', `/v1/certificates/${serial}/revoke`, { as: s.admin, json: {} })
    expect(rev.status).toBe(200)

    const r = await runAgent([...w.args, '--once'])
    expect(r.code).toBe(3)
    expect(lastLine(r.stderr)).toMatch(
      /^certbound agent: the server refused the certificate .*revoked.*--join-token$/,
    )
    expect(readOut(w.out).serial).toBe(serial)

    const fresh = await s.joinToken(w.entryId)
    const r2 = await runAgent([...w.args, '--join-token', fresh, '--once'])
    expect(r2.code, r2.stderr).toBe(0)
    const after = readOut(w.out)
    expect(after.serial).not.toBe(serial)
    expect(after.token['x5t#S256']).toBe(after.thumbprint)
  })

  it('no certificate and no join token, a refused join token, bad flags, another identity', async () => {
    const w = await workload()
    const none = await runAgent([...w.args, '--once'])
    expect(none.code).toBe(3)
    expect(lastLine(none.stderr)).toMatch(
      /^certbound agent: no certificate in .*; enrol with a new join token \(--join-token/,
    )

    const bad = await runAgent([...w.args, '--join-token', 'not-a-real-token', '--once'])
    expect(bad.code).toBe(3)
    expect(lastLine(bad.stderr)).toMatch(/^certbound agent: the join token was refused: enrol: 401/)

    const usage = await runAgent([...w.args, '--ttl', 'soon', '--once'])
    expect(usage.code).toBe(2)
    expect(lastLine(usage.stderr)).toBe(
      'certbound agent: --ttl must be a duration such as 30s, 15m, 1h or 7d',
    )

    // The refused join token was not spent; the output directory belongs to that identity.
    expect((await runAgent([...w.args, '--join-token', w.joinToken, '--once'])).code).toBe(0)
    const other = await runAgent([
      ...agentArgs(s, 'spiffe://example.org/agent/other', w.out),
      '--once',
    ])
    expect(other.code).toBe(2)
    expect(lastLine(other.stderr)).toMatch(
      /holds a certificate that cannot be used: the certificate is for spiffe:\/\/example\.org\/agent\/w\d+, not spiffe:\/\/example\.org\/agent\/other$/,
    )
  })
})
