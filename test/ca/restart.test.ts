import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect, type PeerCertificate } from 'node:tls'
import { describe, expect, it } from 'vitest'
import { makeCsr } from '../helpers/openssl.js'
import { TestServer } from '../helpers/server.js'
import { enrollWith, expectProblem } from './support.js'

/** The certificate the server presents on a fresh TLS connection (verified against our root). */
function serverCertificate(s: TestServer, servername = 'localhost'): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      { host: '127.0.0.1', port: s.running.address.port, servername, ca: s.bundlePem },
      () => {
        const cert = socket.getPeerCertificate()
        socket.end()
        resolve(cert)
      },
    )
    socket.once('error', reject)
  })
}

describe('state survives a restart on the same data_dir', () => {
  it('same CA, certificates, revocations and join tokens; the CRL number keeps increasing; new hostnames get a new server certificate', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'certbound-restart-'))
    const first = await TestServer.start({}, { dataDir })
    const kept = await first.enroll('spiffe://example.org/restart/kept')
    const revoked = await first.enroll('spiffe://example.org/restart/revoked')
    expect(
      (
        await first.call('POST', `/v1/certificates/${revoked.serial}/revoke`, {
          as: first.admin,
          json: { reason: 'superseded' },
        })
      ).status,
    ).toBe(200)
    const pendingEntry = await first.createEntry('spiffe://example.org/restart/pending')
    const pendingToken = await first.joinToken(pendingEntry)
    const crlNumberBefore = (await first.store.crls.snapshot(Date.now())).crlNumber // spends one number: still must go up
    const bundle = readFileSync(join(dataDir, 'ca/bundle.pem'), 'utf8')
    const serverBefore = await serverCertificate(first)
    await first.running.close()

    const second = await TestServer.start(
      { server: { hostnames: ['localhost', '127.0.0.1', 'ca.internal.example'] } },
      { dataDir },
    )
    try {
      expect(second.bundlePem).toBe(bundle)
      expect((await second.renew(kept)).status).toBe(201)
      expectProblem(await second.renew(revoked), 401)
      const pending = await enrollWith(second, pendingToken, { csr: makeCsr().csrPem })
      expect(pending.status, pending.text).toBe(201)
      expect((await second.store.crls.snapshot(Date.now())).crlNumber).toBeGreaterThan(
        crlNumberBefore,
      )
      expect((await second.call('GET', '/v1/entries', { as: second.admin })).status).toBe(200)

      // The configured hostnames changed: the server certificate must name the new one.
      const serverAfter = await serverCertificate(second, 'ca.internal.example')
      expect(serverAfter.subjectaltname).toContain('DNS:ca.internal.example')
      expect(serverAfter.serialNumber).not.toBe(serverBefore.serialNumber)
    } finally {
      await second.close()
    }
  })

  it('unchanged hostnames: the server certificate is reused across restarts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'certbound-restart-'))
    const first = await TestServer.start({}, { dataDir })
    const before = await serverCertificate(first)
    await first.running.close()
    const second = await TestServer.start({}, { dataDir })
    try {
      expect((await serverCertificate(second)).serialNumber).toBe(before.serialNumber)
    } finally {
      await second.close()
    }
  })
})
