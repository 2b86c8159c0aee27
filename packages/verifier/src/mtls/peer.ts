import { X509Certificate } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import type { TLSSocket } from 'node:tls'
import { VerifyError } from '../errors.js'
import { parseClientCert, parseEscapedPem, parseXfcc } from './forwarded.js'
import type { ForwardedCertificate, ForwardedFormat } from './forwarded.js'

/** How certificates forwarded by a TLS-terminating proxy are handled (RFC 9440 §4). */
export interface ForwardingOptions {
  /**
   * IPs or CIDRs (IPv4/IPv6) of proxies whose forwarded certificate headers are honoured.
   * Default empty: forwarded certificates are never trusted, and a request carrying one is
   * refused and logged as a spoofing attempt. A trusted proxy must strip these headers from
   * what its own clients send.
   */
  trustedProxies?: readonly string[]
  /** Formats honoured from a trusted proxy. Default all three. */
  forwardedFormats?: readonly ForwardedFormat[]
  /** Header of the `escaped-pem` format. Default `x-ssl-client-cert`. */
  escapedPemHeader?: string
}

/** Where the certificate used for the binding check came from. */
export type CertificateSource = 'tls' | 'forwarded'

/** The outcome of looking for the presented certificate of one request. */
export type Presented =
  | {
      ok: true
      certificate: X509Certificate | undefined
      chain: X509Certificate[]
      source: CertificateSource
    }
  | { ok: false; error: VerifyError; spoof: boolean; headers: string[] }

// Headers that carry a client certificate in some proxy's convention. From an untrusted peer
// any of them is a spoofing attempt; from a trusted one only the configured format counts.
const CERT_HEADERS = [
  'client-cert',
  'client-cert-chain',
  'x-forwarded-client-cert',
  'x-ssl-client-cert',
  'x-ssl-cert',
  'x-client-cert',
  'x-client-certificate',
  'ssl-client-cert',
  'x-arr-clientcert',
  'x-amzn-mtls-clientcert',
]

/** The names of the client-certificate forwarding headers this request carries. */
export function forwardedCertificateHeaders(
  header: (name: string) => string | undefined,
): string[] {
  return CERT_HEADERS.filter((n) => (header(n) ?? '').trim() !== '')
}

/** Strips the IPv4-mapped prefix (`::ffff:10.0.0.1` → `10.0.0.1`). */
export function normalizeAddress(address: string | undefined): string | undefined {
  if (address === undefined) return undefined
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return m ? m[1] : address
}

/** Parses a trusted-proxy list into a matcher; throws `TypeError` on a bad entry. */
export function createProxyMatcher(
  entries: readonly string[],
): (address: string | undefined) => boolean {
  const list = new BlockList()
  for (const entry of entries) {
    const [raw, bits, extra] = entry.trim().split('/')
    const ip = normalizeAddress(raw)
    const family = ip === undefined ? 0 : isIP(ip)
    const max = family === 4 ? 32 : 128
    // Digits only: Number('') is 0, so a sloppy "10.0.0.1/" would otherwise trust everyone.
    const prefix = bits === undefined ? max : /^[0-9]{1,3}$/.test(bits) ? Number(bits) : NaN
    if (family === 0 || extra !== undefined || !(prefix >= 0 && prefix <= max)) {
      throw new TypeError(`trustedProxies: "${entry}" is not an IP address or CIDR`)
    }
    list.addSubnet(ip!, prefix, family === 4 ? 'ipv4' : 'ipv6')
  }
  return (address) => {
    const ip = normalizeAddress(address)
    const family = ip === undefined ? 0 : isIP(ip)
    return family !== 0 && list.check(ip!, family === 4 ? 'ipv4' : 'ipv6')
  }
}

/**
 * The certificate and the chain the peer sent on this TLS connection, if any. Read through
 * `getPeerCertificate(true)`, which can be called any number of times: node's
 * `getPeerX509Certificate()` moves the peer chain into the object it returns, after which
 * `getPeerCertificate(true)` no longer shows the intermediates.
 */
export function socketCertificate(socket: unknown): {
  certificate?: X509Certificate
  chain: X509Certificate[]
} {
  const tls = socket as Partial<TLSSocket> | undefined
  if (typeof tls?.getPeerCertificate !== 'function') return { chain: [] }
  const detail = tls.getPeerCertificate(true)
  if (detail?.raw === undefined) return { chain: [] }
  const chain: X509Certificate[] = []
  let node = detail.issuerCertificate
  while (node?.raw !== undefined && node !== detail && chain.length < 4) {
    chain.push(new X509Certificate(node.raw))
    if (node.issuerCertificate === node) break // a self-signed root points at itself
    node = node.issuerCertificate
  }
  return { certificate: new X509Certificate(detail.raw), chain }
}

/** Looks up the certificate presented on one request; built by {@link createCertificateResolver}. */
export type CertificateResolver = (
  header: (name: string) => string | undefined,
  socket: unknown,
  peer: string | undefined,
) => Presented

function parseForwarded(
  format: ForwardedFormat,
  value: string,
  header: (name: string) => string | undefined,
): ForwardedCertificate {
  if (format === 'client-cert') return parseClientCert(value, header('client-cert-chain'))
  return format === 'xfcc' ? parseXfcc(value) : parseEscapedPem(value)
}

/**
 * Builds the per-request lookup of the presented certificate: the TLS socket's, or, from a
 * trusted proxy, only the one in its forwarding header (RFC 9440 semantics). From a trusted
 * proxy exactly one forwarding header of an accepted format may be present (plus
 * `Client-Cert-Chain` with `Client-Cert`); anything else means the proxy passed a client's
 * header through. No header from a trusted proxy means no client certificate.
 */
export function createCertificateResolver(options: ForwardingOptions): CertificateResolver {
  const trusted = createProxyMatcher(options.trustedProxies ?? [])
  const headerOf: Record<ForwardedFormat, string> = {
    'client-cert': 'client-cert',
    xfcc: 'x-forwarded-client-cert',
    'escaped-pem': (options.escapedPemHeader ?? 'x-ssl-client-cert').toLowerCase(),
  }
  const accepted = (options.forwardedFormats ?? ['client-cert', 'xfcc', 'escaped-pem']).filter(
    (f) => f in headerOf,
  )
  const names = [...new Set([...CERT_HEADERS, headerOf['escaped-pem']])]

  return (header, socket, peer) => {
    const present = names.filter((n) => (header(n) ?? '').trim() !== '')
    if (present.length === 0) {
      // A proxy's own TLS certificate never stands for its client: a leaked token bound to it
      // would otherwise work for anyone who can reach the proxy.
      if (trusted(peer)) return { ok: true, certificate: undefined, chain: [], source: 'forwarded' }
      const { certificate, chain } = socketCertificate(socket)
      return { ok: true, certificate, chain, source: 'tls' }
    }
    const fail = (message: string, spoof: boolean): Presented => ({
      ok: false,
      error: new VerifyError('ERR_CLIENT_CERT_REQUIRED', message),
      spoof,
      headers: present,
    })
    if (!trusted(peer)) return fail('forwarded client certificate from an untrusted peer', true)
    const primary = present.filter((n) => n !== 'client-cert-chain')
    if (primary.length !== 1) return fail('ambiguous forwarded client certificate headers', false)
    const name = primary[0]!
    const format = accepted.find((f) => headerOf[f] === name)
    const strayChain = present.length > 1 && format !== 'client-cert'
    if (format === undefined || strayChain) {
      return fail(`forwarded client certificate header ${name} is not accepted`, false)
    }
    try {
      return { ok: true, ...parseForwarded(format, header(name)!, header), source: 'forwarded' }
    } catch (err) {
      if (!(err instanceof VerifyError)) throw err
      return { ok: false, error: err, spoof: false, headers: present }
    }
  }
}
