import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { once } from 'node:events'
import { connect } from 'node:tls'
import { promisify } from 'node:util'
import { CaServerTrust } from '@certbound/verifier/mtls'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { CaSet } from '../../src/ca/ca-set.js'
import { AgentProcess, agentArgs, readOut, removeTempDirs, tempDir } from '../helpers/agent.js'
import { tempFiles } from '../helpers/ca.js'
import { curlOcsp, ocspRequest, readOcspResponse } from '../helpers/ocsp.js'
import { openssl, verifyLeaf } from '../helpers/openssl.js'
import { sleep, TestServer } from '../helpers/server.js'

const ROOT = new URL('../..', import.meta.url).pathname

/** `certbound ca …` as a real process with a config file naming the server's data_dir and database. */
async function caCli(s: TestServer, args: string[]): Promise<{ code: number; out: string }> {
  const config = join(s.dataDir, '..', `${s.dataDir.split('/').pop()}-cli.yaml`)
  const db = s.databaseUrl ? `database:\n  url: ${JSON.stringify(s.databaseUrl)}\n` : ''
  writeFileSync(
    config,
    `trust_domain: example.org\ndata_dir: ${s.dataDir}\n${db}log_level: silent\n`,
  )
  try {
    const r = await promisify(execFile)(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', '--config', config, 'ca', ...args],
      { cwd: ROOT },
    )
    return { code: 0, out: r.stdout + r.stderr }
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string }
    return { code: err.code, out: err.stdout + err.stderr }
  }
}

async function get(s: TestServer, path: string): Promise<Buffer> {
  const r = await request(`${s.url}${path}`, { dispatcher: s.agent() })
  expect(r.statusCode, path).toBe(200)
  return Buffer.from(await r.body.arrayBuffer())
}

const keyIdOf = (pem: string) =>
  openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier'], pem)
    .out.split('\n')[1]!
    .trim()
    .replace(/:/g, '')
    .toLowerCase()

/** Key id of the CA that issued the TLS certificate the server presents now. */
async function servedIssuer(s: TestServer): Promise<string> {
  const socket = connect({
    host: '127.0.0.1',
    port: s.running.address.port,
    ca: s.bundlePem,
    servername: 'localhost',
  })
  await once(socket, 'secureConnect')
  const cert = socket.getPeerX509Certificate()!
  socket.destroy()
  const aki = openssl(['x509', '-noout', '-ext', 'authorityKeyIdentifier'], cert.toString()).out
  return /([0-9A-F:]{59})/.exec(aki)![1]!.replace(/:/g, '').toLowerCase()
}

function crlVerifies(der: Uint8Array, caPem: string): string {
  const f = tempFiles({ 'crl.der': der, 'ca.pem': caPem })
  const r = openssl([
    'crl',
    '-inform',
    'DER',
    '-in',
    f['crl.der']!,
    '-CAfile',
    f['ca.pem']!,
    '-verify',
    '-noout',
    '-text',
  ])
  expect(r.out).toContain('verify OK')
  return r.out
}

describe('CA rotation: certbound ca rotate', () => {
  let s: TestServer
  let oldPem: string
  beforeAll(async () => {
    s = await TestServer.start()
    oldPem = s.intermediatePem
  })
  afterAll(async () => {
    await s.close()
    removeTempDirs()
  })

  it('new certificates chain to the new issuer; old ones, their CRL and OCSP stay served; the agent renews into the new chain', async () => {
    const w = {
      spiffeId: 'spiffe://example.org/rotation/agent',
      out: join(tempDir('rotation'), 'out'),
    }
    const joinToken = await s.joinToken(await s.createEntry(w.spiffeId))
    const agent = new AgentProcess([
      ...agentArgs(s, w.spiffeId, w.out),
      '--join-token',
      joinToken,
      '--ttl',
      '20s',
    ])
    try {
      await agent.waitFor((l) => l.msg === 'enrolled')
      const old = await s.enroll('spiffe://example.org/rotation/old')
      const oldKeyId = keyIdOf(oldPem)
      // A new client each time (a client caches the CRL it fetched).
      const viaTrust = async () => {
        const trust = new CaServerTrust({ ca: s.bundlePem })
        const d = new Agent({ connect: trust.connector() })
        try {
          const r = await request(`${s.url}/healthz`, { dispatcher: d })
          return r.statusCode
        } finally {
          await d.close()
        }
      }
      expect(await viaTrust()).toBe(200)

      const rotated = await caCli(s, ['rotate'])
      const linesAtRotation = agent.lines.length
      expect(rotated.code, rotated.out).toBe(0)
      const result = JSON.parse(rotated.out)
      expect(result.previous).toBe(oldKeyId)
      // Every process adopts it on its next maintenance tick; this one right now, so that its
      // TLS certificate is still the previous issuer's (the leader re-issues it on its tick).
      expect(await (s.running.ca as CaSet).reload()).toBe(true)
      const current = keyIdOf(
        new X509Certificate(await get(s, '/v1/ca/intermediate.crt')).toString(),
      )
      expect(current).toBe(result.key_id)
      // Clients check the server against the CRL of its certificate's own issuer, not /v1/crl.
      expect(await servedIssuer(s)).toBe(oldKeyId)
      expect(await viaTrust()).toBe(200)
      const newPem = new X509Certificate(await get(s, '/v1/ca/intermediate.crt')).toString()

      // New certificates: the new issuer, its CDP; the chain in the response says so.
      const fresh = await s.enroll('spiffe://example.org/rotation/new')
      expect(fresh.chainPem).toContain(newPem.trim().split('\n')[1])
      expect(verifyLeaf(fresh.certPem, s.bundlePem, newPem).code).toBe(0)
      expect(openssl(['x509', '-noout', '-text'], fresh.certPem).out).toContain(
        `/v1/ca/${result.key_id}/crl`,
      )
      // Old certificates still verify, still work over mTLS (renewal lands in the new chain).
      expect(verifyLeaf(old.certPem, s.bundlePem, oldPem).code).toBe(0)
      const renewed = await s.renew(old)
      expect(renewed.status, renewed.text).toBe(201)
      expect(verifyLeaf(renewed.credential!.certPem, s.bundlePem, newPem).code).toBe(0)

      // The old issuer's CRL lists its revoked certificates; the new one's does not.
      const revoked = await s.enroll('spiffe://example.org/rotation/revoked-after')
      expect(verifyLeaf(revoked.certPem, s.bundlePem, newPem).code).toBe(0)
      const victim = old
      expect(
        (
          await s.call('POST', `/v1/certificates/${victim.serial}/revoke`, {
            as: s.admin,
            json: { reason: 'superseded' },
          })
        ).status,
      ).toBe(200)
      const oldCrl = crlVerifies(await get(s, `/v1/ca/${oldKeyId}/crl`), s.bundlePem + oldPem)
      expect(oldCrl).toContain(victim.serial.toUpperCase())
      const newCrl = crlVerifies(await get(s, '/v1/crl'), s.bundlePem + newPem)
      expect(newCrl).not.toContain(victim.serial.toUpperCase())
      expect((await get(s, `/v1/ca/${result.key_id}/crl`)).equals(await get(s, '/v1/crl'))).toBe(
        true,
      )
      // OCSP: the old issuer answers for its certificates, the new one for its own.
      const t = { bundlePem: s.bundlePem, issuerPem: oldPem }
      const o = readOcspResponse(
        (await curlOcsp(s.url, s.bundlePem, ocspRequest(victim.certPem, oldPem))).der,
        t,
      )
      expect(o.out).toContain('Response verify OK')
      expect(o.out).toMatch(/Cert Status: revoked/)
      const n = readOcspResponse(
        (await curlOcsp(s.url, s.bundlePem, ocspRequest(fresh.certPem, newPem))).der,
        { bundlePem: s.bundlePem, issuerPem: newPem },
      )
      expect(n.out).toContain('Response verify OK')
      expect(n.out).toMatch(/Cert Status: good/)

      // The agent renews into the new chain without a restart.
      const renewal = await agent.waitFor(
        (l) => l.msg === 'renewed the certificate',
        40_000,
        linesAtRotation,
      )
      await agent.waitFor(
        (l) => l.msg === 'switched to a new generation' && l.serial === renewal.serial,
        10_000,
        linesAtRotation,
      )
      const files = readOut(w.out)
      expect(files.chainPem).toContain(newPem.trim().split('\n')[1])
      expect(verifyLeaf(files.certPem, s.bundlePem, newPem).code).toBe(0)

      // The server's own TLS certificate moves to the new issuer, and clients still accept it.
      let serverIssuer = ''
      for (let i = 0; i < 60 && serverIssuer !== result.key_id; i++) {
        serverIssuer = await servedIssuer(s)
        if (serverIssuer !== result.key_id) await sleep(500)
      }
      expect(serverIssuer).toBe(result.key_id)
      expect(await viaTrust()).toBe(200)
    } finally {
      agent.kill('SIGTERM')
    }
  })

  it('the root CRL lists the issuing CAs it revoked and verifies with the root', async () => {
    const root = await get(s, `/v1/ca/${keyIdOf(s.bundlePem)}/crl`)
    const text = crlVerifies(root, s.bundlePem)
    expect(text).toContain('No Revoked Certificates.')
    expect(
      (await get(s, `/v1/ca/${keyIdOf(s.bundlePem)}.crt`)).equals(
        new X509Certificate(s.bundlePem).raw,
      ),
    ).toBe(true)
    expect((await s.call('GET', '/v1/ca/00ff/crl')).status).toBe(404)
    expect((await s.call('GET', '/v1/ca/nothex.crt')).status).toBe(404)
  })
})
