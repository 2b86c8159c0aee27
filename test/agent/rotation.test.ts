import { createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestServer } from '../helpers/server.js'
import {
  AgentProcess,
  agentArgs,
  readOut,
  startReader,
  removeTempDirs,
  tempDir,
  verifyAccessToken,
} from '../helpers/agent.js'

// The long-running agent with real short-lived certificates: renewal at about 2/3 of the
// lifetime measured from receipt, the token refreshed with the new certificate, readers that
// never see a torn or mismatched pair, and backoff while the server is down.

let s: TestServer

beforeAll(async () => {
  s = await TestServer.start()
})
afterAll(async () => {
  await s?.close()
  removeTempDirs()
})

async function workload(server: TestServer, name: string) {
  const spiffeId = `spiffe://example.org/agent/${name}`
  const joinToken = await server.joinToken(await server.createEntry(spiffeId))
  const out = join(tempDir(name), 'out')
  return { spiffeId, joinToken, out, args: agentArgs(server, spiffeId, out) }
}

describe('renewal', () => {
  it('renews a 9 s certificate at about 2/3 from receipt, then refreshes the token with the new certificate', async () => {
    const w = await workload(s, 'renew')
    const hooks = join(w.out, '..', 'hooks.txt')
    const exec = `echo "$CERTBOUND_SERIAL" >> ${hooks}`
    const agent = new AgentProcess([
      ...w.args,
      '--join-token',
      w.joinToken,
      '--ttl',
      '9s',
      '--exec',
      exec,
    ])
    try {
      const enrolled = await agent.waitFor((l) => l.msg === 'enrolled')
      await agent.waitFor((l) => l.msg === 'switched to a new generation')
      const reader = startReader(w.out)
      const first = readOut(w.out)
      expect(first.serial).toBe(enrolled.serial)

      const renewed = await agent.waitFor((l) => l.msg === 'renewed the certificate', 15_000)
      const after = renewed.time! - enrolled.time!
      expect(after).toBeGreaterThan(5_000)
      expect(after).toBeLessThan(8_000)
      expect(renewed.previous_serial).toBe(first.serial)
      const index = agent.lines.indexOf(renewed)
      const token = await agent.waitFor((l) => l.msg === 'obtained an access token', 5_000, index)
      // The family was refreshed (not restarted) with the new, descendant certificate.
      expect(token.grant).toBe('refresh_token')
      const switched = await agent.waitFor(
        (l) => l.msg === 'switched to a new generation' && l.serial === renewed.serial,
        5_000,
        index,
      )
      const hookRan = agent.waitFor(
        (l) => l.msg === '--exec command succeeded',
        5_000,
        agent.lines.indexOf(switched),
      )

      const second = readOut(w.out)
      expect(second.serial).toBe(renewed.serial)
      expect(second.keyPem).not.toBe(first.keyPem) // a new key for every renewal
      expect(second.cert.checkPrivateKey(createPrivateKey(second.keyPem))).toBe(true)
      expect(second.token['x5t#S256']).toBe(second.thumbprint)
      const claims = await verifyAccessToken(s, second.token.access_token!)
      expect((claims.cnf as Record<string, string>)['x5t#S256']).toBe(second.thumbprint)
      expect(claims.exp! * 1000).toBeLessThanOrEqual(new Date(second.cert.validTo).getTime())

      const stats = await reader.stop()
      expect(stats.reads).toBeGreaterThan(20)
      expect(stats.torn).toEqual([])
      // --exec ran after each switch: enrolment, then the renewal (and any token refresh).
      await hookRan
      const ran = readFileSync(hooks, 'utf8').trim().split('\n')
      expect(ran[0]).toBe(first.serial)
      expect(ran).toContain(renewed.serial)
    } finally {
      agent.kill('SIGTERM')
    }
    expect(await agent.exited).toBe(0)
    expect(agent.lines.at(-1)?.msg).toBe('stopping')
  })
})

describe('server down', () => {
  it('backs off with a log line per attempt, never leaves a torn file, and recovers when the server returns', async () => {
    const down = await TestServer.start()
    const { port } = down.running.address
    const dataDir = down.dataDir
    const w = await workload(down, 'down')
    const agent = new AgentProcess([...w.args, '--join-token', w.joinToken, '--ttl', '15s'])
    let back: TestServer | undefined
    try {
      await agent.waitFor((l) => l.msg === 'switched to a new generation')
      const first = readOut(w.out)
      const reader = startReader(w.out)
      await down.running.close() // the data directory stays: the same CA comes back below

      // Renewal is due at ~10 s: each failed attempt is one warning, 1 s apart, then longer.
      const isRetry = (l: { level?: number; step?: unknown }) =>
        l.level === 40 && l.step === 'renew'
      await agent.waitFor(isRetry, 15_000)
      const second = await agent.waitFor((l) => isRetry(l) && l.attempt === 2, 5_000)
      expect(second.msg).toMatch(
        /^renew attempt 2 failed: renew: cannot reach .*ECONNREFUSED.*; retrying in 1\.\ds$/,
      )
      expect(readOut(w.out).serial).toBe(first.serial) // still the old, valid certificate

      back = await TestServer.start({ server: { listen: `127.0.0.1:${port}` } }, { dataDir })
      const renewed = await agent.waitFor((l) => l.msg === 'renewed the certificate', 8_000)
      await agent.waitFor(
        (l) => l.msg === 'switched to a new generation' && l.serial === renewed.serial,
        5_000,
      )
      const now = readOut(w.out)
      expect(now.serial).not.toBe(first.serial)
      expect(now.token['x5t#S256']).toBe(now.thumbprint)

      const stats = await reader.stop()
      expect(stats.reads).toBeGreaterThan(20)
      expect(stats.torn).toEqual([])
    } finally {
      agent.kill('SIGTERM')
      expect(await agent.exited).toBe(0)
      await back?.close()
    }
  })
})
