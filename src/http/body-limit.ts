import type { IncomingMessage } from 'node:http'
import type { Context, MiddlewareHandler } from 'hono'
import { CAError } from '../errors.js'
import type { AppEnv } from './mtls.js'

/**
 * Refuses request bodies over `maxBytes` with ERR_PAYLOAD_TOO_LARGE (413).
 *
 * A body with a Content-Length is judged by that header alone: node's HTTP parser has already
 * refused a malformed or contradictory one and will never deliver more bytes than it says.
 * Only a chunked body (Transfer-Encoding) is read here, with a running count. hono's
 * `bodyLimit` touched `c.req.raw.body` on every request, which made @hono/node-server build a
 * full web Request (streams, an AbortSignal) even for a GET: about 100-200 µs per request.
 */
export function bodyLimit(maxBytes: number): MiddlewareHandler<AppEnv> {
  const tooLarge = () =>
    new CAError('ERR_PAYLOAD_TOO_LARGE', `the request body is over ${maxBytes} bytes`)
  return async (c, next) => {
    const method = c.req.method
    if (method === 'GET' || method === 'HEAD') return next()
    const incoming = c.env?.incoming
    if (incoming !== undefined && c.req.header('transfer-encoding') === undefined) {
      const length = c.req.header('content-length')
      if (length !== undefined && Number(length) > maxBytes) throw tooLarge()
      return next()
    }
    // Chunked (rare), or not served by node (app.request() in tests): count as it arrives.
    const body = incoming
      ? await readIncoming(incoming, maxBytes)
      : await readWebStream(c.req.raw.body, maxBytes)
    if (body === undefined) throw tooLarge()
    c.req.raw = new Request(c.req.url, { method, headers: c.req.raw.headers, body })
    c.set('requestBody', Buffer.from(body))
    return next()
  }
}

/**
 * The whole request body, as {@link bodyLimit} admitted it. Served by node, it is read from the
 * IncomingMessage itself: hono's `c.req.text()` made @hono/node-server build a full web Request
 * (undici Headers, a ReadableStream over the message, an AbortSignal) to read a few hundred
 * bytes, which cost more than the rest of an introspection's HTTP handling.
 */
export async function requestBody(c: Context<AppEnv>): Promise<Buffer> {
  const read = c.get('requestBody')
  if (read !== undefined) return read
  const incoming = c.env?.incoming
  // Unread (no one else listens): bodyLimit judged its Content-Length already, and node never
  // delivers more than that, so no limit here (readIncoming answers undefined only past one).
  const unread =
    incoming !== undefined && !incoming.readableEnded && incoming.readableFlowing === null
  const body = unread
    ? ((await readIncoming(incoming, Infinity)) ?? Buffer.alloc(0))
    : Buffer.from(await c.req.arrayBuffer())
  c.set('requestBody', body)
  return body
}

/**
 * The whole body, or undefined as soon as it passes `max`. The rest is then left to node,
 * which discards it after the response (as before: the 413 still reaches the client).
 */
function readIncoming(incoming: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const done = () => {
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('error', onError)
      incoming.off('close', onClose)
    }
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > max) {
        done()
        resolve(undefined)
      } else chunks.push(chunk)
    }
    const onEnd = () => {
      done()
      resolve(Buffer.concat(chunks, size))
    }
    const onError = (e: Error) => {
      done()
      reject(new CAError('ERR_BAD_REQUEST', 'the request body could not be read', { cause: e }))
    }
    const onClose = () => onError(new Error('the connection closed before the body ended'))
    incoming.on('data', onData)
    incoming.on('end', onEnd)
    incoming.on('error', onError)
    incoming.on('close', onClose)
  })
}

async function readWebStream(
  body: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<Uint8Array | undefined> {
  if (body === null) return new Uint8Array(0)
  const chunks: Uint8Array[] = []
  let size = 0
  const reader = body.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.length
    if (size > max) {
      await reader.cancel()
      return undefined
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks, size)
}
