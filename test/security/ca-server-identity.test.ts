import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:tls'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CERTBOUND_SERVER_EKU } from '@certbound/verifier/mtls'
import { createVerifier, VerifyError } from '@certbound/verifier'
import { EKU } from '../../src/x509/oids.js'
import { agentArgs, removeTempDirs, runAgent, tempDir } from '../helpers/agent.js'
import { x509Text } from '../helpers/ca.js'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { hostnamesKey } from '../../src/ca/server-credential.js'
import { spkiDer } from '../../src/crypto/keys.js'
import { sha256Hex, x5tS256 } from '../../src/crypto/thumbprint.js'
import { TestServer } from '../helpers/server.js'
import { grant } from '../helpers/tokens.js'
import { certificateAnswer, RogueCa, startImpostor, type Impostor } from './impostor.js'

/** Where clients fetch the CRL of the server certificate's issuer (its key id), or /v1/crl. */
const isCrlPath = (url: string | undefined) =>
  url === '/v1/crl' || /^\/v1\/ca\/[0-9a-f]+\/crl$/.test(url ?? '')

/*
 * Issue 7, weakness 2: "a certificate of this CA without a SPIFFE ID" let a stolen and revoked
 * server key pose as the CA, and the agent adopted whatever such a server returned. The CA
 * server now carries a dedicated EKU; agent, admin CLI and verifier also check its certificate
 * against the CA's CRL (signature, window, number never lower than one seen), and the agent
 * trusts only certificates that chain to the bundle it started with.
 */

/** The server's TLS certificate (chain) and key, as a thief who copied them would hold them. */
const serverFiles = async (s: TestServer) => {
  const { certPem, keyPem } = await s.serverCredential()
  return { certPem, keyPem }
}

/** The certificate the server presents on a fresh TLS connection. */
function presented(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      rejectUnauthorized: false,
    })
    socket.once('secureConnect', () => {
      resolve(new X509Certificate(socket.getPeerCertificate().raw))
      socket.destroy()
    })
    socket.once('error', reject)
  })
}

afterAll(() => removeTempDirs())

describe('the CA server identity marker', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('only the CA server certificate carries EKU id-kp-certboundServer (openssl reads it)', async () => {
    expect(EKU.certboundServer).toBe(CERTBOUND_SERVER_EKU)
    const server = await presented(s.running.address.port)
    expect(x509Text(server.toString())).toMatch(
      /Extended Key Usage: *\n *TLS Web Server Authentication, 2\.25\.10365697400001155744715433452568906552\n/,
    )
    const workload = await s.enroll('spiffe://example.org/plain-workload')
    expect(x509Text(workload.certPem)).not.toContain(CERTBOUND_SERVER_EKU)
  })
})

describe('an earlier server certificate without the marker', () => {
  it('is replaced at start, so upgraded agents keep working', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'certbound-upgrade-'))
    try {
      const first = await TestServer.start({}, { dataDir })
      // Plant what an earlier version issued: serverAuth only, known and valid in the database.
      const dir = mkdtempSync(join(tmpdir(), 'certbound-old-server-'))
      const ext = join(dir, 'ext')
      writeFileSync(
        ext,
        'basicConstraints=critical,CA:false\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n',
      )
      const sh = (args: string[]) =>
        new Promise((resolve, reject) =>
          execFile('openssl', args, (e, out) => (e ? reject(e) : resolve(out))),
        )
      await sh([
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'csr.pem'),
        '-subj',
        '/O=example.org',
      ])
      await sh([
        'x509',
        '-req',
        '-in',
        join(dir, 'csr.pem'),
        '-CA',
        join(dataDir, 'ca/intermediate.pem'),
        '-CAkey',
        join(dataDir, 'ca/intermediate-key.pem'),
        '-set_serial',
        '0x1122334455667788',
        '-days',
        '60', // fresh: only the missing marker makes it stale
        '-extfile',
        ext,
        '-out',
        join(dir, 'cert.pem'),
      ])
      const oldPem = readFileSync(join(dir, 'cert.pem'), 'utf8')
      const old = new X509Certificate(oldPem)
      // As the database holds it: the credential every process serves, with its certificate row.
      const serial = old.serialNumber.toLowerCase()
      const current = await first.serverCredential()
      const stored = await first.store.serverCredentials.replace(
        {
          hostnames: hostnamesKey(first.config.server.hostnames),
          serial,
          chainPem: oldPem + first.intermediatePem,
          keySealed: loadKeyEncryptionKey(dataDir).seal(
            readFileSync(join(dir, 'key.pem'), 'utf8'),
            `server-tls-key:${serial}`,
          ),
          notAfter: Date.parse(old.validTo),
          createdAt: Date.parse(old.validFrom),
        },
        {
          serial,
          kind: 'server',
          spiffeId: null,
          entryId: null,
          thumbprint: x5tS256(old.raw),
          spkiSha256: sha256Hex(spkiDer(old.publicKey)),
          notBefore: Date.parse(old.validFrom),
          notAfter: Date.parse(old.validTo),
          renewedFrom: null,
          der: old.raw,
          issuedAt: Date.parse(old.validFrom),
        },
        current.serial,
        { actor: 'test', action: 'certificate.issue_server', subject: serial, details: {} },
      )
      expect(stored).toBe(true)
      await first.running.close()
      rmSync(dir, { recursive: true, force: true })

      const again = await TestServer.start({}, { dataDir })
      const now = await presented(again.running.address.port)
      expect(now.serialNumber).not.toBe(old.serialNumber)
      expect(now.keyUsage).toContain(CERTBOUND_SERVER_EKU)
      await again.running.close()
    } finally {
      rmSync(dataDir, { recursive: true, force: true })
    }
  })
})

describe('a revoked server certificate, its key copied, serving an impostor', () => {
  let s: TestServer
  let stolen: { certPem: string; keyPem: string }
  let oldCrl: Buffer
  let impostor: Impostor
  let crlMode: 'old' | 'current' | 'none' = 'old'
  const spiffeId = 'spiffe://example.org/victim'
  let out: string
  let args: string[]

  const crlOf = async (url: string) => {
    const res = await request(`${url}/v1/crl`, { dispatcher: s.agent() })
    return Buffer.from(await res.body.arrayBuffer())
  }

  beforeAll(async () => {
    s = await TestServer.start()
    stolen = await serverFiles(s)
    out = join(tempDir('revoked-server'), 'out')
    args = agentArgs(s, spiffeId, out, `https://localhost:${s.running.address.port}`)
    const token = await s.joinToken(await s.createEntry(spiffeId))
    // The agent meets the real CA once: it remembers the CRL number it saw.
    const first = await runAgent([...args, '--join-token', token, '--once'])
    expect(first.code, first.stderr).toBe(0)
    oldCrl = await crlOf(s.url)
    const serial = new X509Certificate(stolen.certPem).serialNumber.toLowerCase()
    const r = await s.call('POST', `/v1/certificates/${serial}/revoke`, {
      as: s.admin,
      json: { reason: 'keyCompromise' },
    })
    expect(r.status, r.text).toBe(200)
    // The CA has a new certificate; the agent's next run sees the newer CRL.
    const second = await runAgent([...args, '--once'])
    expect(second.code, second.stderr).toBe(0)
    const state = JSON.parse(readFileSync(join(out, '..state/agent.json'), 'utf8'))
    // One per CA whose CRL it saw: the issuing CA's (the server certificate's) and the root's
    // (crls.pem in its output directory).
    expect(Object.values(state.crl_numbers ?? {})).toHaveLength(2)
    impostor = await startImpostor(stolen.certPem, stolen.keyPem, async (req, _body, res) => {
      if (isCrlPath(req.url) && crlMode !== 'none') {
        const der = crlMode === 'old' ? oldCrl : await crlOf(s.url)
        return void res.writeHead(200, { 'content-type': 'application/pkix-crl' }).end(der)
      }
      res.writeHead(404).end()
    })
  })
  afterAll(async () => {
    await impostor?.close()
    await s.close()
  })

  const beyondCrl = () => impostor.seen.filter((r) => !isCrlPath(r.path))

  it('replaying the older CRL: the agent refuses (its number is lower than one it saw)', async () => {
    crlMode = 'old'
    const r = await runAgent([...agentArgs(s, spiffeId, out, impostor.url), '--once'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/CRL number \d+ is lower than \d+, already seen: a replayed CRL/)
    expect(beyondCrl()).toEqual([])
  })

  it('with the current CRL: agent, admin CLI and verifier all refuse it as revoked', async () => {
    crlMode = 'current'
    const agent = await runAgent([...agentArgs(s, spiffeId, out, impostor.url), '--once'])
    expect(agent.code).not.toBe(0)
    expect(agent.stderr).toMatch(/which the CA's CRL lists as revoked/)

    const dir = mkdtempSync(join(tmpdir(), 'certbound-impostor-cli-'))
    writeFileSync(
      join(dir, 'ca-config.yaml'),
      `trust_domain: example.org\ndata_dir: ${s.dataDir}\n`,
    )
    const cli = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/index.ts',
          '--config',
          join(dir, 'ca-config.yaml'),
          'entry',
          'list',
        ],
        { env: { ...process.env, CERTBOUND_SERVER: impostor.url }, timeout: 30_000 },
        (error, _stdout, stderr) => resolve({ code: error ? 1 : 0, stderr }),
      ),
    )
    rmSync(dir, { recursive: true, force: true })
    expect(cli.code).not.toBe(0)
    expect(cli.stderr).toMatch(/lists as revoked/)

    const client = await s.enroll('spiffe://example.org/rs-client')
    const { access_token } = await grant(s, client)
    const verifier = createVerifier({
      issuer: s.config.tokens.issuer,
      audience: [...s.config.tokens.audience],
      trustAnchors: s.bundlePem,
      intermediates: s.intermediatePem,
      jwksUri: `${impostor.url}/.well-known/jwks.json`,
    })
    const err = await verifier.verify(access_token, client.certPem).catch((e: unknown) => e)
    await verifier.close()
    expect(err).toBeInstanceOf(VerifyError)
    expect((err as VerifyError).code).toBe('ERR_VERIFIER_UNAVAILABLE')
    expect(beyondCrl()).toEqual([])
  })

  it('without a CRL: refused too (fail closed); the real CA still serves the agent', async () => {
    crlMode = 'none'
    const r = await runAgent([...agentArgs(s, spiffeId, out, impostor.url), '--once'])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/no CRL/)
    expect(beyondCrl()).toEqual([])
    const ok = await runAgent([...args, '--once'])
    expect(ok.code, ok.stderr).toBe(0)
  })
})

describe('a server with a valid server key that hands out another CA’s word', () => {
  let s: TestServer
  let rogue: RogueCa
  let impostor: Impostor
  let mode: 'rogue-certificate' | 'rogue-bundle' = 'rogue-certificate'

  beforeAll(async () => {
    s = await TestServer.start()
    rogue = new RogueCa()
    const { certPem, keyPem } = await serverFiles(s)
    const real = s.agent()
    impostor = await startImpostor(certPem, keyPem, async (req, body, res) => {
      const forward = async () => {
        const r = await request(`${s.url}${req.url}`, {
          method: req.method as 'GET',
          headers: {
            ...(req.headers.authorization && { authorization: req.headers.authorization }),
            'content-type': req.headers['content-type'] ?? 'application/json',
          },
          body: req.method === 'GET' ? undefined : body,
          dispatcher: real,
        })
        res.writeHead(r.statusCode, { 'content-type': String(r.headers['content-type'] ?? '') })
        res.end(Buffer.from(await r.body.arrayBuffer()))
      }
      if (isCrlPath(req.url)) return forward()
      if (req.url === '/v1/enroll' && mode === 'rogue-certificate') {
        const leaf = await rogue.sign(JSON.parse(body).csr, 'spiffe://example.org/rogue-victim')
        res.writeHead(201, { 'content-type': 'application/json' })
        return void res.end(JSON.stringify(certificateAnswer(leaf, rogue.rootPem)))
      }
      if (req.url === '/v1/enroll') return forward()
      if (req.url === '/v1/bundle') return void res.writeHead(200).end(rogue.rootPem)
      res.writeHead(503).end()
    })
  })
  afterAll(async () => {
    await impostor.close()
    rogue.close()
    await s.close()
  })

  it('a certificate from a rogue chain is refused, and nothing is published', async () => {
    mode = 'rogue-certificate'
    const spiffeId = 'spiffe://example.org/rogue-victim'
    const out = join(tempDir('rogue-chain'), 'out')
    const token = await s.joinToken(await s.createEntry(spiffeId))
    const r = await runAgent([
      ...agentArgs(s, spiffeId, out, impostor.url),
      '--join-token',
      token,
      '--once',
    ])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/a certificate that this agent does not trust/)
    expect(existsSync(join(out, '..data'))).toBe(false)
  })

  it('a rogue trust bundle does not replace bundle.pem', async () => {
    mode = 'rogue-bundle'
    const spiffeId = 'spiffe://example.org/bundle-victim'
    const out = join(tempDir('rogue-bundle'), 'out')
    const token = await s.joinToken(await s.createEntry(spiffeId))
    // Enrolment is forwarded to the real CA; the token endpoint fails, so --once exits non-zero
    // but publishes the new certificate with the bundle it trusts.
    const r = await runAgent([
      ...agentArgs(s, spiffeId, out, impostor.url),
      '--join-token',
      token,
      '--once',
    ])
    expect(r.code).not.toBe(0)
    expect(r.stderr).toMatch(/trust anchors that no current anchor signed/)
    const published = readFileSync(join(out, 'bundle.pem'), 'utf8')
    expect(published).not.toContain(rogue.rootPem.trim().split('\n')[1])
    expect(new X509Certificate(published).fingerprint256).toBe(
      new X509Certificate(s.bundlePem).fingerprint256,
    )
  })
})
