import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import { Authority } from './ca/authority.js'
import { CrlPublisher } from './ca/crl.js'
import { EntryService } from './ca/entries.js'
import {
  createCa,
  issueAdminCredential,
  issueServerCertificate,
  readServerCertificate,
  type ServerTls,
} from './ca/init.js'
import { caExists, loadCaMaterial, type CaMaterial } from './ca/material.js'
import { lacksServerMarker } from './ca/server-identity.js'
import { systemClock, type Clock } from './clock.js'
import type { Config } from './config/load.js'
import { openStore, type Store } from './db/store.js'
import { createApp } from './http/app.js'
import { closeGracefully, createHttpsServer, listen, replaceTlsMaterial } from './http/server.js'
import { SigningKeys } from './tokens/keys.js'

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

/** `certbound init`: CA, server TLS certificate, first admin credential, signing key. */
export async function initialize(
  config: Config,
  store: Store,
  clock: Clock = systemClock,
): Promise<CaMaterial> {
  const deps = { config, store, clock }
  const ca = await createCa(deps)
  await issueServerCertificate(deps, ca)
  await issueAdminCredential(deps, ca)
  await new SigningKeys(deps).ensure()
  return ca
}

/** The composition root: config → store → CA → services → app → HTTPS. */
export async function startServer(
  config: Config,
  options: { clock?: Clock; logger?: Logger } = {},
): Promise<RunningServer> {
  const clock = options.clock ?? systemClock
  const logger = options.logger ?? createLogger(config)
  const store = openStore(config.dataDir, config.database)
  try {
    const ca = caExists(config.dataDir)
      ? loadCaMaterial(config.dataDir)
      : await initialize(config, store, clock)
    const deps = { config, store, clock }
    const keys = new SigningKeys(deps)
    await keys.ensure()
    await keys.rotateIfDue()
    const crl = new CrlPublisher({ store, clock, ca, validityMs: config.crl.validityMs })
    await crl.rebuild()
    crl.start()
    const caPem = ca.bundlePem + ca.intermediatePem
    let tls = readServerCertificate(config.dataDir, config.server.hostnames)
    // Renew the server's own certificate when a third of its lifetime is left, or when it
    // was revoked; new connections get it at once (setSecureContext), no restart.
    const tlsStale = async (t: ServerTls) =>
      lacksServerMarker(t.certPem) ||
      t.notAfter.getTime() - clock.now().getTime() < config.server.tlsCertificateTtlMs / 3 ||
      (await store.certificates.get(t.serial))?.status !== 'valid'
    if (!tls || (await tlsStale(tls))) tls = await issueServerCertificate(deps, ca)
    let server: Server | undefined
    const renewTls = async (force: boolean) => {
      if (!force && !(await tlsStale(tls!))) return
      tls = await issueServerCertificate(deps, ca)
      if (server) replaceTlsMaterial(server, { ...tls, caPem })
      logger.info(
        { serial: tls.serial, not_after: tls.notAfter.toISOString() },
        'server TLS certificate renewed',
      )
    }
    const onRevoked = (serials: readonly string[]) => {
      if (serials.includes(tls!.serial))
        void renewTls(true).catch((e) =>
          logger.error({ err: (e as Error).message }, 'server TLS renewal failed'),
        )
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
    const maintenance = setInterval(
      async () => {
        try {
          await renewTls(false)
          await keys.rotateIfDue()
          await store.tokens.purgeExpired(clock.now().getTime())
        } catch (e) {
          logger.error({ err: (e as Error).message }, 'scheduled maintenance failed')
        }
      },
      Math.min(3_600_000, config.server.tlsCertificateTtlMs / 10),
    )
    maintenance.unref()
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    logger.info(
      {
        url: `https://${host}:${address.port}`,
        data_dir: config.dataDir,
        issuer: config.tokens.issuer,
      },
      'certbound serving',
    )
    return {
      address,
      url: `https://${host}:${address.port}`,
      store,
      ca,
      server,
      async close() {
        clearInterval(maintenance)
        crl.stop()
        await closeGracefully(server)
        store.close()
      },
    }
  } catch (e) {
    store.close()
    throw e
  }
}
