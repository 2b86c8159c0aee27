import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { derToPem } from '../../src/x509/pem.js'
import { query, tempFiles } from '../helpers/ca.js'
import { curlOcsp, ocspRequest } from '../helpers/ocsp.js'
import { openssl } from '../helpers/openssl.js'
import { sleep, TestServer, type Credential } from '../helpers/server.js'

// Every revocation artefact against tools that never heard of certbound: openssl, GnuTLS
// certtool, pyca/cryptography, Go's crypto/x509, and nginx checking client certificates
// against certbound's CRLs.

const HERE = new URL('.', import.meta.url).pathname
const run = promisify(execFile)
const has = (cmd: string) =>
  run('sh', ['-c', `command -v ${cmd}`]).then(
    () => true,
    () => false,
  )

describe('revocation status with independent tools', () => {
  let s: TestServer
  const leaves: Record<string, Credential> = {}
  let f: Record<string, string>
  let revoked: Credential

  beforeAll(async () => {
    s = await TestServer.start()
    for (const key of ['ec-p256', 'rsa-2048', 'ed25519'] as const)
      leaves[key] = await s.enroll(`spiffe://example.org/interop/${key}`, { key })
    revoked = await s.enroll('spiffe://example.org/interop/revoked')
    const r = await s.call('POST', `/v1/certificates/${revoked.serial}/revoke`, {
      as: s.admin,
      json: { reason: 'keyCompromise' },
    })
    expect(r.status).toBe(200)
    const get = async (path: string) => {
      const res = await request(`${s.url}${path}`, { dispatcher: s.agent() })
      expect(res.statusCode, path).toBe(200)
      return Buffer.from(await res.body.arrayBuffer())
    }
    const rootId = Buffer.from(new X509Certificate(s.bundlePem).raw).length && keyIdOf(s.bundlePem)
    const rootCrl = await get(`/v1/ca/${rootId}/crl`)
    const interCrl = await get('/v1/crl')
    const ocspDer = (
      await curlOcsp(
        s.url,
        s.bundlePem,
        ocspRequest(leaves['ec-p256']!.certPem, s.intermediatePem, { nonce: false }),
      )
    ).der
    // One delegated responder per CA that holds its key (RFC 6960 §4.2.2.2): the root's signs
    // answers about issuing CAs, the intermediate's about leaves. pyca checks the latter against
    // the intermediate, so pick it by issuer; the rows' order is no order (key ids are random).
    const interId = keyIdOf(s.intermediatePem)
    const signers = await query<{ der: Uint8Array; issuer_key_id: string }>(
      s,
      'SELECT der, issuer_key_id FROM ocsp_signers',
    )
    expect(signers.map((r) => r.issuer_key_id).sort()).toEqual([rootId, interId].sort())
    const signer = signers.find((r) => r.issuer_key_id === interId)
    f = tempFiles({
      'root.pem': s.bundlePem,
      'inter.pem': s.intermediatePem,
      'root.crl': rootCrl,
      'inter.crl': interCrl,
      'crls.pem': derToPem(rootCrl, 'X509 CRL') + derToPem(interCrl, 'X509 CRL'),
      'inter-crl.pem': derToPem(interCrl, 'X509 CRL'),
      'root-crl.pem': derToPem(rootCrl, 'X509 CRL'),
      'ocsp.der': ocspDer,
      'signer.pem': derToPem(new Uint8Array(signer!.der), 'CERTIFICATE'),
      'revoked.pem': revoked.certPem,
      'revoked-key.pem': revoked.keyPem,
      ...Object.fromEntries(
        Object.entries(leaves).flatMap(([k, c]) => [
          [`${k}.pem`, c.certPem],
          [`${k}-key.pem`, c.keyPem],
        ]),
      ),
    })
  })
  afterAll(() => s.close())

  const keyIdOf = (pem: string) =>
    openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier'], pem)
      .out.split('\n')[1]!
      .trim()
      .replace(/:/g, '')
      .toLowerCase()
  const leafFiles = () => ['ec-p256', 'rsa-2048', 'ed25519'].map((k) => f[`${k}.pem`]!)

  it('openssl verify -x509_strict -crl_check_all with both CRLs: leaves and the OCSP signer pass, the revoked one fails', () => {
    for (const cert of [...leafFiles(), f['signer.pem']!, f['inter.pem']!]) {
      const r = openssl([
        'verify',
        '-x509_strict',
        '-crl_check_all',
        '-CAfile',
        f['root.pem']!,
        '-untrusted',
        f['inter.pem']!,
        '-CRLfile',
        f['root-crl.pem']!,
        '-CRLfile',
        f['inter-crl.pem']!,
        cert,
      ])
      expect(r.out).toContain(': OK')
      expect(r.code, r.out).toBe(0)
    }
    const bad = openssl([
      'verify',
      '-x509_strict',
      '-crl_check_all',
      '-CAfile',
      f['root.pem']!,
      '-untrusted',
      f['inter.pem']!,
      '-CRLfile',
      f['root-crl.pem']!,
      '-CRLfile',
      f['inter-crl.pem']!,
      f['revoked.pem']!,
    ])
    expect(bad.code).not.toBe(0)
    expect(bad.out).toMatch(/certificate revoked/)
    // Without the root's CRL the whole-path check cannot pass (what nginx and Java ran into).
    const noRoot = openssl([
      'verify',
      '-crl_check_all',
      '-CAfile',
      f['root.pem']!,
      '-untrusted',
      f['inter.pem']!,
      '-CRLfile',
      f['inter-crl.pem']!,
      leafFiles()[0]!,
    ])
    expect(noRoot.out).toMatch(/unable to get certificate CRL/)
    // The OCSP response as openssl reads it.
    const o = openssl([
      'ocsp',
      '-respin',
      f['ocsp.der']!,
      '-CAfile',
      f['root.pem']!,
      '-verify_other',
      f['inter.pem']!,
      '-issuer',
      f['inter.pem']!,
      '-cert',
      leafFiles()[0]!,
    ])
    expect(o.out).toContain('Response verify OK')
  })

  it('GnuTLS certtool --verify-profile=medium: chains and both CRLs', async () => {
    if (!(await has('certtool'))) return expect.fail('certtool missing: install gnutls-bin')
    for (const leaf of [...leafFiles(), f['signer.pem']!]) {
      const chain = tempFiles({
        'chain.pem': (await import('node:fs')).readFileSync(leaf, 'utf8') + s.intermediatePem,
      })
      const { stdout } = await run('certtool', [
        '--verify',
        '--verify-profile=medium',
        '--load-ca-certificate',
        f['root.pem']!,
        '--load-crl',
        f['crls.pem']!,
        '--infile',
        chain['chain.pem']!,
      ])
      expect(stdout).toMatch(/Chain verification output: Verified/)
    }
    for (const [crl, ca] of [
      ['inter-crl.pem', 'inter.pem'],
      ['root-crl.pem', 'root.pem'],
    ] as const) {
      const { stdout } = await run('certtool', [
        '--verify-crl',
        '--load-ca-certificate',
        f[ca]!,
        '--infile',
        f[crl]!,
      ])
      expect(stdout).toMatch(/Verified\./)
    }
    const revokedChain = tempFiles({ 'chain.pem': revoked.certPem + s.intermediatePem })
    const bad = await run('certtool', [
      '--verify',
      '--verify-profile=medium',
      '--load-ca-certificate',
      f['root.pem']!,
      '--load-crl',
      f['crls.pem']!,
      '--infile',
      revokedChain['chain.pem']!,
    ]).then(
      (r) => r.stdout,
      (e: { stdout: string }) => e.stdout,
    )
    expect(bad).toMatch(/revoked/i)
  })

  it("pyca/cryptography's strict parser and X.509 verifier", async () => {
    const { stdout } = await run('python3', [
      join(HERE, 'pyca_check.py'),
      f['root.pem']!,
      f['inter.pem']!,
      f['root.crl']!,
      f['inter.crl']!,
      f['ocsp.der']!,
      f['signer.pem']!,
      ...leafFiles(),
    ])
    expect(stdout).toMatch(/ok OCSP response: GOOD/)
    expect(stdout.match(/^ok parsed/gm)).toHaveLength(3)
    if (!/^skip verifier/m.test(stdout)) expect(stdout.match(/^ok verified/gm)).toHaveLength(3)
    else console.log(stdout.match(/^skip .*/m)![0])
  })

  it("Go's crypto/x509 (standard library, no network)", async () => {
    if (!(await has('go'))) return expect.fail('go missing: install golang')
    const { stdout } = await run(
      'go',
      [
        'run',
        'main.go',
        f['root.pem']!,
        f['inter.pem']!,
        f['root.crl']!,
        f['inter.crl']!,
        ...leafFiles(),
        `ocsp=${f['signer.pem']!}`,
      ],
      {
        cwd: join(HERE, 'go-verify'),
        env: {
          ...process.env,
          GOTOOLCHAIN: 'local',
          GOFLAGS: '-mod=mod',
          GOPROXY: 'off',
          GO111MODULE: 'off',
        },
      },
    )
    expect(stdout.match(/^ok /gm)).toHaveLength(6)
    expect(stdout).toContain('spiffe://example.org/interop/ed25519')
  })

  it('nginx with ssl_verify_client on and ssl_crl (both CRLs): a valid certificate in, a revoked one refused', async () => {
    if (!(await has('nginx'))) return expect.fail('nginx missing: install nginx')
    const dir = join(f['root.pem']!, '..', 'nginx')
    mkdirSync(join(dir, 'logs'), { recursive: true })
    const port = await freePort()
    // The server certificate of nginx itself: any; here one more certbound workload with a DNS name.
    const server = openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(dir, 'tls-key.pem'),
      '-out',
      join(dir, 'tls.pem'),
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost',
    ])
    expect(server.code, server.out).toBe(0)
    writeFileSync(join(dir, 'trusted.pem'), s.bundlePem + s.intermediatePem)
    writeFileSync(join(dir, 'nginx.conf'), nginxConfig(dir, port))
    const nginx: ChildProcess = spawn('nginx', ['-p', dir, '-c', join(dir, 'nginx.conf')], {
      stdio: 'ignore',
    })
    try {
      let up = false
      for (let i = 0; i < 50 && !up; i++) {
        up = await new Promise((resolve) => {
          const c = createServer()
            .once('error', () => resolve(true))
            .listen(port, '127.0.0.1', () => c.close(() => resolve(false)))
        })
        if (!up) await sleep(100)
      }
      const curl = (cert: string, key: string) =>
        run('curl', [
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--cacert',
          join(dir, 'tls.pem'),
          '--cert',
          cert,
          '--key',
          key,
          `https://localhost:${port}/`,
        ]).then(
          (r) => r.stdout,
          (e: { stdout: string }) => e.stdout,
        )
      expect(await curl(f['ec-p256.pem']!, f['ec-p256-key.pem']!)).toBe('200')
      expect(await curl(f['rsa-2048.pem']!, f['rsa-2048-key.pem']!)).toBe('200')
      // nginx answers 400 "The SSL certificate error" to a revoked client certificate.
      expect(await curl(f['revoked.pem']!, f['revoked-key.pem']!)).toBe('400')
    } finally {
      nginx.kill('SIGTERM')
    }
  })
})

async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** The README's nginx configuration, with the paths of this test. */
function nginxConfig(dir: string, port: number): string {
  return `daemon off;
master_process off;
worker_processes 1;
error_log ${dir}/logs/error.log;
pid ${dir}/logs/nginx.pid;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/logs/body;
  proxy_temp_path ${dir}/logs/proxy;
  fastcgi_temp_path ${dir}/logs/fastcgi;
  uwsgi_temp_path ${dir}/logs/uwsgi;
  scgi_temp_path ${dir}/logs/scgi;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/tls.pem;
    ssl_certificate_key ${dir}/tls-key.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_client_certificate ${dir}/trusted.pem;
    ssl_crl ${dir}/../crls.pem;
    location / { return 200 "$ssl_client_s_dn\\n"; }
  }
}
`
}
