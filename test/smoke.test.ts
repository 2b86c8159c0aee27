import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { verifyLeaf } from './helpers/openssl.js'
import { TestServer } from './helpers/server.js'

describe('smoke: enrol over real HTTPS', () => {
  let s: TestServer
  beforeAll(async () => {
    s = await TestServer.start()
  })
  afterAll(() => s.close())

  it('enrols, and openssl verifies the certificate', async () => {
    const cred = await s.enroll('spiffe://example.org/smoke')
    expect(verifyLeaf(cred.certPem, s.bundlePem, s.intermediatePem).code).toBe(0)
    const r = await s.renew(cred)
    expect(r.status).toBe(201)
  })
})
