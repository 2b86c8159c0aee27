import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { resolveFileAccess } from '../../src/agent/file-access.js'
import { privateKeyFromPem } from '../../src/crypto/keys.js'
import { buildCrl } from '../../src/x509/crl.js'
import { derToPem, pemBlocks } from '../../src/x509/pem.js'
import { openssl } from '../helpers/openssl.js'
import { freePort } from '../helpers/process-server.js'
import { TestServer, sleep } from '../helpers/server.js'
import {
  AgentProcess,
  agentArgs,
  readOut,
  removeTempDirs,
  runAgent,
  tempDir,
} from '../helpers/agent.js'

// The agent's files for a TLS terminator that runs as another user: --group/--mode on the key,
// and the chain's CRLs (crls.pem) that nginx `ssl_crl` checks client certificates with,
// refreshed at half their validity without a new certificate. Real agent processes, a real
// nginx running as nobody in the agent's group, curl as the client.

const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p))
const ROOT_USER = process.getuid?.() === 0
const NOBODY = 65534
const GROUP = 4242 // a gid no one else has: only nginx (run with it) may read the key

let s: TestServer
let n = 0

beforeAll(async () => {
  // 20s: the agent refreshes the CRLs every ~10s, the suite sees a revocation within that.
  s = await TestServer.start({ crl: { validity: '20s' } })
})
afterAll(async () => {
  await s?.close()
  removeTempDirs()
})

async function workload(extra: Record<string, unknown> = {}) {
  const spiffeId = `spiffe://example.org/tls/${++n}`
  const entryId = await s.createEntry(spiffeId, extra)
  const dir = tempDir(`tls${n}`)
  chmodSync(dir, 0o755) // nobody (nginx) must reach the files below
  const out = join(dir, 'out')
  return {
    spiffeId,
    dir,
    out,
    token: await s.joinToken(entryId),
    args: agentArgs(s, spiffeId, out),
  }
}

const mode = (p: string) => statSync(p).mode & 0o777
const revokedSerials = (crlPem: string) =>
  [...openssl(['crl', '-noout', '-text'], crlPem).out.matchAll(/Serial Number: ([0-9A-F]+)/g)].map(
    (m) => m[1]!.toLowerCase(),
  )

describe('--group / --mode', () => {
  const ids = {
    uid: 1000,
    groups: [1000, 33],
    lookupGroup: (g: string) => ({ www: 33, other: 77 })[g],
  }
  it.each([
    [{}, { group: undefined, keyMode: 0o600 }],
    [{ group: 'www' }, { group: 33, keyMode: 0o640 }],
    [
      { group: '33', mode: '0440' },
      { group: 33, keyMode: 0o440 },
    ],
    [{ mode: '400' }, { group: undefined, keyMode: 0o400 }],
  ])('%j → %j', (flags, want) => expect(resolveFileAccess(flags, ids)).toEqual(want))

  it.each([
    [{ mode: '0644' }, /every user/],
    [{ mode: '0604', group: 'www' }, /every user/],
    [{ mode: '0660', group: 'www' }, /group write/],
    [{ mode: '0700' }, /execute/],
    [{ mode: '0200' }, /read its own key/],
    [{ mode: 'rw-r-----' }, /not an octal mode/],
    [{ mode: '0640' }, /--group/],
    [{ group: 'nosuch' }, /no such group/],
    [{ group: 'other' }, /not a member/],
  ])('%j is refused (%s)', (flags, why) => expect(() => resolveFileAccess(flags, ids)).toThrow(why))

  it('bad flags stop the agent with exit 2 and the reason', async () => {
    const w = await workload()
    const r = await runAgent([...w.args, '--join-token', w.token, '--once', '--mode', '0666'])
    expect(r.code).toBe(2)
    expect(r.stderr).toMatch(
      /certbound agent: --mode 0666 would let every user read the private key/,
    )
  })

  it.runIf(ROOT_USER)(
    'the key goes to the group, 0640; nobody in the group reads it, nobody else cannot',
    async () => {
      const w = await workload()
      const r = await runAgent([
        ...w.args,
        '--join-token',
        w.token,
        '--once',
        '--group',
        String(GROUP),
      ])
      expect(r.code, r.stderr).toBe(0)
      const gen = join(w.out, '..data')
      expect(mode(join(gen, 'key.pem'))).toBe(0o640)
      expect(mode(join(gen, 'token.json'))).toBe(0o600)
      for (const f of ['key.pem', 'cert.pem', 'chain.pem', 'bundle.pem', 'crls.pem', 'token.json'])
        expect(statSync(join(gen, f)).gid, f).toBe(GROUP)
      const cat = (gid: number) => spawnSync('cat', [join(w.out, 'key.pem')], { uid: NOBODY, gid })
      expect(cat(GROUP).status).toBe(0)
      expect(cat(GROUP).stdout.toString()).toBe(readOut(w.out).keyPem)
      expect(cat(NOBODY).status).not.toBe(0) // permission denied
      expect(
        spawnSync('cat', [join(w.out, 'token.json')], { uid: NOBODY, gid: GROUP }).status,
      ).not.toBe(0)
    },
  )
})

describe('CRLs in the output directory', () => {
  it('--once writes crl.pem, crl.der (the issuing CA’s, as /v1/crl) and crls.pem, verified by openssl', async () => {
    const w = await workload()
    const r = await runAgent([...w.args, '--join-token', w.token, '--once'])
    expect(r.code, r.stderr).toBe(0)
    const crlPem = readFileSync(join(w.out, 'crl.pem'), 'utf8')
    const der = readFileSync(join(w.out, 'crl.der'))
    expect(Buffer.from(pemBlocks(crlPem, 'X509 CRL')[0]!).equals(der)).toBe(true)
    const served = await s.call('GET', '/v1/crl')
    expect(served.status).toBe(200)
    const chain = join(w.dir, 'cas.pem')
    writeFileSync(chain, s.bundlePem + s.intermediatePem)
    const v = openssl(['crl', '-in', join(w.out, 'crl.pem'), '-CAfile', chain, '-verify', '-noout'])
    expect(v.out).toContain('verify OK')
    // No warning for the root's CRL when the server has none for it (a 404 is skipped quietly).
    expect(r.lines.filter((l) => (l.level ?? 0) >= 40)).toEqual([])
    expect(readFileSync(join(w.out, 'crls.pem'), 'utf8')).toContain(crlPem.trim())
  })
})

/** nginx as `nobody` in GROUP, checking client certificates against `crlFile`. */
async function startNginx(dir: string, out: string, crlFile: string) {
  const prefix = join(dir, 'nginx')
  for (const d of ['', 'tmp']) mkdirSync(join(prefix, d), { recursive: true })
  chownSync(prefix, NOBODY, GROUP)
  chownSync(join(prefix, 'tmp'), NOBODY, GROUP)
  const port = await freePort()
  const temps = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((t) => `${t}_temp_path ${prefix}/tmp/${t};`)
    .join('\n    ')
  const conf = join(prefix, 'nginx.conf')
  writeFileSync(
    conf,
    `daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log info;
events { worker_connections 64; }
http {
    access_log ${prefix}/access.log;
    ${temps}
    server {
        listen 127.0.0.1:${port} ssl;
        server_name nginx.example.org;
        ssl_certificate ${out}/chain.pem;
        ssl_certificate_key ${out}/key.pem;
        ssl_client_certificate ${out}/bundle.pem;
        ssl_verify_client on;
        ssl_verify_depth 2;
        ssl_crl ${crlFile};
        location / { return 200 "hello $ssl_client_serial\\n"; }
    }
}
`,
  )
  const child = spawn(NGINX!, ['-p', prefix, '-c', conf, '-e', join(prefix, 'error.log')], {
    uid: NOBODY,
    gid: GROUP,
    stdio: 'ignore',
  })
  return { child, port, prefix, log: () => readFileSync(join(prefix, 'error.log'), 'utf8') }
}

/** curl to nginx with a client certificate: the HTTP status (400 when nginx refuses it). */
function curl(port: number, bundle: string, cred: { chain: string; key: string }): Promise<string> {
  const args = ['-s', '-o', '-', '-w', ' %{http_code}', '--cacert', bundle, '--cert', cred.chain]
  args.push('--key', cred.key, '--resolve', `nginx.example.org:${port}:127.0.0.1`)
  return new Promise((resolve) =>
    execFile('curl', [...args, `https://nginx.example.org:${port}/`], (_e, stdout) =>
      resolve(stdout.trim().split(' ').at(-1)!),
    ),
  )
}

async function until<T>(
  what: string,
  f: () => Promise<T | undefined> | T | undefined,
  ms = 45_000,
): Promise<T> {
  const deadline = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(250)
  }
}

// CI installs nginx (.ci/run): there its absence is a failure, not a skip.
it.runIf(process.env.CI === 'true' && ROOT_USER)('nginx is installed', () => {
  expect(NGINX).toBeDefined()
})

describe.runIf(NGINX !== undefined && ROOT_USER)(
  'nginx with ssl_crl pointing at the agent’s CRLs',
  () => {
    let nginx: { child: ChildProcess; port: number; prefix: string; log: () => string } | undefined
    let agent: AgentProcess | undefined
    afterAll(() => {
      nginx?.child.kill('SIGTERM')
      agent?.kill('SIGTERM')
    })

    it('accepts a valid client certificate, refuses one revoked after the agent refreshed the CRL', async () => {
      const w = await workload({ dns_names: ['nginx.example.org'] })
      // Until the server publishes its root's CRL (/v1/ca/{ski}/crl), nginx (which checks the
      // CRL of every CA of the chain) gets one signed here with the root key, as an offline root
      // would sign it; once the server has it, the agent's crls.pem holds both and is used as is.
      const rootCrlFile = join(w.dir, 'root-crl.pem')
      const now = Math.floor(Date.now() / 1000) * 1000
      const rootKey = privateKeyFromPem(readFileSync(join(s.dataDir, 'ca/root-key.pem'), 'utf8'))
      const rootDer = pemBlocks(s.bundlePem, 'CERTIFICATE')[0]!
      const rootCrl = buildCrl({
        issuer: { certDer: rootDer, privateKey: rootKey },
        crlNumber: 1n,
        thisUpdate: new Date(now),
        nextUpdate: new Date(now + 3600_000),
        revoked: [],
      })
      writeFileSync(rootCrlFile, derToPem(rootCrl, 'X509 CRL'))
      const combined = join(w.dir, 'ssl-crl.pem')
      const pid = join(w.dir, 'nginx', 'nginx.pid')
      const hook =
        `if [ "$(grep -c 'BEGIN X509 CRL' "$CERTBOUND_OUT/crls.pem")" -ge 2 ]; then cp "$CERTBOUND_OUT/crls.pem" ${combined}.tmp; ` +
        `else cat "$CERTBOUND_OUT/crls.pem" ${rootCrlFile} > ${combined}.tmp; fi; mv ${combined}.tmp ${combined}; ` +
        `if [ -f ${pid} ]; then kill -HUP "$(cat ${pid})"; fi`
      agent = new AgentProcess([
        ...w.args,
        '--join-token',
        w.token,
        '--dns',
        'nginx.example.org',
        '--group',
        String(GROUP),
        '--exec',
        hook,
        '--log-level',
        'debug',
      ])
      await agent.waitFor((l) => l.msg === '--exec command succeeded')
      const own = readOut(w.out).serial
      const agentCrls = readFileSync(join(w.out, 'crls.pem'), 'utf8')
      const serverHasRootCrl = agentCrls.match(/BEGIN X509 CRL/g)!.length >= 2
      if (serverHasRootCrl) expect(readFileSync(combined, 'utf8')).toBe(agentCrls)
      nginx = await startNginx(w.dir, w.out, combined)

      const bundle = join(w.dir, 'bundle.pem')
      writeFileSync(bundle, s.bundlePem)
      const client = async (name: string) => {
        const c = await s.enroll(`spiffe://example.org/tls/client-${name}-${n}`)
        const chain = join(w.dir, `${name}.pem`)
        const key = join(w.dir, `${name}.key`)
        writeFileSync(chain, c.chainPem)
        writeFileSync(key, c.keyPem)
        return { ...c, chain, key }
      }
      const good = await client('good')
      const bad = await client('bad')
      await until('nginx to serve', async () =>
        (await curl(nginx!.port, bundle, good)) === '200' ? true : undefined,
      )
      expect(await curl(nginx.port, bundle, bad)).toBe('200')

      // Revoke one: the next CRL the agent publishes lists it, nginx reloads and refuses it.
      const crlBefore = readFileSync(join(w.out, 'crl.pem'), 'utf8')
      const revoked = await s.call('POST', `/v1/certificates/${bad.serial}/revoke`, {
        as: s.admin,
        json: {},
      })
      expect(revoked.status).toBe(200)
      await until('the revocation in the agent’s crl.pem', () =>
        revokedSerials(readFileSync(join(w.out, 'crl.pem'), 'utf8')).includes(bad.serial)
          ? true
          : undefined,
      )
      await until('nginx to refuse the revoked certificate', async () =>
        (await curl(nginx!.port, bundle, bad)) === '400' ? true : undefined,
      )
      expect(nginx.log()).toMatch(/certificate revoked/)
      expect(await curl(nginx.port, bundle, good)).toBe('200')

      // The new CRL came before the old one's nextUpdate, with no new certificate for the agent.
      const next = readFileSync(join(w.out, 'crl.pem'), 'utf8')
      const field = (pem: string, f: string) =>
        Date.parse(
          openssl(['crl', '-noout', `-${f}`], pem)
            .out.split('=')[1]!
            .trim(),
        )
      expect(field(next, 'lastupdate')).toBeLessThan(field(crlBefore, 'nextupdate'))
      expect(readOut(w.out).serial).toBe(own)
      expect(
        agent.lines.filter((l) => l.msg === 'renewed the certificate' || l.msg === 'enrolled')
          .length,
      ).toBe(1)
      expect(agent.lines.filter((l) => (l.level ?? 0) >= 40)).toEqual([])
    })
  },
)
