import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AgentProcess,
  agentArgs,
  readOut,
  removeTempDirs,
  tempDir,
  verifyAccessToken,
} from '../helpers/agent.js'
import type { LogLine } from '../helpers/agent.js'
import { lineageOf } from '../helpers/lineage.js'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { githubClaims, kubernetesClaims } from '../helpers/oidc/platforms.js'
import { AUDIENCE, issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

// Issue 13: "With OIDC, a lineage older than renewal.max_lineage re-enrols by itself". The real
// CA answers a renewal of such a lineage 403 ERR_LINEAGE_TOO_OLD (CONTRACT "Lineages"); an agent
// with an OIDC token source then enrols again (a new lineage), one with a join token only stops
// with exit 3. Certificates live 6 s, so the agent renews about 4 s after receiving one: its
// lineage is always older than the 2 s renewal.max_lineage by then, however slow the machine.

const TTL = '6s'
let s: TestServer
let github: LoopbackIssuer
let k8s: LoopbackIssuer
let n = 0

beforeAll(async () => {
  ;[github, k8s] = await Promise.all([
    LoopbackIssuer.start({ alg: 'RS256' }),
    LoopbackIssuer.start({ alg: 'ES256' }),
  ])
  github.githubClaims = () => githubClaims()
  s = await TestServer.start({
    renewal: { max_lineage: '2s' },
    federation: {
      oidc_issuers: [issuerConfig('github', github), issuerConfig('k8s', k8s)],
    },
  })
})
afterAll(async () => {
  await s?.close()
  await Promise.all([github, k8s].map((i) => i?.close()))
  removeTempDirs()
})

async function workload(extra: Record<string, unknown> = {}) {
  const spiffeId = `spiffe://example.org/agent-reenrol/w${++n}`
  const entryId = await s.createEntry(spiffeId, extra)
  const dir = tempDir(`reenrol${n}`)
  const out = join(dir, 'out')
  return { spiffeId, entryId, dir, out, args: agentArgs(s, spiffeId, out) }
}

const switched = (l: LogLine) => l.msg === 'switched to a new generation'
const lastLine = (stderr: string) => stderr.trim().split('\n').at(-1)!

/** The token sources that can give the agent a new token without anyone's help. */
const sources = {
  'GitHub Actions (--oidc github)': async (dir: string) => ({
    entry: { oidc: { issuer: 'github', claims: { repository: 'acme/api' } } },
    flags: ['--oidc', 'github', '--oidc-audience', AUDIENCE],
    env: {
      ACTIONS_ID_TOKEN_REQUEST_URL: github.githubTokenUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: github.githubRequestToken,
      NODE_EXTRA_CA_CERTS: github.caFile(join(dir, 'github-ca.pem')),
    },
    // The runner answers every request with a new token.
    nextToken: async () => {},
  }),
  'a Kubernetes projected token (--oidc-token-file)': async (dir: string) => {
    const file = join(dir, 'token')
    writeFileSync(file, await k8s.mint(kubernetesClaims()))
    return {
      entry: { oidc: { issuer: 'k8s', claims: { '/kubernetes.io/namespace': 'ci' } } },
      flags: ['--oidc-token-file', file],
      env: {},
      // The kubelet writes the next token before the one in the file expires.
      nextToken: async () => writeFileSync(file, await k8s.mint(kubernetesClaims())),
    }
  },
}

describe('agent: renewal.max_lineage with a real CA', () => {
  it.each(Object.keys(sources))(
    'with %s the agent enrols again by itself: a new lineage, published with a bound token',
    async (name) => {
      const dir = tempDir('source')
      const source = await sources[name as keyof typeof sources](dir)
      const w = await workload(source.entry)
      const agent = new AgentProcess([...w.args, ...source.flags, '--ttl', TTL], source.env)
      let refusal: LogLine
      let republished: LogLine
      let first: LogLine
      try {
        first = await agent.waitFor(switched)
        await source.nextToken()
        refusal = await agent.waitFor((l) => /the CA asks for a new enrolment/.test(l.msg), 30_000)
        const from = agent.lines.indexOf(refusal)
        await agent.waitFor((l) => l.msg === 'enrolled', 20_000, from)
        republished = await agent.waitFor(switched, 20_000, from)
      } finally {
        agent.kill()
      }
      expect(await agent.exited, agent.stderr.slice(-2000)).toBe(0)
      expect(refusal.msg).toMatch(/renew: 403 .*renewal\.max_lineage/)
      expect(republished.serial).not.toBe(first.serial)
      // The files are those of the last generation published: the new certificate and its token.
      const now = readOut(w.out)
      const last = agent.lines.filter(switched).at(-1)!
      expect(now.serial).toBe(last.serial)
      expect(now.token['x5t#S256']).toBe(now.thumbprint)
      expect((await verifyAccessToken(s, now.token.access_token!)).sub).toBe(w.spiffeId)
      // An enrolment: a new lineage that starts at generation 1, not a renewal of the old one.
      const before = await lineageOf(s, first.serial as string)
      const after = await lineageOf(s, republished.serial as string)
      expect(after.id).not.toBe(before.id)
      expect(after.generations).toMatchObject([
        { serial: republished.serial, generation: 1, state: 'current' },
      ])
      expect(before.generations.map((g: { serial: string }) => g.serial)).toEqual([first.serial])
      expect(agent.lines.some((l) => /does not say when this certificate/.test(l.msg))).toBe(false)
    },
  )

  it('with a join token only, the agent stops with exit 3 and a one-line reason; its files stay', async () => {
    const w = await workload()
    const joinToken = await s.joinToken(w.entryId)
    const agent = new AgentProcess([...w.args, '--join-token', joinToken, '--ttl', TTL])
    let first: LogLine
    try {
      first = await agent.waitFor(switched)
    } catch (e) {
      agent.kill()
      throw e
    }
    const code = await agent.exited // it renews about 4 s later, and is refused
    expect(code, agent.stderr.slice(-2000)).toBe(3)
    const line = lastLine(agent.stderr)
    expect(line).toMatch(
      /^certbound agent: the CA asks for a new enrolment \(renew: 403 .*renewal\.max_lineage.*\); enrol again with a new --join-token$/,
    )
    expect(agent.lines.filter((l) => l.msg === 'enrolled')).toHaveLength(1)
    expect(readOut(w.out).serial).toBe(first.serial)
    expect((await lineageOf(s, first.serial as string)).status).toBe('active')
  })
})
