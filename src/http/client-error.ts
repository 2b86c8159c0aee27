import type { ServerResponse } from 'node:http'
import type { Server } from 'node:https'
import type { Socket } from 'node:net'

/**
 * A clear answer to a request node's HTTP parser refuses (a CR or NUL inside a header, a space in
 * a header name, contradictory framing, headers over the limit). Node's own answer is written
 * only while `socket.bytesWritten === 0`, which on a TLS connection that presented a client
 * certificate is never true (the handshake's session tickets count): such a client saw its
 * connection closed without a word. Here the test is whether a response of ours has begun on
 * the connection: if not, the status line cannot interleave with anything.
 */
export function answerMalformedRequests(server: Server): void {
  const responses = new WeakMap<Socket, ServerResponse>()
  server.on('request', (req, res: ServerResponse) => {
    responses.set(req.socket, res)
    res.once('close', () => responses.delete(req.socket))
  })
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || responses.get(socket)?.headersSent || err.code === 'ECONNRESET') {
      socket.destroy()
      return
    }
    const [status, title] = STATUS[err.code ?? ''] ?? [400, 'Bad Request']
    const body = JSON.stringify({
      type: 'about:blank',
      title,
      status,
      detail: `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`,
      code: 'ERR_BAD_REQUEST',
    })
    socket.end(
      `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
    // A peer that never reads its answer does not keep the socket.
    setTimeout(() => socket.destroy(), 5_000).unref()
  })
}

// As node answers them itself (lib/_http_server.js socketOnError).
const STATUS: Record<string, [number, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large'],
  HPE_CHUNK_EXTENSIONS_OVERFLOW: [413, 'Payload Too Large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout'],
}
