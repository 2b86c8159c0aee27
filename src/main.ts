import { randomUUID } from 'node:crypto'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import { Authority } from './ca/authority.js'
import { CrlPublisher } from './ca/crl.js'
import { EntryService } from './ca/entries.js'
import { loadKeyEncryptionKey } from './ca/files.js'
import { completeInit, createCa, issueAdminCredential, recordCaCertificates } from './ca/init.js'
import { caExists, loadCaMaterial, type CaMaterial } from './ca/material.js'
import { ServerCredentials, type ServerTls } from './ca/server-credential.js'
import { systemClock, type Clock } from './clock.js'
import type { Config } from './config/load.js'
import type { KeyEncryptionKey } from './crypto/sealing.js'
import { isCAError } from './errors.js'
import type { Store } from './db/port.js'
import { openStore } from './db/store.js'
import { createApp } from './http/app.js'
import { closeGracefully, createHttpsServer, listen, replaceTlsMaterial } from './http/server.js'
import { Maintenance } from './maintenance.js'
import { SigningKeys } from './tokens/keys.js'

const PURGE_EVERY_MS = 3_600_000

export interface RunningServer {
  readonly address: AddressInfo
  readonly url: string
  readonly store: Store
  readonly ca: CaMaterial
  readonly server: Server
  close(): Promise<void>
}

export function createLogger(config: Config): Logger {
  // Logs go to stderr; nothing secret is ever passed to the logger.
  return pino({ level: config.logLevel, base: undefined }, pino.destination(2))
}

/** `certbound init`: CA, key-encryption key, first admin credential, signing key. */
export async function initialize(
  config: Config,
  store: Store,
  clock: Clock = systemClock,
): Promise<CaMaterial> {
  const deps = { config, store, clock }
  const ca = await createCa(deps)
  const kek = loadKeyEncryptionKey(config.dataDir)
  await new ServerCredentials({ ...deps, ca, kek }).fresh()
  await issueAdminCredential(deps, ca)
  await new SigningKeys({ ...deps, kek }).ensure()
  return ca
}

/**
 * The CA material, creating it on the first start of an empty data_dir. Of several processes
 * or replicas starting at once on one data_dir exactly one creates the CA; the others use it.
 */
async function loadOrInitialize(config: Config, store: Store, clock: Clock): Promise<CaMaterial> {
  if (!caExists(config.dataDir)) {
    try {
      return await initialize(config, store, clock)
    } catch (e) {
      if (!isCAError(e, 'ERR_CA_EXISTS') || !caExists(config.dataDir)) throw e
    }
  }
  const ca = loadCaMaterial(config.dataDir)
  await recordCaCertificates({ config, store, clock }, ca)
  // A crash during init may have stopped it before the admin credential.
  await completeInit({ config, store, clock }, ca)
  return ca
}

/**
 * What a primary process does before it forks workers: opens the database (migrating it),
 * initialises a new data_dir, makes sure there is a signing key and a server TLS credential —
 * so that workers starting together find everything in place.
 */
export async function prepareDataDir(config: Config, logger: Logger): Promise<void> {
  const store = await openStore(config.dataDir, config.database, logger)
  try {
    const ca = await loadOrInitialize(config, store, systemClock)
    const kek = loadKeyEncryptionKey(config.dataDir)
    const deps = { config, store, clock: systemClock }
    await new SigningKeys({ ...deps, kek }).ensure()
    await new ServerCredentials({ ...deps, ca, kek }).fresh()
    logger.debug({ data_dir: config.dataDir }, 'data_dir ready')
  } finally {
    await store.close()
  }
}

/** The composition root: config → store → CA → services → app → HTTPS. */
export async function startServer(
  config: Config,
  options: { clock?: Clock; logger?: Logger } = {},
): Promise<RunningServer> {
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? createLogger(config)
  const store = await openStore(config.dataDir, config.database, logger)
  try {
    return await serve(config, store, clock, logger)
  } catch (e) {
    await store.close()
    throw e
  }
}

async function serve(
  config: Config,
  store: Store,
  clock: Clock,
  logger: Logger,
): Promise<RunningServer> {
  const ca = await loadOrInitialize(config, store, clock)
  const kek: KeyEncryptionKey = loadKeyEncryptionKey(config.dataDir)
  const deps = { config, store, clock }
  const keys = new SigningKeys({ ...deps, kek })
  await keys.ensure()
  const crl = new CrlPublisher({ store, clock, ca, validityMs: config.crl.validityMs })
  const credentials = new ServerCredentials({ ...deps, ca, kek })
  const caPem = ca.bundlePem + ca.intermediatePem
  let tls: ServerTls = await credentials.fresh()
  let server: Server | undefined
  // Serve whatever credential the database holds now (another process may have renewed it).
  const adopt = (next: ServerTls) => {
    if (next.serial === tls.serial) return
    tls = next
    if (server) replaceTlsMaterial(server, { ...tls, caPem })
    logger.info(
      { serial: tls.serial, not_after: tls.notAfter.toISOString() },
      'server TLS certificate renewed',
    )
  }
  const onRevoked = (serials: readonly string[]) => {
    if (serials.includes(tls.serial))
      void credentials
        .fresh(true)
        .then(adopt)
        .catch((e) => logger.error({ err: (e as Error).message }, 'server TLS renewal failed'))
  }
  const app = createApp({
    ...deps,
    ca,
    keys,
    crl,
    logger,
    authority: new Authority({ ...deps, ca, crl, onRevoked }),
    entries: new EntryService(deps),
  })
  server = createHttpsServer(app, { ...tls, caPem }, config.server)
  const address = await listen(server, config.server.host, config.server.port)
  let purgedAt = 0
  const maintenance = new Maintenance({
    store,
    clock,
    logger,
    holder: `${process.pid}-${randomUUID()}`,
    periodMs: Math.min(10_000, config.server.tlsCertificateTtlMs / 10),
    everyProcess: async () => adopt((await credentials.current()) ?? tls),
    leaderOnly: async () => {
      if (await credentials.stale(tls)) adopt(await credentials.fresh())
      await keys.rotateIfDue()
      await crl.refresh()
      const now = clock.now().getTime()
      if (now - purgedAt >= PURGE_EVERY_MS) {
        await store.tokens.purgeExpired(now)
        purgedAt = now
      }
    },
  })
  await maintenance.tick()
  maintenance.start()
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `https://${host}:${address.port}`
  logger.info(
    {
      url,
      data_dir: config.dataDir,
      issuer: config.tokens.issuer,
      backend: store.backend,
      pid: process.pid,
    },
    'certbound serving',
  )
  return {
    address,
    url,
    store,
    ca,
    server,
    async close() {
      await maintenance.stop()
      await closeGracefully(server)
      await store.close()
    },
  }
}
