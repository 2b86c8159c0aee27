import { Agent, request, type Dispatcher } from 'undici'

/**
 * The one driver for every server in the bench (certbound, node-oidc-provider, cfssl): undici,
 * one keep-alive connection per client, each client presenting its own certificate.
 */

export interface ClientTls {
  /** Trust anchors for the server's certificate. */
  readonly ca: string
  /** Client certificate chain (leaf first) and key, for mTLS. */
  readonly cert?: string
  readonly key?: string
}

/** One keep-alive connection; `newHandshakes` makes a TLS session per request instead. */
export function client(tls: ClientTls | undefined, opts: { newHandshakes?: boolean } = {}): Agent {
  return new Agent({
    connections: opts.newHandshakes ? null : 1,
    pipelining: 1,
    connect: tls
      ? {
          ca: tls.ca,
          cert: tls.cert,
          key: tls.key,
          // A booting fleet has no sessions to resume: every handshake is a full one.
          ...(opts.newHandshakes ? { maxCachedSessions: 0 } : {}),
        }
      : undefined,
  })
}

export interface Reply {
  readonly status: number
  readonly text: string
}

export interface Send {
  readonly method?: 'GET' | 'POST'
  readonly json?: unknown
  readonly form?: Record<string, string>
  readonly headers?: Record<string, string>
  /** Close the connection after this request (a new TLS handshake for the next). */
  readonly reset?: boolean
}

export async function send(dispatcher: Dispatcher, url: string, s: Send = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...s.headers }
  let body: string | undefined
  if (s.json !== undefined) {
    body = JSON.stringify(s.json)
    headers['content-type'] = 'application/json'
  } else if (s.form !== undefined) {
    body = new URLSearchParams(s.form).toString()
    headers['content-type'] = 'application/x-www-form-urlencoded'
  }
  const r = await request(url, {
    method: s.method ?? (body === undefined ? 'GET' : 'POST'),
    body,
    headers,
    dispatcher,
    reset: s.reset,
  })
  return { status: r.statusCode, text: await r.body.text() }
}

/** `send`, then the JSON body of a 2xx answer; anything else throws with the answer in it. */
export async function sendOk<T = any>(
  dispatcher: Dispatcher,
  url: string,
  s: Send = {},
): Promise<T> {
  const r = await send(dispatcher, url, s)
  if (r.status < 200 || r.status >= 300)
    throw new Error(`${s.method ?? 'POST'} ${url}: ${r.status} ${r.text.slice(0, 300)}`)
  return (r.text ? JSON.parse(r.text) : undefined) as T
}

export async function closeAll(agents: readonly Dispatcher[]): Promise<void> {
  await Promise.all(agents.map((a) => a.close().catch(() => undefined)))
}
