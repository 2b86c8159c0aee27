import { X509Certificate } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { Agent, buildConnector, request } from 'undici'
import { checkCaServerIdentity } from './ca-server.js'
import { checkCrl, subjectKeyIdHex, type CheckedCrl } from './crl.js'

/** The highest CRL number seen per issuing CA (by SHA-256 fingerprint), kept by the caller. */
export interface CrlNumbers {
  get(issuer: string): bigint | undefined
  set(issuer: string, n: bigint): void
}

/** Options of {@link CaServerTrust}. */
export interface CaServerTrustOptions {
  /** PEM trust anchors (and optionally intermediates) the CA server must chain to. */
  readonly ca: string | readonly string[]
  /** A fetched CRL is reused this long before a new connection fetches it again. Default 60 000. */
  readonly crlMaxAgeMs?: number
  /** Where the highest CRL numbers seen are kept (the agent persists them). Default: memory. */
  readonly crlNumbers?: CrlNumbers
  /** Connect and CRL request timeout, ms. Default 10 000. */
  readonly timeoutMs?: number
}

const SKEW_MS = 60_000
const MAX_CRL_BYTES = 8 * 1024 * 1024

/**
 * How the agent, the admin CLI and the verifier recognise the certbound server: TLS to the
 * pinned anchors, the certbound server EKU (a workload certificate for the same hostname does
 * not pass), and then the server certificate against the CA's own CRL, fetched from the same
 * server at `/v1/ca/{key id}/crl` of the CA that issued it (the current or a previous one). The CRL's signature must verify with the CA that issued the server
 * certificate, so a server holding a stolen, revoked server key cannot vouch for itself with a
 * CRL of its own; it can only replay an older genuine one, which is refused once a newer one
 * was seen (CRL numbers never go down) and in any case after its nextUpdate. No valid CRL:
 * no connection (fail closed).
 */
export class CaServerTrust {
  readonly #ca: string | string[]
  readonly #maxAgeMs: number
  readonly #timeoutMs: number
  readonly #numbers: CrlNumbers
  readonly #fetcher: Agent
  readonly #cache = new Map<string, { crl: CheckedCrl; at: number }>()
  readonly #pending = new Map<string, Promise<CheckedCrl>>()

  constructor(options: CaServerTrustOptions) {
    this.#ca = typeof options.ca === 'string' ? options.ca : [...options.ca]
    this.#maxAgeMs = options.crlMaxAgeMs ?? 60_000
    this.#timeoutMs = options.timeoutMs ?? 10_000
    const seen = new Map<string, bigint>()
    this.#numbers = options.crlNumbers ?? {
      get: (k) => seen.get(k),
      set: (k, n) => void seen.set(k, n),
    }
    // The CRL is checked by its signature, so fetching it needs only the server EKU.
    this.#fetcher = new Agent({
      connect: {
        ca: this.#ca,
        checkServerIdentity: checkCaServerIdentity,
        timeout: this.#timeoutMs,
      },
    })
  }

  /**
   * An undici `connect` function: TLS to the CA server (presenting `tls.cert`/`tls.key` for
   * mTLS calls), then the revocation check, before any request is sent on the connection.
   */
  connector(tls: { cert?: string; key?: string } = {}): buildConnector.connector {
    const base = buildConnector({
      ca: this.#ca,
      ...tls,
      checkServerIdentity: checkCaServerIdentity,
      timeout: this.#timeoutMs,
      // A resumed session carries the server's leaf but not its chain, and the CRL check
      // needs the issuer: full handshakes only.
      maxCachedSessions: 0,
    } as buildConnector.BuildOptions)
    return (opts, callback) =>
      base(opts, (err, socket) => {
        if (err !== null) return callback(err, null)
        const origin = `${opts.protocol}//${opts.hostname}${opts.port ? `:${opts.port}` : ''}`
        this.check(socket as TLSSocket, origin, opts.hostname).then(
          () => callback(null, socket),
          (e: Error) => {
            socket.destroy()
            callback(e, null)
          },
        )
      })
  }

  /** Checks the server certificate of an established connection against the CA's CRL. */
  async check(socket: TLSSocket, origin: string, host: string): Promise<void> {
    // Not getPeerX509Certificate(): on a client socket, Node 20 takes the leaf out of the
    // peer chain it reads, and getPeerCertificate() sees no chain afterwards.
    const peer = socket.getPeerCertificate(true)
    const issuerRaw = peer?.issuerCertificate?.raw
    if (peer?.raw === undefined || issuerRaw === undefined)
      throw new Error(`${host} sent no certificate chain to check against the CA's CRL`)
    const leaf = new X509Certificate(peer.raw)
    const issuer = new X509Certificate(issuerRaw)
    if (!leaf.checkIssued(issuer) || !leaf.verify(issuer.publicKey))
      throw new Error(`${host}: the server certificate's issuer is not in its chain`)
    const crl = await this.#crlFor(origin, issuer)
    if (crl.revoked.has(BigInt(`0x${leaf.serialNumber}`))) {
      throw new Error(
        `${host} presented the certbound server certificate ${leaf.serialNumber.toLowerCase()}, ` +
          `which the CA's CRL lists as revoked: not the certbound server's current certificate`,
      )
    }
  }

  async #crlFor(origin: string, issuer: X509Certificate): Promise<CheckedCrl> {
    const key = `${origin} ${issuer.fingerprint256}`
    const hit = this.#cache.get(key)
    const now = Date.now()
    if (hit && now - hit.at < this.#maxAgeMs && now <= hit.crl.nextUpdate.getTime()) return hit.crl
    let pending = this.#pending.get(key)
    if (pending === undefined) {
      pending = this.#fetch(origin, issuer).finally(() => this.#pending.delete(key))
      this.#pending.set(key, pending)
    }
    const crl = await pending
    this.#cache.set(key, { crl, at: Date.now() })
    return crl
  }

  async #fetch(origin: string, issuer: X509Certificate): Promise<CheckedCrl> {
    // The CRL of the CA that issued the server certificate, at the URL certbound names it by:
    // after a CA rotation the server's certificate may still be the previous issuer's.
    const keyId = subjectKeyIdHex(issuer)
    const url = new URL(keyId ? `/v1/ca/${keyId}/crl` : '/v1/crl', origin).href
    let der: Buffer
    try {
      const res = await request(url, {
        dispatcher: this.#fetcher,
        headersTimeout: this.#timeoutMs,
        bodyTimeout: this.#timeoutMs,
      })
      const body = Buffer.from(await res.body.arrayBuffer())
      if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}`)
      if (body.length > MAX_CRL_BYTES) throw new Error(`${url} is over ${MAX_CRL_BYTES} bytes`)
      der = body
    } catch (cause) {
      // The reason goes into the message: callers print the outermost error.
      throw new Error(
        `cannot check the certbound server certificate: no CRL (${(cause as Error).message})`,
      )
    }
    const crl = checkCrl(der, issuer)
    const now = Date.now()
    if (crl.thisUpdate.getTime() > now + SKEW_MS)
      throw new Error(
        `the CA's CRL is from the future (thisUpdate ${crl.thisUpdate.toISOString()})`,
      )
    if (crl.nextUpdate.getTime() < now - SKEW_MS)
      throw new Error(`the CA's CRL is stale (nextUpdate ${crl.nextUpdate.toISOString()})`)
    const seen = this.#numbers.get(issuer.fingerprint256)
    if (seen !== undefined && crl.number < seen) {
      throw new Error(
        `the CA's CRL number ${crl.number} is lower than ${seen}, already seen: a replayed CRL`,
      )
    }
    if (seen === undefined || crl.number > seen)
      this.#numbers.set(issuer.fingerprint256, crl.number)
    return crl
  }

  async close(): Promise<void> {
    await this.#fetcher.close()
  }
}
