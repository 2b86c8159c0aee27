import { connect, type TLSSocket } from 'node:tls'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { handshakeGuardOf } from '../../src/http/server.js'
import { TestServer } from '../helpers/server.js'

/** server.connections: slow requests end early; connections per address are capped. */
describe('connection limits', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start({
      server: {
        connections: { headers_timeout: '1s', request_timeout: '2s', max_per_address: 2 },
      },
    })
  })
  afterAll(() => s.close())

  /** A TLS connection (no client certificate) that sends `text` and collects the answer. */
  function open(text: string, localAddress = '127.0.0.1') {
    let answer = ''
    let socket: TLSSocket
    const closed = new Promise<string>((resolve) => {
      socket = connect({
        host: '127.0.0.1',
        port: s.running.address.port,
        ca: s.bundlePem,
        servername: 'localhost',
        // net.connect's option; tls.connect passes it through (its types do not say so)
        ...({ localAddress } as object),
      })
      socket.on('secureConnect', () => socket.write(text))
      socket.on('data', (d) => (answer += d))
      socket.on('error', () => undefined)
      socket.on('close', () => resolve(answer))
    })
    return { closed, socket: () => socket }
  }

  it('a body that never finishes is answered 408 at request_timeout, not after 300 s', async () => {
    const token = await s.joinToken(await s.createEntry('spiffe://example.org/slow'))
    const { closed } = open(
      `POST /v1/enroll HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer ${token}\r\n` +
        'content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"csr":',
      '127.0.0.5',
    )
    expect(await closed).toMatch(/^HTTP\/1\.1 408/)
  })

  it('headers that never finish are answered 408 at headers_timeout', async () => {
    const { closed } = open('GET /healthz HTTP/1.1\r\nhost: localhost\r\n', '127.0.0.6')
    expect(await closed).toMatch(/^HTTP\/1\.1 408/)
  })

  it('a third connection from one address waits until one of two closes', async () => {
    const guard = handshakeGuardOf(s.running.server)!
    const start = guard.counters()
    const keep = 'GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n' // keep-alive: stays open
    const a = open(keep, '127.0.0.7')
    const b = open(keep, '127.0.0.7')
    while (guard.counters().completed - start.completed < 2)
      await new Promise((r) => setTimeout(r, 20))
    const c = open(keep, '127.0.0.7')
    while (guard.counters().queued === start.queued) await new Promise((r) => setTimeout(r, 20))
    expect(guard.counters().waiting).toBe(1)
    a.socket().destroy()
    // Then it gets its turn and its answer (the keep-alive timeout closes it later).
    expect(await c.closed).toMatch(/^HTTP\/1\.1 200/)
    b.socket().destroy()
  })
})
