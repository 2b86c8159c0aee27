import { X509Certificate, randomBytes } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { x5tS256 } from '../../../src/crypto/thumbprint.js'
import { CERTBOUND_SERVER_EKU } from '@certbound/verifier/mtls'

/** A certificate with its key, as files and parsed. */
export interface Issued {
  certPem: string
  keyPem: string
  /** Leaf then intermediate (what a workload presents). */
  chainPem: string
  certificate: X509Certificate
  thumbprint: string
  spiffeId: string
}

/** A throwaway PKI made with the openssl CLI: root → intermediate → leaves (EC P-256). */
export interface TestPki {
  dir: string
  rootPem: string
  intermediatePem: string
  intermediate: Issued
  server: Issued
  leaf(name: string): Issued
  /** A leaf with the same SPIFFE ID as `a`, from an unrelated root. */
  rogue: Issued
  cleanup(): void
}

const CONFIG = `
[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[intermediate]
basicConstraints = critical,CA:true,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
`

function leafExt(san: string, eku = 'clientAuth,serverAuth'): string {
  return `[ext]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = ${eku}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = ${san}
`
}

export function createTestPki(trustDomain = 'example.org'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-verifier-'))
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  const read = (f: string) => readFileSync(join(dir, f), 'utf8')
  const serial = () => `0x${randomBytes(9).toString('hex').replace(/^./, '1')}`
  writeFileSync(join(dir, 'ca.cnf'), CONFIG)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']

  const selfSigned = (name: string, cn: string) =>
    ssl(
      'req',
      '-x509',
      '-new',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.pem`,
      '-days',
      '2',
      '-subj',
      `/CN=${cn}`,
      '-config',
      'ca.cnf',
      '-extensions',
      'root',
      '-sha256',
    )
  const sign = (name: string, ca: string, subj: string, extfile: string, ext: string) => {
    ssl(
      'req',
      '-new',
      ...ec,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subj,
      '-config',
      'ca.cnf',
    )
    ssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.pem`,
      '-CAkey',
      `${ca}.key`,
      '-set_serial',
      serial(),
      '-days',
      '1',
      '-extfile',
      extfile,
      '-extensions',
      ext,
      '-sha256',
      '-out',
      `${name}.pem`,
    )
  }
  const issued = (name: string, chainTail: string, spiffeId: string): Issued => {
    const certPem = read(`${name}.pem`)
    const certificate = new X509Certificate(certPem)
    return {
      certPem,
      keyPem: read(`${name}.key`),
      chainPem: certPem + chainTail,
      certificate,
      thumbprint: x5tS256(certificate.raw),
      spiffeId,
    }
  }

  selfSigned('root', 'certbound test root')
  sign('intermediate', 'root', '/CN=certbound test intermediate', 'ca.cnf', 'intermediate')
  const intermediatePem = read('intermediate.pem')
  const leaves = new Map<string, Issued>()
  const leaf = (name: string): Issued => {
    let found = leaves.get(name)
    if (found === undefined) {
      const spiffeId = `spiffe://${trustDomain}/workload-${name}`
      writeFileSync(join(dir, `${name}.ext`), leafExt(`URI:${spiffeId}`))
      sign(`leaf-${name}`, 'intermediate', `/O=${trustDomain}`, `${name}.ext`, 'ext')
      found = issued(`leaf-${name}`, intermediatePem, spiffeId)
      leaves.set(name, found)
    }
    return found
  }
  // The CA server's certificate: serverAuth and the certbound server marker.
  const serverEku = `serverAuth,${CERTBOUND_SERVER_EKU}`
  writeFileSync(join(dir, 'server.ext'), leafExt('DNS:localhost,IP:127.0.0.1', serverEku))
  sign('server', 'intermediate', '/CN=localhost', 'server.ext', 'ext')

  selfSigned('rogue-root', 'certbound test root')
  const rogueId = `spiffe://${trustDomain}/workload-a`
  writeFileSync(join(dir, 'rogue.ext'), leafExt(`URI:${rogueId}`))
  sign('rogue', 'rogue-root', `/O=${trustDomain}`, 'rogue.ext', 'ext')

  return {
    dir,
    rootPem: read('root.pem'),
    intermediatePem,
    intermediate: issued('intermediate', '', ''),
    server: issued('server', intermediatePem, ''),
    leaf,
    rogue: issued('rogue', read('rogue-root.pem'), rogueId),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}
