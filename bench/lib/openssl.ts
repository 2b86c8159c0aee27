import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'

/** Certificates for the peers, made by openssl: nothing of certbound's own code is involved. */

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A P-256 key (SEC1 PEM, as cfssl 1.2 reads it) and a self-signed certificate for it. */
export function selfSigned(
  dir: string,
  name: string,
  opts: { ca: boolean; san?: string },
): { certFile: string; keyFile: string; cert: string; key: string } {
  const keyFile = join(dir, `${name}-key.pem`)
  const certFile = join(dir, `${name}.pem`)
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', keyFile])
  const ext = opts.ca
    ? [
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]
    : [
        '-addext',
        'basicConstraints=critical,CA:FALSE',
        '-addext',
        'extendedKeyUsage=serverAuth',
        ...(opts.san ? ['-addext', `subjectAltName=${opts.san}`] : []),
      ]
  openssl([
    'req',
    '-x509',
    '-new',
    '-key',
    keyFile,
    '-subj',
    `/CN=${name}`,
    '-days',
    '2',
    ...ext,
    '-out',
    certFile,
  ])
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
  }
}
