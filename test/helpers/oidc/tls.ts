import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A TLS server credential for 127.0.0.1 / localhost under its own throwaway root (openssl). */
export interface LoopbackTls {
  readonly caPem: string
  readonly certPem: string
  readonly keyPem: string
}

const CNF = `[req]
distinguished_name = dn
[dn]
[root]
basicConstraints = critical,CA:true
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
subjectAltName = IP:127.0.0.1,DNS:localhost
`

/** Makes a root and a server certificate for 127.0.0.1, as an external issuer would have. */
export function loopbackTls(cn = 'loopback issuer'): LoopbackTls {
  const dir = mkdtempSync(join(tmpdir(), 'certbound-oidc-tls-'))
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  try {
    writeFileSync(join(dir, 'ca.cnf'), CNF)
    ssl(
      'req',
      '-x509',
      '-new',
      ...ec,
      '-keyout',
      'root.key',
      '-out',
      'root.pem',
      '-days',
      '2',
      '-subj',
      `/CN=${cn} root`,
      '-config',
      'ca.cnf',
      '-extensions',
      'root',
    )
    ssl(
      'req',
      '-new',
      ...ec,
      '-keyout',
      'leaf.key',
      '-out',
      'leaf.csr',
      '-subj',
      `/CN=${cn}`,
      '-config',
      'ca.cnf',
    )
    ssl(
      'x509',
      '-req',
      '-in',
      'leaf.csr',
      '-CA',
      'root.pem',
      '-CAkey',
      'root.key',
      '-set_serial',
      '0x1234',
      '-days',
      '1',
      '-extfile',
      'ca.cnf',
      '-extensions',
      'leaf',
      '-sha256',
      '-out',
      'leaf.pem',
    )
    const read = (f: string) => readFileSync(join(dir, f), 'utf8')
    return { caPem: read('root.pem'), certPem: read('leaf.pem'), keyPem: read('leaf.key') }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
