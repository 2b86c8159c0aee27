import cluster from 'node:cluster'
import { randomUUID } from 'node:crypto'
import type { Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { pino, type Logger } from 'pino'
import { AuditCheckpointer } from './audit/checkpointer.js'
import { AuditLog } from './audit/log.js'
import { Authority } from './ca/authority.js'
import { CrlPublisher } from './ca/crl.js'
import { crlLint, ocspSignerLint } from './ca/lint.js'
import { OcspResponder } from './ca/ocsp.js'
import { OcspSigners } from './ca/ocsp-signers.js'
import { EntryService } from './ca/entries.js'
import { loadKeyEncryptionKey } from './ca/files.js'
import { CaSet } from './ca/ca-set.js'
import { completeInit, createCa, issueAdminCredential, recordCaCertificates } from './ca/init.js'
import { caKeyPassphrase } from './ca/key-protection.js'
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
import { OidcFederation } from './federation/federation.js'
import { Maintenance } from './maintenance.js'
import { Metrics } from './ops/metrics.js'
import { serveMetrics, type MetricsListener } from './ops/metrics-server.js'
import { SigningKeys } from './tokens/keys.js'

// Expired tokens are forgotten every minute: a fleet granting 300 tokens a second expires a
// million an hour, deleted in small steady steps rather than one burst an hour.
const TOKEN_PURGE_EVERY_MS = 60_000
const PURGE_EVERY_MS = 3_600_000
const PURGE_BUDGET_MS = 2_000

export interface RunningServer {
  readonly address: AddressInfo
  readonly url: string
  readonly store: Store
  readonly ca: CaMaterial
  readonly server: Server
  /** `http://…/metrics` when this process serves metrics.listen itself. */
  readonly metricsUrl: string | undefined
  /** Resolves once the work a revocation started in the background (OCSP re-signing) is done. */
  idle(): Promise<void>
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
): Promise<CaSet> {
  const deps = { config, store, clock }
  await createCa(deps)
  const kek = loadKeyEncryptionKey(config.dataDir)
  const ca = await CaSet.open({
    dataDir: config.dataDir,
    store,
    kek,
    clock,
    passphrase: caKeyPassphrase(config),
  })
  await new ServerCredentials({ ...deps, ca, kek }).fresh()
  await issueAdminCredential(deps, ca)
  await new SigningKeys({ ...deps, kek }).ensure()
  await new AuditLog({ ...deps, kek }).ensureKey()
  return ca
}

/**
 * The CA material, creating it on the first start of an empty data_dir. Of several processes
 * or replicas starting at once on one data_dir exactly one creates the CA; the others use it.
 */
export async function loadOrInitialize(config: Config, store: Store, clock: Clock): Promise<CaSet> {
  if (!caExists(config.dataDir)) {
    try {
      return await initialize(config, store, clock)
    } catch (e) {
      if (!isCAError(e, 'ERR_CA_EXISTS') || !caExists(config.dataDir)) throw e
    }
  }
  const kek = loadKeyEncryptionKey(config.dataDir)
  const passphrase = caKeyPassphrase(config)
  // The database's CA rows decide once they exist (after a rotation, ca/intermediate.pem is the
  // new issuer while ca/intermediate-key.pem stays init's key); the files only on first start.
  if ((await store.issuingCas.list()).length === 0)
    await recordCaCertificates({ config, store, clock }, loadCaMaterial(config.dataDir, passphrase))
  const ca = await CaSet.open({ dataDir: config.dataDir, store, kek, clock, passphrase })
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
    await new AuditLog({ ...deps, kek }).ensureKey()
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
  const crl = new CrlPublisher({
    store,
    clock,
    ca,
    validityMs: config.crl.validityMs,
    rootValidityMs: config.crl.rootValidityMs,
    lint: crlLint(config),
  })
  const signers = new OcspSigners({ ...deps, ca, kek, lint: ocspSignerLint(config) })
  const ocsp = new OcspResponder({ ...deps, ca, signers })
  const credentials = new ServerCredentials({ ...deps, ca, kek })
  // Client certificates may chain through any issuing CA still valid, current or previous.
  const caPemOf = () => ca.bundlePem + ca.intermediatesPem
  let caPem = caPemOf()
  let tls: ServerTls = await credentials.fresh()
  let server: Server | undefined
  // Serve whatever credential the database holds now (another process may have renewed it).
  const adopt = (next: ServerTls, force = false) => {
    if (next.serial === tls.serial && !force) return
    tls = next
    if (server) replaceTlsMaterial(server, { ...tls, caPem })
    logger.info(
      { serial: tls.serial, not_after: tls.notAfter.toISOString() },
      'server TLS certificate renewed',
    )
  }
  // A worker's metrics are served by the primary, which sums them over its workers.
  const metrics = config.metrics
    ? new Metrics(
        { store, clock, crlThisUpdate: async () => (await crl.status())?.thisUpdate },
        { worker: cluster.isWorker },
      )
    : undefined
  // Work a revocation starts after its response: awaited by close(), so nothing writes to a
  // closed store, and by idle().
  const background = new Set<Promise<void>>()
  const track = (work: Promise<void>) => {
    background.add(work)
    void work.finally(() => background.delete(work))
  }
  const onRevoked = (serials: readonly string[]) => {
    // Stored OCSP answers of these serials are stale already (their status no longer matches);
    // signing the next ones now saves the first asker the work.
    track(
      ocsp
        .refresh(serials)
        .catch((e) => logger.warn({ err: (e as Error).message }, 'OCSP re-signing failed')),
    )
    metrics?.revoked(serials.length)
    if (serials.includes(tls.serial))
      track(
        credentials
          .fresh(true)
          .then(adopt)
          .catch((e) => logger.error({ err: (e as Error).message }, 'server TLS renewal failed')),
      )
  }
  const federation = new OidcFederation(config, logger)
  const app = createApp({
    ...deps,
    ca,
    keys,
    crl,
    ocsp,
    logger,
    metrics,
    authority: new Authority({ ...deps, ca, crl, onRevoked, federation }),
    entries: new EntryService(deps),
  })
  // Metrics first: a metrics.listen that cannot be bound stops the start before HTTPS listens.
  let metricsListener: MetricsListener | undefined
  if (metrics && config.metrics && !cluster.isWorker)
    metricsListener = await serveMetrics(config.metrics, () => metrics.text(), logger)
  server = createHttpsServer(app, { ...tls, caPem }, config.server)
  const address = await listen(server, config.server.host, config.server.port).catch(
    async (e: unknown) => {
      await metricsListener?.close()
      throw e
    },
  )
  const auditLog = new AuditLog({ ...deps, kek })
  await auditLog.ensureKey()
  let purgedAt = 0
  let tokensPurgedAt = 0
  const maintenance = new Maintenance({
    store,
    clock,
    logger,
    holder: `${process.pid}-${randomUUID()}`,
    periodMs: Math.min(10_000, config.server.tlsCertificateTtlMs / 10),
    everyProcess: async () => {
      // A rotation or an imported CA (another process or the CLI): trust and issue with it.
      if (await ca.reload()) {
        caPem = caPemOf()
        adopt(tls, true)
      }
      adopt((await credentials.current()) ?? tls)
    },
    leaderOnly: async () => {
      if (await credentials.stale(tls)) adopt(await credentials.fresh())
      await keys.rotateIfDue()
      await crl.refresh()
      await signers.renewDue()
      const now = clock.now().getTime()
      if (now - tokensPurgedAt >= TOKEN_PURGE_EVERY_MS) {
        // A bounded part of a round (its lease lasts three periods, a shutdown waits for it);
        // what is left of a backlog goes on at the next round.
        const { complete } = await store.tokens.purgeExpired(now, { budgetMs: PURGE_BUDGET_MS })
        if (complete) tokensPurgedAt = now
      }
      if (now - purgedAt >= PURGE_EVERY_MS) {
        await store.oidcTokens.purgeExpired(now)
        await store.authFailures.purge(now, config.limits.windowMs)
        await auditLog.purge(now)
        purgedAt = now
      }
    },
  })
  await maintenance.tick()
  maintenance.start()
  const checkpointer = new AuditCheckpointer({
    store,
    clock,
    logger,
    log: auditLog,
    holder: `${process.pid}-${randomUUID()}`,
    intervalMs: config.audit.checkpointIntervalMs,
  })
  await checkpointer.tick()
  checkpointer.start()
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
    metricsUrl: metricsListener?.url,
    async idle() {
      while (background.size > 0) await Promise.all(background)
    },
    async close() {
      await maintenance.stop()
      await checkpointer.stop()
      await closeGracefully(server)
      while (background.size > 0) await Promise.all(background)
      await federation.close()
      await metricsListener?.close()
      metrics?.close()
      await store.close()
    },
  }
}
