import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  AgentProcess,
  agentArgs,
  readOut,
  removeTempDirs,
  renewalDueNow,
  runAgent,
  tempDir,
  verifyAccessToken,
} from '../helpers/agent.js'
import type { LogLine } from '../helpers/agent.js'
import { lineageOf } from '../helpers/lineage.js'
import { makeCsr } from '../helpers/openssl.js'
import { LoopbackIssuer } from '../helpers/oidc/issuer.js'
import { githubClaims, gitlabClaims, kubernetesClaims } from '../helpers/oidc/platforms.js'
import { AUDIENCE, issuerConfig } from '../helpers/oidc/server.js'
import { TestServer } from '../helpers/server.js'

// `certbound agent` enrolling with OIDC identity tokens, as real processes: GitHub Actions'
// token request endpoint (shaped like GitHub's), a Kubernetes projected token file, a GitLab
// id_tokens variable. Nothing secret is stored; a spent token file is waited out.

let s: TestServer
let github: LoopbackIssuer
let k8s: LoopbackIssuer
let gitlab: LoopbackIssuer
let n = 0

beforeAll(async () => {
  ;[github, k8s, gitlab] = await Promise.all([
    LoopbackIssuer.start({ alg: 'RS256' }),
    LoopbackIssuer.start({ alg: 'ES256' }),
    LoopbackIssuer.start({ alg: 'RS256' }),
  ])
  github.githubClaims = () => githubClaims()
  s = await TestServer.start({
    federation: {
      oidc_issuers: [
        issuerConfig('github', github),
        issuerConfig('k8s', k8s),
        issuerConfig('gitlab', gitlab),
      ],
    },
  })
})
afterAll(async () => {
  await s?.close()
  await Promise.all([github, k8s, gitlab].map((i) => i?.close()))
  removeTempDirs()
})

/** An entry pinning `claims` on `issuer`, and an empty output directory. */
async function workload(issuer: string, claims: Record<string, string>) {
  const spiffeId = `spiffe://example.org/agent-oidc/w${++n}`
  await s.createEntry(spiffeId, { oidc: { issuer, claims } })
  const dir = tempDir(`oidc${n}`)
  const out = join(dir, 'out')
  return { spiffeId, dir, out, args: agentArgs(s, spiffeId, out) }
}

/** Every byte the agent left in `dir`, as text. */
function everything(dir: string): string {
  return (readdirSync(dir, { recursive: true }) as string[])
    .map((f) => join(dir, f))
    .filter((p) => statSync(p).isFile())
    .map((p) => readFileSync(p, 'latin1'))
    .join('\n')
}

describe('certbound agent with an OIDC token source', () => {
  it('--once --oidc github: fetches the job token from the runtime URL (&audience=), gets certificate and bound token, stores no token', async () => {
    const w = await workload('github', { repository: 'acme/api', ref: 'refs/heads/main' })
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: github.githubTokenUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: github.githubRequestToken,
      NODE_EXTRA_CA_CERTS: github.caFile(join(w.dir, 'github-ca.pem')),
    }
    const r = await runAgent(
      [...w.args, '--once', '--oidc', 'github', '--oidc-audience', AUDIENCE],
      env,
    )
    expect(r.code, r.stderr).toBe(0)
    const out = readOut(w.out)
    expect(out.cert.subjectAltName).toBe(`URI:${w.spiffeId}`)
    const claims = await verifyAccessToken(s, out.token.access_token!)
    expect(claims.sub).toBe(w.spiffeId)
    expect(out.token['x5t#S256']).toBe(out.thumbprint)
    const issued = github.githubIssued.at(-1)!
    expect(issued.audience).toBe(AUDIENCE)
    const left = everything(w.dir)
    expect(left).not.toContain(issued.token.split('.')[2])
    expect(r.stderr).not.toContain(issued.token.split('.')[2])
    expect(r.stderr).not.toContain(github.githubRequestToken)
  })

  it('--oidc github asks for the --server URL as audience by default; a refused audience exits 3 naming it', async () => {
    const w = await workload('github', { repository: 'acme/api' })
    const env = {
      ACTIONS_ID_TOKEN_REQUEST_URL: github.githubTokenUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: github.githubRequestToken,
      NODE_EXTRA_CA_CERTS: github.caFile(join(w.dir, 'github-ca.pem')),
    }
    const r = await runAgent([...w.args, '--once', '--oidc', 'github'], env)
    expect(r.code).toBe(3)
    expect(github.githubIssued.at(-1)!.audience).toBe(s.url)
    expect(r.stderr).toMatch(/the GitHub Actions ID token was refused: enrol: 401 .*\(aud\)/)
    const noEnv = await runAgent([...w.args, '--once', '--oidc', 'github'])
    expect(noEnv.code).toBe(2)
    expect(noEnv.stderr).toMatch(/needs ACTIONS_ID_TOKEN_REQUEST_URL/)
  })

  it('--oidc-token-file (Kubernetes projected token): enrols; a spent token is refused with --once, and waited out without it until the file holds the next one', async () => {
    const w = await workload('k8s', {
      '/kubernetes.io/namespace': 'ci',
      '/kubernetes.io/serviceaccount/name': 'runner',
    })
    const file = join(w.dir, 'token')
    writeFileSync(file, await k8s.mint(kubernetesClaims()))
    const first = await runAgent([...w.args, '--once', '--oidc-token-file', file])
    expect(first.code, first.stderr).toBe(0)

    // A pod that lost its --out: the same (spent) token again.
    const again = agentArgs(s, w.spiffeId, join(w.dir, 'out2'))
    const once = await runAgent([...again, '--once', '--oidc-token-file', file])
    expect(once.code).toBe(3)
    expect(once.stderr).toMatch(/the token in .* was refused: .*\(replay\).*run again then/)

    const agent = new AgentProcess([...again, '--oidc-token-file', file, '--log-level', 'debug'])
    try {
      await agent.waitFor((l) => /waiting for the next one/.test(l.msg))
      expect(agent.lines.some((l) => l.msg === 'enrolled')).toBe(false)
      writeFileSync(file, await k8s.mint(kubernetesClaims())) // the kubelet's next token
      await agent.waitFor((l) => l.msg === 'enrolled')
      await agent.waitFor((l) => l.msg === 'obtained an access token')
      // The files are written after the round's CRLs, when the generation is switched to.
      await agent.waitFor((l) => l.msg === 'switched to a new generation')
    } finally {
      agent.kill()
    }
    expect(await agent.exited).toBe(0)
    expect(readOut(join(w.dir, 'out2')).cert.subjectAltName).toBe(`URI:${w.spiffeId}`)
  })

  it.each(['SIGTERM', 'SIGKILL'] as const)(
    'stopped (%s) after enrolment and token, during the CRLs: the certificate the spent token paid for is kept and published',
    async (signal) => {
      const w = await workload('k8s', { '/kubernetes.io/namespace': 'ci' })
      const file = join(w.dir, 'token')
      writeFileSync(file, await k8s.mint(kubernetesClaims()))
      const agent = new AgentProcess([...w.args, '--oidc-token-file', file])
      let enrolled: LogLine
      try {
        enrolled = await agent.waitFor((l) => l.msg === 'enrolled')
        // The round goes on with the CRLs of the chain, then writes the files.
        await agent.waitFor((l) => l.msg === 'obtained an access token')
      } finally {
        agent.kill(signal)
      }
      expect(await agent.exited).toBe(signal === 'SIGTERM' ? 0 : null)
      if (signal === 'SIGTERM') {
        // A clean stop publishes what the round obtained before it exits.
        const out = readOut(w.out)
        expect(out.serial).toBe(enrolled.serial)
        expect(out.token['x5t#S256']).toBe(out.thumbprint)
      }
      // The file still holds the spent token (enrolling again would be refused as a replay):
      // the next run goes on with the certificate kept in ..state.
      const back = await runAgent([...w.args, '--once', '--oidc-token-file', file])
      expect(back.code, back.stderr).toBe(0)
      expect(back.lines.some((l) => /enrolling with/.test(l.msg))).toBe(false)
      const out = readOut(w.out)
      expect(out.serial).toBe(enrolled.serial)
      expect(out.token['x5t#S256']).toBe(out.thumbprint)
    },
  )

  it('--oidc-token-env (GitLab id_tokens): enrols; after the CA refused its certificate, the agent enrols again by itself', async () => {
    const w = await workload('gitlab', { project_path: 'acme/api', ref_protected: 'true' })
    const env = { CERTBOUND_ID_TOKEN: await gitlab.mint(gitlabClaims()) }
    const first = await runAgent(
      [...w.args, '--once', '--oidc-token-env', 'CERTBOUND_ID_TOKEN'],
      env,
    )
    expect(first.code, first.stderr).toBe(0)
    const before = readOut(w.out).serial
    const revoked = await s.call('POST', `/v1/certificates/${before}/revoke`, {
      as: s.admin,
      json: {},
    })
    expect(revoked.status).toBe(200)
    const next = { CERTBOUND_ID_TOKEN: await gitlab.mint(gitlabClaims()) }
    const second = await runAgent(
      [...w.args, '--once', '--oidc-token-env', 'CERTBOUND_ID_TOKEN'],
      next,
    )
    expect(second.code, second.stderr).toBe(0)
    expect(
      second.lines.some((l) => /enrolling with the token in \$CERTBOUND_ID_TOKEN/.test(l.msg)),
    ).toBe(true)
    const after = readOut(w.out)
    expect(after.serial).not.toBe(before)
    expect((await verifyAccessToken(s, after.token.access_token!)).sub).toBe(w.spiffeId)
  })

  it('a renewal kept in ..state but refused, replaced by an OIDC enrolment, does not come back after a restart', async () => {
    const w = await workload('gitlab', { project_path: 'acme/api' })
    const flags = ['--once', '--oidc-token-env', 'TOKEN']
    const enrolled = await runAgent([...w.args, ...flags], {
      TOKEN: await gitlab.mint(gitlabClaims()),
    })
    expect(enrolled.code, enrolled.stderr).toBe(0)
    const published = readOut(w.out)
    // The agent renewed and was stopped before publishing: the renewal is kept in ..state.
    const csr = makeCsr({ san: `URI:${w.spiffeId}` })
    const renewed = await s.call('POST', '/v1/renew', {
      as: { certPem: published.chainPem, keyPem: published.keyPem },
      json: { csr: csr.csrPem },
    })
    expect(renewed.status, renewed.text).toBe(201)
    const stateFile = join(w.out, '..state', 'agent.json')
    const state = JSON.parse(readFileSync(stateFile, 'utf8'))
    state.pending = {
      cert_pem: renewed.body.certificate,
      chain_pem: renewed.body.chain,
      key_pem: csr.keyPem,
      received_at: new Date().toISOString(),
    }
    writeFileSync(stateFile, JSON.stringify(state))
    // Revoked while the agent was stopped: its first use is refused, the agent enrols by OIDC.
    const revoked = await s.call('POST', `/v1/certificates/${renewed.body.serial}/revoke`, {
      as: s.admin,
      json: {},
    })
    expect(revoked.status, revoked.text).toBe(200)
    const env = { TOKEN: await gitlab.mint(gitlabClaims()) }
    const back = await runAgent([...w.args, ...flags], env)
    expect(back.code, back.stderr).toBe(0)
    expect(back.lines.some((l) => /going on with the certificate obtained/.test(l.msg))).toBe(true)
    const now = readOut(w.out)
    expect([published.serial, renewed.body.serial]).not.toContain(now.serial)
    // The next run (its token spent by now) goes on with the enrolled certificate.
    const again = await runAgent([...w.args, ...flags], env)
    expect(again.code, again.stderr).toBe(0)
    expect(again.lines.some((l) => /going on with|enrolling with/.test(l.msg))).toBe(false)
    expect(readOut(w.out).serial).toBe(now.serial)
  })

  it('a clone alarm is not a request to enrol again: with an OIDC source the agent stops (exit 3)', async () => {
    const w = await workload('gitlab', { project_path: 'acme/api' })
    const flags = ['--once', '--oidc-token-env', 'TOKEN']
    const fresh = async () => ({ TOKEN: await gitlab.mint(gitlabClaims()) })
    const enrolled = await runAgent([...w.args, ...flags], await fresh())
    expect(enrolled.code, enrolled.stderr).toBe(0)
    const copy = join(w.dir, 'copy')
    execFileSync('cp', ['-a', w.out, copy]) // the same files on a second host
    const original = readOut(w.out)
    renewalDueNow(w.out)
    renewalDueNow(copy)
    const first = await runAgent([...w.args, ...flags], await fresh())
    expect(first.code, first.stderr).toBe(0)
    expect(readOut(w.out).serial).not.toBe(original.serial)
    // The second host, on the copied files, renews the retired generation: a clone. It holds a
    // valid OIDC token, but an operator decides which host is the real workload.
    const second = await runAgent([...agentArgs(s, w.spiffeId, copy), ...flags], await fresh())
    expect(second.code, second.stderr).toBe(3)
    expect(second.stderr.trim().split('\n').at(-1)).toMatch(
      /^certbound agent: lineage revoked: suspected clone \(renew: 403 /,
    )
    expect(second.lines.some((l) => /enrolling with|^enrolled$/.test(l.msg))).toBe(false)
    expect((await lineageOf(s, original.serial)).status).toBe('revoked')
  })

  it('flags: one OIDC source at most, never with a join token', async () => {
    const w = await workload('k8s', { sub: 'x' })
    for (const [flags, message] of [
      [['--oidc', 'github', '--oidc-token-file', '/x'], /give one of --oidc/],
      [
        ['--oidc-token-env', 'X', '--join-token', 'abc'],
        /a join token or an OIDC token source, not both/,
      ],
      [['--oidc', 'gitlab'], /--oidc takes "github"/],
      [['--oidc-token-env', 'NOT-A-NAME'], /name of an environment variable/],
      [['--oidc-audience', 'x'], /--oidc-audience goes with --oidc github/],
    ] as const) {
      const r = await runAgent([...w.args, '--once', ...flags])
      expect(r.code, r.stderr).toBe(2)
      expect(r.stderr).toMatch(message)
    }
  })
})
