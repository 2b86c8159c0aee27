import { readFileSync, writeFileSync } from 'node:fs'
import { Command } from 'commander'
import { systemClock } from '../clock.js'
import { loadConfig, type Config } from '../config/load.js'
import { CAError } from '../errors.js'

// `certbound ca …`: CA rotation and the offline root (CONTRACT "CA rotation"). These work on
// the database and data_dir directly, like `keys rotate`; running servers pick the change up
// on their next maintenance tick (every process and replica).

function configOf(cmd: Command): Config {
  const opts = cmd.optsWithGlobals() as { config?: string }
  return loadConfig(opts.config ?? process.env.CERTBOUND_CONFIG ?? 'ca-config.yaml')
}

function print(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`)
}

/** Opens the store and the CA set, runs `fn`, closes. */
async function withCa<T>(
  cmd: Command,
  fn: (deps: Awaited<ReturnType<typeof open>>) => Promise<T>,
): Promise<T> {
  const deps = await open(configOf(cmd))
  try {
    return await fn(deps)
  } finally {
    await deps.store.close()
  }
}

async function open(config: Config) {
  const [{ openStore }, { loadOrInitialize }, { loadKeyEncryptionKey }] = await Promise.all([
    import('../db/store.js'),
    import('../main.js'),
    import('../ca/files.js'),
  ])
  const store = await openStore(config.dataDir, config.database)
  try {
    const ca = await loadOrInitialize(config, store, systemClock)
    return { config, store, clock: systemClock, kek: loadKeyEncryptionKey(config.dataDir), ca }
  } catch (e) {
    await store.close()
    throw e
  }
}

const rotation = () => import('../ca/rotation.js')

/** Lints a new issuing CA against the intermediate profile naming the root's CRL (lint.ts). */
async function intermediateLint(deps: Awaited<ReturnType<typeof open>>) {
  const [{ caCertificateLint }, { intermediateProfile }, { parseCertificate }] = await Promise.all([
    import('../ca/lint.js'),
    import('../ca/profiles.js'),
    import('../x509/certificate.js'),
  ])
  const root = deps.ca.byKeyId(deps.ca.current.parentKeyId ?? '')
  return (der: Uint8Array) => {
    const parent = parseCertificate(der).authorityKeyId
    const rootKeyId = parent ? Buffer.from(parent).toString('hex') : (root?.keyId ?? '')
    caCertificateLint(
      deps.config,
      intermediateProfile(rootKeyId, deps.config.server.publicUrl),
    )(der)
  }
}

function readInput(file: string): string {
  try {
    return readFileSync(file === '-' ? 0 : file, 'latin1')
  } catch (e) {
    throw new CAError('ERR_BAD_REQUEST', `cannot read ${file}: ${(e as Error).message}`)
  }
}

export function caCommand(): Command {
  const ca = new Command('ca').description('CA rotation and the offline root')
  ca.command('rotate')
    .description(
      'make a new issuing CA under the same root; the previous keeps serving CRL and OCSP for its certificates',
    )
    .action((_o, cmd: Command) =>
      withCa(cmd, async (deps) => {
        const { rotateIssuer } = await rotation()
        const r = await rotateIssuer({ ...deps, lintCa: await intermediateLint(deps) })
        print({
          key_id: r.keyId,
          serial: r.serial,
          not_after: r.notAfter.toISOString(),
          previous: r.previous,
        })
      }),
    )
  ca.command('intermediate-csr')
    .description(
      'a new issuing CA key (sealed in the database) and its CSR, for an offline root to sign',
    )
    .option('--out <file>', 'write the CSR here instead of stdout')
    .action((o: { out?: string }, cmd: Command) =>
      withCa(cmd, async (deps) => {
        const { createIntermediateCsr } = await rotation()
        const pem = await createIntermediateCsr(deps)
        if (o.out) writeFileSync(o.out, pem)
        else process.stdout.write(pem)
      }),
    )
  ca.command('import-intermediate')
    .description(
      'the certificate the offline root signed for `ca intermediate-csr`; it becomes the issuer',
    )
    .argument('<file>', 'PEM certificate (- for stdin)')
    .action((file: string, _o, cmd: Command) =>
      withCa(cmd, async (deps) => {
        const { importIntermediate } = await rotation()
        const r = await importIntermediate(
          { ...deps, lintCa: await intermediateLint(deps) },
          readInput(file),
        )
        print({
          key_id: r.keyId,
          serial: r.serial,
          not_after: r.notAfter.toISOString(),
          previous: r.previous,
        })
      }),
    )
  ca.command('import-crl')
    .description("a CRL signed offline (the offline root's), served at /v1/ca/{key id}/crl")
    .argument('<file>', 'DER or PEM CRL (- for stdin)')
    .action((file: string, _o, cmd: Command) =>
      withCa(cmd, async (deps) => {
        const [{ CrlPublisher }, { pemBlocks }] = await Promise.all([
          import('../ca/crl.js'),
          import('../x509/pem.js'),
        ])
        const text = readInput(file)
        const der = text.includes('-----BEGIN')
          ? pemBlocks(text, 'X509 CRL')[0]
          : new Uint8Array(Buffer.from(text, 'latin1'))
        if (!der) throw new CAError('ERR_PEM_INVALID', 'no X509 CRL in the file')
        const publisher = new CrlPublisher({ ...deps, validityMs: deps.config.crl.validityMs })
        const r = await publisher.import(der)
        print({ key_id: r.keyId, crl_number: r.crlNumber.toString() })
      }),
    )
  return ca
}
