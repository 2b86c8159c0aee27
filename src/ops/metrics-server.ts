import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'

/** Prometheus text exposition format 0.0.4. */
const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export interface MetricsListener {
  /** `http://HOST:PORT/metrics` as bound (port 0 resolved). */
  readonly url: string
  close(): Promise<void>
}

/**
 * `metrics.listen`: plain HTTP, `GET /metrics` only, on its own address (keep it off the
 * public network: it tells what the CA does, never a secret). `scrape` builds the text: one
 * process's registry, or the cluster primary's aggregate over its workers.
 */
export async function serveMetrics(
  listen: { host: string; port: number },
  scrape: () => Promise<string>,
  logger: Logger,
): Promise<MetricsListener> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics here\n')
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end()
      return
    }
    scrape().then(
      (text) => res.writeHead(200, { 'content-type': CONTENT_TYPE }).end(text),
      (e: Error) => {
        logger.warn({ err: e.message }, 'metrics scrape failed')
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n')
      },
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const address = server.address() as AddressInfo
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `http://${host}:${address.port}/metrics`
  logger.info({ url }, 'metrics listening')
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}
