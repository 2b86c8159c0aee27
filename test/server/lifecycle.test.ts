import { connect, type PeerCertificate } from 'node:tls'
import { PassThrough } from 'node:stream'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer, sleep } from '../helpers/server.js'

function peerCertificate(port: number, ca: string): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const cert = socket.getPeerCertificate()
      socket.end()
      resolve(cert)
    })
    socket.once('error', reject)
  })
}

describe('server TLS certificate renewal without a restart', () => {
  let s: TestServer
  beforeAll(async () => {
    // A third of 9s left → renew; the maintenance timer runs every ttl/10.
    s = await TestServer.start({ server: { tls_certificate_ttl: '9s' } })
  })
  afterAll(() => s.close())

  it('serves a new certificate on new connections once the old one nears expiry', async () => {
    const first = await peerCertificate(s.running.address.port, s.bundlePem)
    let current = first
    for (let i = 0; i < 40 && current.serialNumber === first.serialNumber; i++) {
      await sleep(250)
      current = await peerCertificate(s.running.address.port, s.bundlePem)
    }
    expect(current.serialNumber).not.toBe(first.serialNumber)
    // The renewal is recorded like every other certificate, and the server kept serving.
    const renewed = await s.store.certificates.get(current.serialNumber.toLowerCase())
    expect(renewed?.kind).toBe('server')
    expect((await s.call('GET', '/healthz')).status).toBe(200)
  })
})

/** Asks for a TLS 1.2 renegotiation; resolves with the error the server answered with. */
function renegotiationError(port: number, ca: string): Promise<Error | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port, ca, servername: 'localhost', maxVersion: 'TLSv1.2' },
      () => {
        socket.off('error', reject)
        socket.once('error', (e) => resolve(e))
        const asked = socket.renegotiate({ rejectUnauthorized: true }, (e) => {
          socket.destroy()
          resolve(e ?? null)
        })
        if (!asked) resolve(new Error('renegotiation not started'))
        // The request makes the server read the renegotiation handshake and answer it.
        socket.write('GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n')
        socket.resume()
      },
    )
    socket.once('error', reject)
  })
}

describe('revoking the server certificate', () => {
  it('makes the server present a new one on the next connection, refusing renegotiation as before', async () => {
    const s = await TestServer.start()
    try {
      const before = await peerCertificate(s.running.address.port, s.bundlePem)
      expect(await renegotiationError(s.running.address.port, s.bundlePem)).toBeInstanceOf(Error)
      const r = await s.call('POST', `/v1/certificates/${before.serialNumber}/revoke`, {
        as: s.admin,
        json: {},
      })
      expect(r.status).toBe(200)
      let after = before
      for (let i = 0; i < 20 && after.serialNumber === before.serialNumber; i++) {
        await sleep(50)
        after = await peerCertificate(s.running.address.port, s.bundlePem)
      }
      expect(after.serialNumber).not.toBe(before.serialNumber)
      // The swapped-in context keeps the hardening of the first one.
      expect(await renegotiationError(s.running.address.port, s.bundlePem)).toBeInstanceOf(Error)
    } finally {
      await s.close()
    }
  })
})

describe('graceful shutdown', () => {
  it('finishes the in-flight request, then stops accepting', async () => {
    const s = await TestServer.start()
    const entryId = await s.createEntry('spiffe://example.org/shutdown')
    const token = await s.joinToken(entryId)
    const { csrPem } = makeCsr({ san: 'URI:spiffe://example.org/shutdown' })
    const body = new PassThrough()
    const inflight = request(`${s.url}/v1/enroll`, {
      method: 'POST',
      dispatcher: s.agent(),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body,
    })
    const json = JSON.stringify({ csr: csrPem })
    body.write(json.slice(0, 10))
    await sleep(200) // the request is now in flight on the server
    const closing = s.running.close()
    body.end(json.slice(10))
    const r = await inflight
    expect(r.statusCode).toBe(201)
    await r.body.text()
    await closing
    await expect(s.call('GET', '/healthz')).rejects.toThrow()
  })
})
