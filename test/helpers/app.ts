import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pino } from 'pino'
import { Authority } from '../../src/ca/authority.js'
import { OcspResponder } from '../../src/ca/ocsp.js'
import { OcspSigners } from '../../src/ca/ocsp-signers.js'
import { CrlPublisher } from '../../src/ca/crl.js'
import { EntryService } from '../../src/ca/entries.js'
import { loadKeyEncryptionKey } from '../../src/ca/files.js'
import { systemClock } from '../../src/clock.js'
import { configFromObject } from '../../src/config/load.js'
import { openStore } from '../../src/db/store.js'
import { createApp } from '../../src/http/app.js'
import { initialize } from '../../src/main.js'
import { SigningKeys } from '../../src/tokens/keys.js'

/**
 * The HTTP application over a real CA and a real SQLite file, without a listener: requests go
 * through `app.request()`, for input validation and error shapes where TLS is not the point
 * (every authentication decision is tested over real TLS elsewhere). Without a socket there is
 * no client certificate, so mTLS routes refuse as they would for a peer without one.
 */
export async function testApp(overrides: Record<string, unknown> = {}) {
  const dataDir = mkdtempSync(join(tmpdir(), 'certbound-app-'))
  const config = configFromObject({
    data_dir: dataDir,
    log_level: 'silent',
    server: { listen: '127.0.0.1:0' },
    ...overrides,
  })
  const store = await openStore(config.dataDir, config.database)
  const clock = systemClock
  const ca = await initialize(config, store, clock)
  const deps = { config, store, clock }
  const keys = new SigningKeys({ ...deps, kek: loadKeyEncryptionKey(dataDir) })
  const crl = new CrlPublisher({ store, clock, ca, validityMs: config.crl.validityMs })
  const kek = loadKeyEncryptionKey(dataDir)
  const ocsp = new OcspResponder({ ...deps, ca, signers: new OcspSigners({ ...deps, ca, kek }) })
  const app = createApp({
    ...deps,
    ca,
    keys,
    crl,
    ocsp,
    logger: pino({ level: 'silent' }),
    authority: new Authority({ ...deps, ca, crl }),
    entries: new EntryService(deps),
  })
  return {
    app,
    store,
    config,
    async close() {
      await store.close()
      rmSync(dataDir, { recursive: true, force: true })
    },
  }
}
