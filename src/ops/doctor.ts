import { X509Certificate, type KeyObject } from 'node:crypto'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { PATHS } from '../ca/files.js'
import { caKeyFromPem, caKeyPassphrase } from '../ca/key-protection.js'
import type { Config } from '../config/load.js'
import { privateKeyFromPem } from '../crypto/keys.js'
import type { Store } from '../db/port.js'
import { openPostgresDriver } from '../db/postgres/open.js'
import { createSqlStore } from '../db/sql/store.js'
import { readMigrations } from '../db/sqlite/migrate.js'
import { SqliteDriver } from '../db/sqlite/driver.js'

export type Level = 'ok' | 'warn' | 'fail'

/** One line of `certbound doctor`. */
export interface Finding {
  readonly level: Level
  readonly check: string
  readonly detail: string
}

const DAY = 86_400_000
/** Clock skew against the database: warn beyond this, fail beyond certificates.backdate. */
const SKEW_WARN_MS = 2_000

/**
 * `certbound doctor`: config, key files and their modes, key/certificate pairs, the CA's expiry
 * horizon, the database (reachable, schema, belongs to this CA, integrity) and the clock against
 * it. Reads only: it never migrates, writes or starts anything. Healthy = no `fail`.
 */
export async function diagnose(config: Config, now = new Date()): Promise<Finding[]> {
  const findings: Finding[] = []
  const add = (level: Level, check: string, detail: string) =>
    findings.push({ level, check, detail })
  add('ok', 'config', `${config.configPath ?? '(built-in defaults)'}; data_dir ${config.dataDir}`)
  const certs = checkFiles(config, add)
  if (certs) checkHorizon(config, certs, now, add)
  await checkDatabase(config, certs, add)
  return findings
}

type Add = (level: Level, check: string, detail: string) => void

interface CaCerts {
  readonly root: X509Certificate
  readonly intermediate: X509Certificate
  /**
   * init's issuing-CA key when ca/intermediate.pem is another CA's: after `ca rotate` the file
   * names the current issuer while the key file stays init's; the database says which it is.
   */
  readonly rotatedKey?: KeyObject
}

function readCert(config: Config, rel: string): X509Certificate {
  return new X509Certificate(readFileSync(join(config.dataDir, rel)))
}

/** Key files exist with mode 0600 and this user as owner; each key matches its certificate. */
function checkFiles(config: Config, add: Add): CaCerts | undefined {
  checkKeyModes(config, add)
  let certs: CaCerts
  try {
    certs = {
      root: readCert(config, PATHS.rootCert),
      intermediate: readCert(config, PATHS.intermediateCert),
    }
  } catch (e) {
    add('fail', 'CA certificates', (e as Error).message)
    return undefined
  }
  const rotatedKey = checkKeyPairs(config, add)
  checkChain(config, certs, add)
  return { ...certs, ...(rotatedKey && { rotatedKey }) }
}

function checkKeyModes(config: Config, add: Add): void {
  for (const rel of [PATHS.rootKey, PATHS.intermediateKey, PATHS.kek, PATHS.adminKey]) {
    const path = join(config.dataDir, rel)
    if (!existsSync(path)) {
      add(rel === PATHS.adminKey ? 'warn' : 'fail', 'key file', `${rel} is missing`)
      continue
    }
    const st = statSync(path)
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0')
    if ((st.mode & 0o077) !== 0) add('fail', 'key file', `${rel} has mode ${mode} (want 0600)`)
    else if (process.getuid && st.uid !== process.getuid())
      add('warn', 'key file', `${rel} belongs to uid ${st.uid}, not this user`)
    else add('ok', 'key file', `${rel} mode ${mode}`)
  }
}

/** Each key against its certificate; returns init's issuing-CA key if it awaits the database. */
function checkKeyPairs(config: Config, add: Add): KeyObject | undefined {
  let passphrase: string | undefined
  try {
    passphrase = caKeyPassphrase(config)
  } catch (e) {
    add('fail', 'key pair', (e as Error).message)
  }
  const pairs: [string, string, boolean][] = [
    [PATHS.rootKey, PATHS.rootCert, true],
    [PATHS.intermediateKey, PATHS.intermediateCert, true],
    [PATHS.adminKey, PATHS.adminCert, false],
  ]
  let rotatedKey: KeyObject | undefined
  for (const [keyRel, certRel, isCa] of pairs) {
    if (!existsSync(join(config.dataDir, keyRel))) continue
    try {
      const pem = readFileSync(join(config.dataDir, keyRel), 'utf8')
      const key = isCa ? caKeyFromPem(pem, passphrase, keyRel) : privateKeyFromPem(pem)
      const ok = readCert(config, certRel).checkPrivateKey(key)
      if (!ok && keyRel === PATHS.intermediateKey) {
        rotatedKey = key
        continue
      }
      const detail = `${keyRel} ${ok ? 'matches' : 'does not match'} ${certRel}`
      add(ok ? 'ok' : 'fail', 'key pair', detail)
    } catch (e) {
      add('fail', 'key pair', `${keyRel}: ${(e as Error).message}`)
    }
  }
  return rotatedKey
}

/** init's issuing-CA key file against the certificate the database records for it. */
async function checkRotatedKey(store: Store, key: KeyObject, add: Add) {
  const rows = await store.issuingCas.list()
  const init = rows.find((r) => r.keyFile === PATHS.intermediateKey)
  const ok = init !== undefined && new X509Certificate(init.der).checkPrivateKey(key)
  const detail = ok
    ? `${PATHS.intermediateKey} matches init's issuing CA ${init.keyId} (a rotation made ${PATHS.intermediateCert} another CA's)`
    : `${PATHS.intermediateKey} does not match ${PATHS.intermediateCert} nor any issuing CA the database records for it`
  add(ok ? 'ok' : 'fail', 'key pair', detail)
}

/** The intermediate is signed by the root, and the bundle clients pin holds that root. */
function checkChain(config: Config, certs: CaCerts, add: Add): void {
  const signed = certs.intermediate.verify(certs.root.publicKey)
  const how = signed ? 'is' : 'is not'
  add(
    signed ? 'ok' : 'fail',
    'chain',
    `${PATHS.intermediateCert} ${how} signed by ${PATHS.rootCert}`,
  )
  try {
    const bundle = readFileSync(join(config.dataDir, PATHS.bundle), 'utf8')
    const anchored = [
      ...bundle.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g),
    ].some((m) => new X509Certificate(m[0]).raw.equals(certs.root.raw))
    add(
      anchored ? 'ok' : 'fail',
      'chain',
      `${PATHS.bundle} ${anchored ? 'holds' : 'lacks'} the root`,
    )
  } catch (e) {
    add('fail', 'chain', `${PATHS.bundle}: ${(e as Error).message}`)
  }
}

/** The CA must outlive the longest certificate it may still issue, with a margin to rotate. */
function checkHorizon(config: Config, certs: CaCerts, now: Date, add: Add): void {
  const margin = config.certificates.maxTtlMs + 30 * DAY
  for (const [name, cert] of [
    ['root', certs.root],
    ['intermediate', certs.intermediate],
  ] as const) {
    const end = new Date(cert.validTo).getTime()
    const left = end - now.getTime()
    const detail = `${name} CA expires ${new Date(end).toISOString()} (${Math.floor(left / DAY)} days)`
    add(left <= 0 ? 'fail' : left < margin ? 'warn' : 'ok', 'CA expiry', detail)
  }
  const admin = join(config.dataDir, PATHS.adminCert)
  if (existsSync(admin)) {
    const left =
      new Date(new X509Certificate(readFileSync(admin)).validTo).getTime() - now.getTime()
    const detail = `admin credential expires in ${Math.floor(left / DAY)} days (certbound admin-credential renews it)`
    add(left <= 0 ? 'fail' : left < 7 * DAY ? 'warn' : 'ok', 'admin credential', detail)
  }
}

/** Opens the database without migrating it (doctor changes nothing). */
async function openForDoctor(config: Config): Promise<Store> {
  if (config.database.url !== undefined) {
    const { url, passwordFile, busyTimeoutMs } = config.database
    return createSqlStore(
      await openPostgresDriver({
        url,
        passwordFile,
        busyTimeoutMs,
        startupTimeoutMs: 5_000,
        migrate: false,
      }),
    )
  }
  const file = join(config.dataDir, PATHS.database)
  if (!existsSync(file)) throw new Error(`no database at ${file}`)
  return createSqlStore(new SqliteDriver(file, { busyTimeoutMs: config.database.busyTimeoutMs }))
}

async function checkDatabase(config: Config, certs: CaCerts | undefined, add: Add) {
  let store: Store
  try {
    store = await openForDoctor(config)
  } catch (e) {
    add('fail', 'database', (e as Error).message)
    if (certs?.rotatedKey)
      add('fail', 'key pair', `${PATHS.intermediateKey} does not match ${PATHS.intermediateCert}`)
    return
  }
  try {
    await checkSchema(store, certs?.root, add)
    if (certs?.rotatedKey) await checkRotatedKey(store, certs.rotatedKey, add)
    await checkClock(config, store, add)
    const problems = await store.ops.integrityProblems()
    const clean =
      store.backend === 'sqlite'
        ? 'PRAGMA integrity_check: ok'
        : 'no checksum failures, no invalid indexes'
    if (problems.length === 0) add('ok', 'integrity', clean)
    for (const p of problems.slice(0, 20)) add('fail', 'integrity', p)
  } catch (e) {
    add('fail', 'database', (e as Error).message)
  } finally {
    await store.close()
  }
}

/** The schema is one this certbound knows, and the database records the root of data_dir. */
async function checkSchema(store: Store, root: X509Certificate | undefined, add: Add) {
  const version = await store.ops.schemaVersion()
  const latest = readMigrations().at(-1)?.version ?? 0
  const note =
    version > latest
      ? ` (newer than this certbound's ${latest})`
      : version < latest
        ? ` (the next start migrates it to ${latest})`
        : ''
  const level = version > latest ? 'fail' : version < latest ? 'warn' : 'ok'
  add(level, 'database', `${store.backend}, schema version ${version}${note}`)
  if (!root) return
  const roots = (await store.certificates.caCertificates()).filter((c) => c.kind === 'root')
  const ours = roots.some((r) => Buffer.from(r.der).equals(root.raw))
  const detail = ours
    ? 'the database records the root of data_dir'
    : `the database belongs to another CA (${roots.length} other root(s))`
  add(ours ? 'ok' : 'fail', 'database CA', detail)
}

/** Validity windows are decided by this clock: a skew past certificates.backdate fails. */
async function checkClock(config: Config, store: Store, add: Add) {
  const before = Date.now()
  const dbTime = await store.ops.databaseTime()
  const skew = Math.round(dbTime - (before + Date.now()) / 2)
  const off = Math.abs(skew)
  const level = off > config.certificates.backdateMs ? 'fail' : off > SKEW_WARN_MS ? 'warn' : 'ok'
  add(level, 'clock', `${skew} ms against the database clock`)
}

/** One line per finding, `ok|warn|fail  check: detail`. */
export function formatFindings(findings: readonly Finding[]): string {
  return findings.map((f) => `${f.level.padEnd(4)}  ${f.check}: ${f.detail}\n`).join('')
}
