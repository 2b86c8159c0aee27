import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openssl, verifyLeaf } from '../helpers/openssl.js'
import { sleep, TestServer } from '../helpers/server.js'

// The offline root (CONTRACT "CA rotation"): the root key never on the server; a new issuing
// CA's CSR is signed offline with openssl, imported, and the root's CRL, signed offline with
// `openssl ca -gencrl`, imported too.

const ROOT = new URL('../..', import.meta.url).pathname

describe('offline root: ca intermediate-csr, import-intermediate, import-crl', () => {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-offline-'))
  const dataDir = join(dir, 'data')
  const offline = join(dir, 'offline')
  const config = join(dir, 'ca-config.yaml')
  let s: TestServer
  const cli = async (args: string[]) => {
    try {
      const r = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', 'src/cli/index.ts', '--config', config, ...args],
        { cwd: ROOT },
      )
      return { code: 0, out: r.stdout + r.stderr }
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string }
      return { code: err.code, out: err.stdout + err.stderr }
    }
  }

  beforeAll(async () => {
    writeFileSync(
      config,
      `trust_domain: example.org\ndata_dir: ${dataDir}\nlog_level: silent\nserver:\n  listen: 127.0.0.1:0\n`,
    )
    const init = await cli(['init'])
    expect(init.code, init.out).toBe(0)
    // The root key leaves the server.
    mkdirSync(offline)
    renameSync(join(dataDir, 'ca/root-key.pem'), join(offline, 'root-key.pem'))
    s = await TestServer.start({}, { dataDir })
  })
  afterAll(async () => {
    await s.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const keyIdOf = (pem: string) =>
    openssl(['x509', '-noout', '-ext', 'subjectKeyIdentifier'], pem)
      .out.split('\n')[1]!
      .trim()
      .replace(/:/g, '')
      .toLowerCase()

  it('rotation through a CSR signed offline; the root CRL signed offline and imported', async () => {
    const rotate = await cli(['ca', 'rotate'])
    expect(rotate.code).not.toBe(0)
    expect(rotate.out).toMatch(/root key is not on this server/)
    const rootId = keyIdOf(s.bundlePem)
    expect((await s.call('GET', `/v1/ca/${rootId}/crl`)).status).toBe(404)

    const csr = await cli(['ca', 'intermediate-csr', '--out', join(offline, 'inter.csr')])
    expect(csr.code, csr.out).toBe(0)
    const base = s.config.server.publicUrl
    writeFileSync(
      join(offline, 'ext.cnf'),
      [
        'basicConstraints=critical,CA:TRUE,pathlen:0',
        'keyUsage=critical,digitalSignature,keyCertSign,cRLSign',
        'subjectKeyIdentifier=hash',
        'authorityKeyIdentifier=keyid:always',
        `crlDistributionPoints=URI:${base}/v1/ca/${rootId}/crl`,
        `authorityInfoAccess=OCSP;URI:${base}/v1/ocsp,caIssuers;URI:${base}/v1/ca/${rootId}.crt`,
        '',
      ].join('\n'),
    )
    const rootPem = join(dataDir, 'ca/root.pem')
    const signed = openssl([
      'x509',
      '-req',
      '-in',
      join(offline, 'inter.csr'),
      '-CA',
      rootPem,
      '-CAkey',
      join(offline, 'root-key.pem'),
      '-extfile',
      join(offline, 'ext.cnf'),
      '-days',
      '30',
      '-sha256',
      '-out',
      join(offline, 'inter.pem'),
    ])
    expect(signed.code, signed.out).toBe(0)
    const imported = await cli(['ca', 'import-intermediate', join(offline, 'inter.pem')])
    expect(imported.code, imported.out).toBe(0)
    const newPem = readFileSync(join(offline, 'inter.pem'), 'utf8')
    expect(JSON.parse(imported.out).key_id).toBe(keyIdOf(newPem))
    // ca/intermediate.pem names the current issuer.
    expect(
      new X509Certificate(readFileSync(join(dataDir, 'ca/intermediate.pem'))).fingerprint256,
    ).toBe(new X509Certificate(newPem).fingerprint256)

    // The root's CRL, signed offline.
    writeFileSync(join(offline, 'index.txt'), '')
    writeFileSync(join(offline, 'crlnumber'), '01\n')
    writeFileSync(
      join(offline, 'ca.cnf'),
      `[ca]\ndefault_ca = root\n[root]\ndatabase = ${offline}/index.txt\ncrlnumber = ${offline}/crlnumber\ndefault_md = sha256\ndefault_crl_days = 30\ncrl_extensions = crl_ext\n[crl_ext]\nauthorityKeyIdentifier = keyid:always\n`,
    )
    const gen = openssl([
      'ca',
      '-config',
      join(offline, 'ca.cnf'),
      '-gencrl',
      '-cert',
      rootPem,
      '-keyfile',
      join(offline, 'root-key.pem'),
      '-out',
      join(offline, 'root.crl'),
    ])
    expect(gen.code, gen.out).toBe(0)
    const crl = await cli(['ca', 'import-crl', join(offline, 'root.crl')])
    expect(crl.code, crl.out).toBe(0)
    expect(JSON.parse(crl.out)).toMatchObject({ key_id: rootId, crl_number: '1' })
    const again = await cli(['ca', 'import-crl', join(offline, 'root.crl')])
    expect(again.code).not.toBe(0) // not newer than the stored one

    // The server adopts the new issuer on its maintenance tick.
    let current = ''
    for (let i = 0; i < 60 && current !== keyIdOf(newPem); i++) {
      const r = await request(`${s.url}/v1/ca/intermediate.crt`, { dispatcher: s.agent() })
      current = keyIdOf(new X509Certificate(Buffer.from(await r.body.arrayBuffer())).toString())
      if (current !== keyIdOf(newPem)) await sleep(500)
    }
    expect(current).toBe(keyIdOf(newPem))
    const cred = await s.enroll('spiffe://example.org/offline/w')
    expect(verifyLeaf(cred.certPem, s.bundlePem, newPem).code).toBe(0)
    const rootCrl = await request(`${s.url}/v1/ca/${rootId}/crl`, { dispatcher: s.agent() })
    expect(rootCrl.statusCode).toBe(200)
    const der = Buffer.from(await rootCrl.body.arrayBuffer())
    const pem = readFileSync(join(offline, 'root.crl'), 'utf8')
    expect(der.toString('base64')).toBe(pem.replace(/-----[^-]+-----|\s/g, ''))
  })
})
