import type { TLSSocket } from 'node:tls'
import { Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { issueAdminCredential } from '../../src/ca/init.js'
import { systemClock } from '../../src/clock.js'
import { makeCsr, verifyLeaf } from '../helpers/openssl.js'
import { sleep, TestServer, type ApiResponse } from '../helpers/server.js'
import {
  dbSnapshot,
  expectProblem,
  expectServing,
  foreignCredential,
  x509Field,
} from '../helpers/ca.js'

type Cred = { certPem: string; keyPem: string }

describe('mTLS on admin routes and renewal (real TLS handshakes)', () => {
  let s: TestServer
  let workload: Cred & { serial: string; entryId: string }
  beforeAll(async () => {
    // Some tests here renew with the same key (CONTRACT "Lineages": renewal.require_new_key).
    s = await TestServer.start({ renewal: { require_new_key: false } })
    workload = await s.enroll('spiffe://example.org/mtls/workload')
  })
  afterAll(() => s.close())

  /** Every admin route, with a body where it takes one. */
  function adminRoutes(): { method: string; path: string; json?: unknown }[] {
    const e = workload.entryId
    return [
      {
        method: 'POST',
        path: '/v1/entries',
        json: { spiffe_id: 'spiffe://example.org/mtls/sneaky' },
      },
      { method: 'GET', path: '/v1/entries' },
      { method: 'GET', path: `/v1/entries/${e}` },
      { method: 'PATCH', path: `/v1/entries/${e}`, json: { enabled: false } },
      { method: 'POST', path: `/v1/entries/${e}/join-tokens`, json: {} },
      { method: 'GET', path: '/v1/certificates' },
      { method: 'GET', path: `/v1/certificates/${workload.serial}` },
      {
        method: 'POST',
        path: `/v1/certificates/${workload.serial}/revoke`,
        json: { reason: 'superseded' },
      },
    ]
  }

  async function everyAdminRoute(
    as: Cred | undefined,
    status: number,
    detail: RegExp,
  ): Promise<void> {
    const before = await dbSnapshot(s)
    for (const route of adminRoutes()) {
      const r = await s.call(route.method, route.path, {
        as,
        ...(route.json ? { json: route.json } : {}),
      })
      expect(expectProblem(r, status), `${route.method} ${route.path}`).toMatch(detail)
    }
    expect(await dbSnapshot(s)).toEqual(before)
    await expectServing(s)
  }

  describe('admin routes', () => {
    it('no client certificate → 401 on every admin route', async () => {
      await everyAdminRoute(undefined, 401, /required/)
    })

    it('a valid workload certificate → 403 on every admin route', async () => {
      await everyAdminRoute(workload, 403, /not an admin/)
    })

    it('a certificate from a different CA naming the admin SPIFFE ID → 401', async () => {
      await everyAdminRoute(foreignCredential(), 401, /does not chain/)
    })

    it("a different CA's certificate reusing the real admin certificate's serial → 401", async () => {
      const adminSerial = x509Field(s.admin.certPem, 'serial')
      await everyAdminRoute(foreignCredential({ serialHex: adminSerial }), 401, /does not chain/)
    })

    it('the admin certificate works; a revoked admin certificate → 401, a re-issued one works', async () => {
      const old = s.admin
      expect((await s.call('GET', '/v1/entries', { as: old })).status).toBe(200)
      const issued = await issueAdminCredential(
        { config: s.config, store: s.store, clock: systemClock },
        s.running.ca,
      )
      const fresh = s.admin // re-read from admin/admin.pem
      expect(fresh.certPem).not.toBe(old.certPem)
      const oldSerial = x509Field(old.certPem, 'serial').toLowerCase()
      const r = await s.call('POST', `/v1/certificates/${oldSerial}/revoke`, {
        as: fresh,
        json: { reason: 'superseded' },
      })
      expect(r.status, r.text).toBe(200)
      expectProblem(await s.call('GET', '/v1/entries', { as: old }), 401)
      expect((await s.call('GET', '/v1/entries', { as: fresh })).status).toBe(200)
      expect(issued.serial).toBe(x509Field(fresh.certPem, 'serial').toLowerCase())
    })
  })

  describe('renewal', () => {
    it('with the current certificate → 201, same SPIFFE ID, renewed_from recorded, new key', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/renew')
      const r = await s.renew(cred, { ttl: '30m' })
      expect(r.status, r.text).toBe(201)
      const renewed = r.credential!
      expect(r.body.spiffe_id).toBe('spiffe://example.org/mtls/renew')
      expect(renewed.serial).not.toBe(cred.serial)
      expect(verifyLeaf(renewed.certPem, s.bundlePem, s.intermediatePem).code).toBe(0)
      const shown = await s.call('GET', `/v1/certificates/${renewed.serial}`, { as: s.admin })
      expect(shown.body.renewed_from).toBe(cred.serial)
      expect(shown.body.spiffe_id).toBe('spiffe://example.org/mtls/renew')
      expect(shown.body.entry_id).toBe(cred.entryId)
      expect((await s.store.certificates.get(renewed.serial))!.renewedFrom).toBe(cred.serial)
      const audit = await s.store.audit.list({ subject: renewed.serial })
      expect(audit.map((e) => e.action)).toEqual(['certificate.renew'])
      expect(audit[0]!.details).toMatchObject({ renewed_from: cred.serial })

      // The renewed certificate renews in turn: a lineage.
      const again = await s.renew(renewed)
      expect(again.status, again.text).toBe(201)
      expect((await s.store.certificates.get(again.credential!.serial))!.renewedFrom).toBe(
        renewed.serial,
      )
      expect(
        await s.store.certificates.isSelfOrDescendant(again.credential!.serial, cred.serial),
      ).toBe(true)
    })

    it('with the same key → 201', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/same-key')
      const r = await s.renew(cred, { sameKey: true })
      expect(r.status, r.text).toBe(201)
      const a = await s.store.certificates.get(cred.serial)
      const b = await s.store.certificates.get(r.credential!.serial)
      expect(b!.spkiSha256).toBe(a!.spkiSha256)
    })

    it('a CSR naming another SPIFFE ID → 400, nothing issued', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/other-id')
      const before = await dbSnapshot(s)
      const { csrPem } = makeCsr({ san: 'URI:spiffe://example.org/mtls/workload' })
      const r = await s.call('POST', '/v1/renew', { as: cred, json: { csr: csrPem } })
      expect(expectProblem(r, 400)).toMatch(/spiffe:\/\/example\.org\/mtls\/workload/)
      expect(await dbSnapshot(s)).toEqual(before)
    })

    it('a ttl over the cap → 400', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/renew-ttl')
      expectProblem(await s.renew(cred, { ttl: '25h' }), 400)
    })

    it('a revoked certificate → 401', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/revoked')
      const rv = await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
        as: s.admin,
        json: {},
      })
      expect(rv.status).toBe(200)
      const before = await dbSnapshot(s)
      expect(expectProblem(await s.renew(cred), 401)).toMatch(/revoked/)
      expect(await dbSnapshot(s)).toEqual(before)
    })

    it('a certificate whose entry is disabled → 403; enabling it again allows renewal', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/disabled')
      const p = await s.call('PATCH', `/v1/entries/${cred.entryId}`, {
        as: s.admin,
        json: { enabled: false },
      })
      expect(p.status, p.text).toBe(200)
      expect(p.body.enabled).toBe(false)
      const before = await dbSnapshot(s)
      expect(expectProblem(await s.renew(cred), 403)).toMatch(/disabled/)
      expect(await dbSnapshot(s)).toEqual(before)
      await s.call('PATCH', `/v1/entries/${cred.entryId}`, { as: s.admin, json: { enabled: true } })
      expect((await s.renew(cred)).status).toBe(201)
    })

    it('no certificate → 401; a foreign CA certificate → 401; the admin certificate → 403', async () => {
      const before = await dbSnapshot(s)
      const csr = makeCsr().csrPem
      expectProblem(await s.call('POST', '/v1/renew', { json: { csr } }), 401)
      const foreign = foreignCredential({
        san: 'URI:spiffe://example.org/mtls/workload',
        serialHex: workload.serial,
      })
      expectProblem(await s.call('POST', '/v1/renew', { as: foreign, json: { csr } }), 401)
      expectProblem(await s.call('POST', '/v1/renew', { as: s.admin, json: { csr } }), 403)
      expect(await dbSnapshot(s)).toEqual(before)
      await expectServing(s)
    })
  })

  describe('per-request re-checks on one keep-alive connection', () => {
    /** Counts TLS handshakes whose client presented `serial`. */
    function handshakesOf(serial: string): { count: number; stop(): void } {
      const counter = {
        count: 0,
        stop: () => s.running.server.off('secureConnection', on),
      }
      const on = (socket: TLSSocket) => {
        if (socket.getPeerX509Certificate()?.serialNumber.toLowerCase() === serial) counter.count++
      }
      s.running.server.on('secureConnection', on)
      return counter
    }

    async function renewOn(client: Client): Promise<ApiResponse> {
      const res = await client.request({
        method: 'POST',
        path: '/v1/renew',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ csr: makeCsr().csrPem, ttl: '5m' }),
      })
      const text = await res.body.text()
      return { status: res.statusCode, headers: res.headers, body: JSON.parse(text), text }
    }

    function oneConnection(cred: Cred): Client {
      // The server keeps idle sockets 5s; undici would drop them 2s before that by default.
      return new Client(s.url, {
        connect: { ca: s.bundlePem, cert: cred.certPem, key: cred.keyPem },
        pipelining: 1,
        keepAliveTimeoutThreshold: 500,
      })
    }

    it('revocation: a request succeeds, the admin revokes, the next request on the same connection → 401', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/keepalive-revoke')
      const handshakes = handshakesOf(cred.serial)
      const client = oneConnection(cred)
      try {
        expect((await renewOn(client)).status).toBe(201)
        const rv = await s.call('POST', `/v1/certificates/${cred.serial}/revoke`, {
          as: s.admin,
          json: { reason: 'keyCompromise' },
        })
        expect(rv.status).toBe(200)
        const r = await renewOn(client)
        expect(expectProblem(r, 401)).toMatch(/revoked/)
        expect(handshakes.count).toBe(1)
      } finally {
        handshakes.stop()
        await client.close()
      }
    })

    it('expiry: a 2s certificate works, then after a real wait the same connection → 401, and a new one too', async () => {
      const cred = await s.enroll('spiffe://example.org/mtls/keepalive-expiry', { ttl: '2s' })
      const handshakes = handshakesOf(cred.serial)
      const client = oneConnection(cred)
      try {
        expect((await renewOn(client)).status).toBe(201)
        await sleep(
          Math.max(0, new Date(x509Field(cred.certPem, 'enddate')).getTime() - Date.now()) + 300,
        )
        const r = await renewOn(client)
        expect(expectProblem(r, 401)).toMatch(/expired/)
        expect(handshakes.count).toBe(1)
        // A fresh handshake with the expired certificate is refused as well.
        expectProblem(await s.renew(cred), 401)
      } finally {
        handshakes.stop()
        await client.close()
      }
    })
  })
})
