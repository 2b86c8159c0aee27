import { execFileSync } from 'node:child_process'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { crlSerials, generationStates, lineageOf } from '../helpers/lineage.js'
import { makeCsr } from '../helpers/openssl.js'
import { sleep, TestServer } from '../helpers/server.js'
import { introspect } from '../helpers/tokens.js'
import {
  AgentProcess,
  agentArgs,
  readOut,
  removeTempDirs,
  renewalDueNow,
  runAgent,
  tempDir,
} from '../helpers/agent.js'

// The agent and lineages (CONTRACT "Lineages"), as real processes against a real server: two
// agents started from copies of one --out, an agent killed right after a renewal, and a
// renewal after expiry.

let s: TestServer
let rs: { certPem: string; keyPem: string }
let n = 0

beforeAll(async () => {
  s = await TestServer.start()
  rs = await s.enroll('spiffe://example.org/agent-lineage/resource-server')
})
afterAll(async () => {
  await s?.close()
  removeTempDirs()
})

async function workload(extra: Record<string, unknown> = {}) {
  const spiffeId = `spiffe://example.org/agent-lineage/w${++n}`
  const entryId = await s.createEntry(spiffeId, extra)
  const joinToken = await s.joinToken(entryId)
  const dir = tempDir(`lineage${n}`)
  const out = join(dir, 'out')
  return { spiffeId, entryId, joinToken, dir, out, args: agentArgs(s, spiffeId, out) }
}

const lastLine = (stderr: string) => stderr.trim().split('\n').at(-1)!
const active = async (t: string) => (await introspect(s, rs, t)).body.active as boolean
const alarmsFor = async (lineageId: string) =>
  (await s.store.audit.list({ action: 'lineage.clone_detected' })).filter(
    (e) => e.subject === lineageId,
  )

describe('agents and lineages', () => {
  it('two agents started from copies of one --out: the second is refused, the lineage contained', async () => {
    const w = await workload()
    const enrolled = await runAgent([
      ...w.args,
      '--join-token',
      w.joinToken,
      '--ttl',
      '15s',
      '--once',
    ])
    expect(enrolled.code, enrolled.stderr).toBe(0)
    const copy = join(w.dir, 'copy')
    execFileSync('cp', ['-a', w.out, copy]) // the same files on a second host
    const original = readOut(w.out)
    // Both copies are due for renewal; the first agent renews and uses its new certificate.
    renewalDueNow(w.out)
    renewalDueNow(copy)
    const first = await runAgent([...w.args, '--once'])
    expect(first.code, first.stderr.split('\n').slice(-4).join('\n')).toBe(0)
    const renewed = readOut(w.out)
    expect(renewed.serial).not.toBe(original.serial)
    // The second agent, on the copied files, renews too.
    const second = await runAgent([...agentArgs(s, w.spiffeId, copy), '--once'])
    expect(second.code, second.stderr).toBe(3)
    expect(lastLine(second.stderr)).toMatch(/^certbound agent: lineage revoked: suspected clone/)
    const lineage = await lineageOf(s, original.serial)
    expect(lineage.status).toBe('revoked')
    for (const t of [renewed.token.access_token!, readOut(copy).token.access_token!])
      expect(await active(t)).toBe(false)
    const crl = await crlSerials(s)
    expect([crl.has(original.serial), crl.has(renewed.serial)]).toEqual([true, true])
    const alarms = await alarmsFor(lineage.id)
    expect(alarms).toHaveLength(1)
    expect(alarms[0]!.details).toMatchObject({
      presented: { serial: original.serial, generation: 1 },
      current: { serial: renewed.serial, generation: 2 },
    })
    // The first agent is refused from now on as well, with the same words.
    const again = await runAgent([...w.args, '--once'])
    expect(again.code).toBe(3)
    expect(lastLine(again.stderr)).toMatch(/lineage revoked|revoked/)
  })

  it('killed right after a renewal: on restart it goes on with the renewed certificate, no alarm', async () => {
    const w = await workload()
    const agent = new AgentProcess([...w.args, '--join-token', w.joinToken, '--ttl', '9s'])
    let renewedSerial: string
    try {
      const line = await agent.waitFor((l) => l.msg === 'renewed the certificate', 20_000)
      renewedSerial = line.serial as string
      agent.kill('SIGKILL') // before, or right after, its first use: the files may be old ones
    } finally {
      agent.kill('SIGKILL')
    }
    await agent.exited
    const back = await runAgent([...w.args, '--once'])
    expect(back.code, back.stderr).toBe(0)
    const now = readOut(w.out)
    expect(now.serial).toBe(renewedSerial)
    expect(now.token['x5t#S256']).toBe(now.thumbprint)
    const lineage = await lineageOf(s, now.serial)
    expect(lineage.status).toBe('active')
    expect(await alarmsFor(lineage.id)).toHaveLength(0)
  })

  it('a renewal lost before it reached the disk: the agent renews again from the current generation, no alarm', async () => {
    const w = await workload()
    const first = await runAgent([...w.args, '--join-token', w.joinToken, '--once'])
    expect(first.code, first.stderr).toBe(0)
    const files = readOut(w.out)
    // A renewal whose answer never reached the disk (the agent died on the way).
    const lost = await s.call('POST', '/v1/renew', {
      as: { certPem: files.chainPem, keyPem: files.keyPem },
      json: { csr: makeCsr().csrPem },
    })
    expect(lost.status, lost.text).toBe(201)
    renewalDueNow(w.out)
    const back = await runAgent([...w.args, '--once'])
    expect(back.code, back.stderr).toBe(0)
    const now = readOut(w.out)
    expect([now.serial === files.serial, now.serial === lost.body.serial]).toEqual([false, false])
    expect(await generationStates(s, files.serial)).toEqual({
      [files.serial]: 'retired',
      [lost.body.serial]: 'revoked',
      [now.serial]: 'current',
    })
    expect(await alarmsFor((await lineageOf(s, now.serial)).id)).toHaveLength(0)
  })

  it('renewal after expiry: a certificate that expired while the agent was stopped renews with a proof', async () => {
    const w = await workload({ renew_after_expiry: '1h' })
    const first = await runAgent([...w.args, '--join-token', w.joinToken, '--ttl', '2s', '--once'])
    expect(first.code, first.stderr).toBe(0)
    const old = readOut(w.out)
    await sleep(Math.max(0, new Date(old.cert.validTo).getTime() - Date.now()) + 1_500)
    const back = await runAgent([...w.args, '--once'])
    expect(back.code, back.stderr).toBe(0)
    expect(back.lines.some((l) => l.msg === 'renewed the certificate after expiry')).toBe(true)
    const now = readOut(w.out)
    expect(now.serial).not.toBe(old.serial)
    expect(now.token['x5t#S256']).toBe(now.thumbprint)
    expect(await generationStates(s, now.serial)).toMatchObject({ [now.serial]: 'current' })
  })
})
