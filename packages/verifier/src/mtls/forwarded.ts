import { createHash } from 'node:crypto'
import type { X509Certificate } from 'node:crypto'
import { VerifyError } from '../errors.js'
import { parsePemBundle, toCertificate } from './pem.js'

/**
 * Header formats in which a TLS-terminating proxy forwards the client certificate:
 * - `client-cert`: RFC 9440 `Client-Cert` (+ optional `Client-Cert-Chain`), `:base64(DER):`.
 * - `xfcc`: Envoy `X-Forwarded-Client-Cert`; only the last element (the trusted hop's) counts,
 *   and it must carry `Cert=` (a `Hash=` alone proves nothing to us).
 * - `escaped-pem`: a URL-encoded PEM header such as nginx's `$ssl_client_escaped_cert`.
 */
export type ForwardedFormat = 'client-cert' | 'xfcc' | 'escaped-pem'

/** A certificate taken from a forwarding header, not yet validated. */
export interface ForwardedCertificate {
  certificate: X509Certificate
  /** Intermediates the proxy passed along (untrusted; path building only). */
  chain: X509Certificate[]
}

function refuse(message: string): VerifyError {
  return new VerifyError('ERR_CLIENT_CERT_REQUIRED', message)
}

const SF_BINARY = /^:([A-Za-z0-9+/]*={0,2}):$/

function sfBinary(item: string, what: string): Buffer {
  const m = SF_BINARY.exec(item.trim())
  if (m === null) throw refuse(`${what} is not a structured-field byte sequence`)
  return Buffer.from(m[1]!, 'base64')
}

function one(input: Buffer | string, what: string): X509Certificate {
  const cert = toCertificate(input)
  if (cert === undefined) throw refuse(`${what} does not hold exactly one certificate`)
  return cert
}

function cas(certs: readonly (X509Certificate | undefined)[]): X509Certificate[] {
  return certs.filter((c): c is X509Certificate => c !== undefined && c.ca)
}

/**
 * Parses RFC 9440 §2.2 `Client-Cert` and §2.3 `Client-Cert-Chain`. Only for headers from a
 * trusted proxy; the result still has to be validated like a socket certificate.
 *
 * @throws {VerifyError} `ERR_CLIENT_CERT_REQUIRED` if the value is malformed.
 * @example
 * ```ts
 * const { certificate, chain } = parseClientCert(req.headers['client-cert'], req.headers['client-cert-chain'])
 * ```
 */
export function parseClientCert(value: string, chainValue?: string): ForwardedCertificate {
  const certificate = one(sfBinary(value, 'Client-Cert'), 'Client-Cert')
  const chain =
    chainValue === undefined
      ? []
      : cas(chainValue.split(',').map((item) => toCertificate(sfBinary(item, 'Client-Cert-Chain'))))
  return { certificate, chain }
}

/** Splits on `sep` outside double-quoted strings (which may contain `\"`). */
function splitOutsideQuotes(value: string, sep: string): string[] {
  const parts: string[] = []
  let start = 0
  let quoted = false
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]
    if (quoted && ch === '\\') i++
    else if (ch === '"') quoted = !quoted
    else if (!quoted && ch === sep) {
      parts.push(value.slice(start, i))
      start = i + 1
    }
  }
  if (quoted) throw refuse('X-Forwarded-Client-Cert has an unterminated quoted value')
  parts.push(value.slice(start))
  return parts
}

function xfccPairs(element: string): Map<string, string> {
  const pairs = new Map<string, string>()
  for (const pair of splitOutsideQuotes(element, ';')) {
    const eq = pair.indexOf('=')
    if (eq < 1) throw refuse('X-Forwarded-Client-Cert has a malformed pair')
    let v = pair.slice(eq + 1).trim()
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) {
      v = v.slice(1, -1).replace(/\\(.)/g, '$1')
    }
    const k = pair.slice(0, eq).trim().toLowerCase()
    if (pairs.has(k) && k !== 'uri' && k !== 'dns') {
      throw refuse(`X-Forwarded-Client-Cert repeats ${k}`)
    }
    pairs.set(k, v)
  }
  return pairs
}

function urlDecode(value: string, what: string): string {
  try {
    return decodeURIComponent(value)
  } catch {
    throw refuse(`${what} is not URL-encoded`)
  }
}

/**
 * Parses Envoy's `X-Forwarded-Client-Cert`. Only the last element counts (the one the trusted
 * hop appended; earlier ones may come from the client), and it must carry `Cert=`; a `Hash=`
 * next to it must match.
 *
 * @throws {VerifyError} `ERR_CLIENT_CERT_REQUIRED` if the value is malformed or has no `Cert=`.
 * @example
 * ```ts
 * const { certificate } = parseXfcc('By=spiffe://example.org/proxy;Hash=…;Cert="-----BEGIN%20…"')
 * ```
 */
export function parseXfcc(value: string): ForwardedCertificate {
  const elements = splitOutsideQuotes(value, ',')
  const pairs = xfccPairs(elements[elements.length - 1]!)
  const cert = pairs.get('cert')
  if (cert === undefined || cert === '') {
    throw refuse('X-Forwarded-Client-Cert element carries no Cert= (a Hash alone is not enough)')
  }
  const certificate = one(urlDecode(cert, 'XFCC Cert'), 'XFCC Cert')
  const hash = pairs.get('hash')
  if (hash !== undefined) {
    const actual = createHash('sha256').update(certificate.raw).digest('hex')
    if (hash.toLowerCase() !== actual) throw refuse('XFCC Hash does not match its Cert')
  }
  const chainPem = pairs.get('chain')
  let chain: X509Certificate[] = []
  if (chainPem !== undefined) {
    try {
      chain = cas(parsePemBundle(urlDecode(chainPem, 'XFCC Chain'), 'XFCC Chain'))
    } catch (err) {
      if (err instanceof VerifyError) throw err
      throw refuse('XFCC Chain does not parse')
    }
  }
  return { certificate, chain }
}

/**
 * Parses a URL-encoded PEM certificate, as nginx's `$ssl_client_escaped_cert` (configured with
 * `proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;`).
 *
 * @throws {VerifyError} `ERR_CLIENT_CERT_REQUIRED` unless it holds exactly one certificate.
 * @example
 * ```ts
 * const { certificate } = parseEscapedPem(req.headers['x-ssl-client-cert'])
 * ```
 */
export function parseEscapedPem(value: string): ForwardedCertificate {
  const pem = urlDecode(value.trim(), 'forwarded PEM')
  return { certificate: one(pem, 'forwarded PEM header'), chain: [] }
}
