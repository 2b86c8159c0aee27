import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { PATHS } from '../ca/files.js'
import type { Config } from '../config/load.js'
import { CaServerTrust } from '@certbound/verifier/mtls'

export interface AdminClientOptions {
  readonly server?: string
  readonly cert?: string
  readonly key?: string
  readonly caBundle?: string
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message)
  }
}

/** Calls the running server's admin API with the admin credential (mTLS). */
export class AdminClient {
  readonly #agent: Agent
  readonly #trust: CaServerTrust
  readonly #base: string

  constructor(config: Config, opts: AdminClientOptions) {
    const dir = config.dataDir
    const host = ['0.0.0.0', '::', ''].includes(config.server.host)
      ? '127.0.0.1'
      : config.server.host
    this.#base = (
      opts.server ??
      process.env.CERTBOUND_SERVER ??
      `https://${host.includes(':') ? `[${host}]` : host}:${config.server.port}`
    ).replace(/\/+$/, '')
    const read = (p: string) => readFileSync(p, 'utf8')
    const ca = read(opts.caBundle ?? join(dir, PATHS.bundle))
    // Only the CA server: its EKU, and its certificate not revoked per the CA's CRL.
    this.#trust = new CaServerTrust({
      ca: [ca, ...(opts.caBundle ? [] : [read(join(dir, PATHS.intermediateCert))])],
    })
    this.#agent = new Agent({
      connect: this.#trust.connector({
        cert: read(opts.cert ?? join(dir, PATHS.adminCert)),
        key: read(opts.key ?? join(dir, PATHS.adminKey)),
      }),
    })
  }

  async call(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await request(`${this.#base}${path}`, {
      method: method as 'GET',
      dispatcher: this.#agent,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    }).catch((e: Error & { code?: string }) => {
      const hint =
        e.code === 'ECONNREFUSED'
          ? ' (is `certbound serve` running? --server or CERTBOUND_SERVER set the URL)'
          : ''
      throw new ApiError(0, `cannot reach ${this.#base}: ${e.message}${hint}`)
    })
    const text = await res.body.text()
    let parsed: unknown = text
    try {
      parsed = JSON.parse(text)
    } catch {
      // not JSON: keep the text
    }
    if (res.statusCode >= 400) {
      const detail = (parsed as { detail?: string })?.detail ?? text
      throw new ApiError(res.statusCode, `${res.statusCode}: ${detail}`)
    }
    return parsed
  }

  async close(): Promise<void> {
    await this.#agent.close()
    await this.#trust.close()
  }
}
