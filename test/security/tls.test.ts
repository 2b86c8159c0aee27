import { spawn } from 'node:child_process'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { TestServer } from '../helpers/server.js'

/** What testssl flagged: TLS 1.2 offers only AEAD suites with forward secrecy; HSTS is sent. */
describe('TLS parameters (openssl s_client as the independent checker)', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  /** openssl s_client in a child process (the server runs in this one: never block it). */
  function handshake(...args: string[]): Promise<{ ok: boolean; out: string }> {
    const port = s.running.address.port
    const child = spawn('openssl', [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      ...args,
    ])
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.stdin.end()
    return new Promise((resolve) =>
      child.on('close', () => resolve({ ok: /Cipher is (?!\(NONE\))/.test(out), out })),
    )
  }

  it('TLS 1.3 is chosen when the client offers it', async () => {
    const r = await handshake()
    expect(r.ok, r.out).toBe(true)
    expect(r.out).toMatch(/TLSv1\.3/)
  })

  it.each(['ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-ECDSA-CHACHA20-POLY1305'])(
    'TLS 1.2 with %s (AEAD, ECDHE) is accepted',
    async (cipher) => {
      const r = await handshake('-tls1_2', '-cipher', cipher)
      expect(r.ok, r.out).toBe(true)
    },
  )

  it.each([
    'ECDHE-ECDSA-AES128-SHA',
    'ECDHE-ECDSA-AES256-SHA384',
    'AES128-GCM-SHA256',
    'AES128-SHA',
    'DHE-RSA-AES128-GCM-SHA256',
  ])('TLS 1.2 with %s (CBC or no forward secrecy) is refused', async (cipher) => {
    const r = await handshake('-tls1_2', '-cipher', `${cipher}:@SECLEVEL=0`)
    expect(r.ok, r.out).toBe(false)
  })

  it('TLS 1.1 is refused', async () => {
    expect((await handshake('-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0')).ok).toBe(false)
  })

  it('every response carries Strict-Transport-Security, errors too', async () => {
    for (const path of ['/healthz', '/no-such-path', '/v1/entries']) {
      const r = await s.call('GET', path)
      expect(r.headers['strict-transport-security'], path).toBe('max-age=31536000')
    }
  })
})
