import { Hono } from 'hono'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { certboundAuth } from '@certbound/verifier/hono'
import type { Verifier } from '@certbound/verifier'

// Without a logger option, refused forwarded certificates are still logged: one JSON line on
// stderr in pino's shape, without the verifier depending on pino.
describe('certboundAuth default logger', () => {
  afterEach(() => vi.restoreAllMocks())

  it('writes a spoofing attempt as one JSON line to stderr', async () => {
    const lines: string[] = []
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: unknown) => {
      lines.push(String(chunk))
      return true
    })
    const verifier: Verifier = {
      verify: () => Promise.reject(new Error('not reached')),
      close: async () => {},
    }
    const app = new Hono().use('/api/*', certboundAuth({ verifier }))
    app.get('/api/x', (c) => c.text('ok'))
    const res = await app.request('/api/x', {
      headers: { authorization: 'Bearer abc', 'client-cert': ':AAAA:' },
    })
    expect(res.status).toBe(401)
    expect(lines).toHaveLength(1)
    const entry = JSON.parse(lines[0]!) as Record<string, unknown>
    expect(entry).toMatchObject({
      level: 40,
      name: 'certbound-verifier',
      event: 'certbound.forwarded_cert_spoofing',
      headers: ['client-cert'],
      path: '/api/x',
    })
    expect(lines[0]).not.toContain('abc') // never the token
  })
})
