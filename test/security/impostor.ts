import { execFile } from 'node:child_process'
import { X509Certificate } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { openssl } from '../helpers/openssl.js'

const run = promisify(execFile)

/** One request an impostor received. */
export interface Seen {
  readonly method: string
  readonly path: string
  readonly authorization?: string
}

/** An HTTPS server posing as the CA with a copy of a server certificate and its key. */
export interface Impostor {
  /** `https://localhost:<port>`: the name the CA's certificate carries. */
  readonly url: string
  readonly seen: Seen[]
  close(): Promise<void>
}

export type Handler = (
  req: IncomingMessage,
  body: string,
  res: ServerResponse,
) => void | Promise<void>

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (d: string) => (text += d))
    req.on('end', () => resolve(text))
  })
}

export async function startImpostor(
  certPem: string,
  keyPem: string,
  handler: Handler,
): Promise<Impostor> {
  const seen: Seen[] = []
  const server: Server = createServer({ cert: certPem, key: keyPem }, (req, res) => {
    seen.push({
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
    })
    void readBody(req).then(async (body) => {
      try {
        await handler(req, body, res)
      } catch (e) {
        res.writeHead(500).end(String(e))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `https://localhost:${(server.address() as AddressInfo).port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A CA of our own (openssl), which signs certificates for CSRs it is handed. */
export class RogueCa {
  readonly dir = mkdtempSync(join(tmpdir(), 'certbound-rogue-'))
  readonly rootPem: string

  constructor() {
    const r = openssl([
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      join(this.dir, 'root-key.pem'),
      '-out',
      join(this.dir, 'root.pem'),
      '-subj',
      '/O=example.org/CN=example.org certbound root CA',
      '-days',
      '2',
      '-addext',
      'basicConstraints=critical,CA:true',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ])
    if (r.code !== 0) throw new Error(r.out)
    this.rootPem = readFileSync(join(this.dir, 'root.pem'), 'utf8')
  }

  /** A leaf for the CSR's key naming `spiffeId` (openssl in a child: never block the event loop). */
  async sign(csrPem: string, spiffeId: string): Promise<string> {
    const n = Math.random().toString(36).slice(2)
    writeFileSync(join(this.dir, `${n}.csr`), csrPem)
    writeFileSync(
      join(this.dir, `${n}.ext`),
      `basicConstraints=critical,CA:false\nkeyUsage=critical,digitalSignature\n` +
        `extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=URI:${spiffeId}\n`,
    )
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      join(this.dir, `${n}.csr`),
      '-CA',
      join(this.dir, 'root.pem'),
      '-CAkey',
      join(this.dir, 'root-key.pem'),
      '-set_serial',
      `0x${Date.now().toString(16)}`,
      '-days',
      '1',
      '-extfile',
      join(this.dir, `${n}.ext`),
      '-out',
      join(this.dir, `${n}.pem`),
    ])
    return readFileSync(join(this.dir, `${n}.pem`), 'utf8')
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true })
  }
}

/** A certificate answer as the CA gives it (for a rogue certificate, with the rogue root). */
export function certificateAnswer(leafPem: string, chainTail: string) {
  const cert = new X509Certificate(leafPem)
  return {
    serial: cert.serialNumber.toLowerCase(),
    spiffe_id: cert.subjectAltName?.replace(/^URI:/, '') ?? '',
    certificate: leafPem,
    chain: leafPem + chainTail,
    not_before: new Date(cert.validFrom).toISOString(),
    not_after: new Date(cert.validTo).toISOString(),
  }
}
