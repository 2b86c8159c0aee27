import { once } from 'node:events'
import { createWriteStream, existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import { Command } from 'commander'
import { systemClock } from '../clock.js'
import type { Config } from '../config/load.js'
import { CAError } from '../errors.js'

// The CA's database code is loaded by the commands only (see index.ts).
const db = () => import('../db/store.js')
const caFiles = () => import('../ca/files.js')
const auditLog = () => import('../audit/log.js')
const verify = () => import('../audit/verify.js')
const exporting = () => import('../audit/export.js')
const note = () => import('../audit/note.js')

type ConfigOf = (cmd: Command) => Config

async function withStore<T>(
  config: Config,
  f: (store: import('../db/port.js').Store) => Promise<T>,
): Promise<T> {
  const store = await (await db()).openStore(config.dataDir, config.database)
  try {
    return await f(store)
  } finally {
    await store.close()
  }
}

/** data_dir's key-encryption key, or undefined when this data_dir has none (a copy elsewhere). */
async function kekOf(config: Config) {
  if (!existsSync(join(config.dataDir, 'ca/kek.key'))) return undefined
  return (await caFiles()).loadKeyEncryptionKey(config.dataDir)
}

/** Appends what the checkpointer has not yet, so a proof covers an event committed just now. */
async function catchUp(config: Config, store: import('../db/port.js').Store): Promise<void> {
  const kek = await kekOf(config)
  if (!kek) return
  const { AuditLog } = await auditLog()
  await new AuditLog({ config, store, clock: systemClock, kek }).catchUp()
}

async function write(out: Writable, line: string): Promise<void> {
  if (!out.write(line)) await once(out, 'drain')
}

async function verifierOption(value: string | undefined) {
  if (value === undefined) return undefined
  const text = value.includes('+') ? value : readFileSync(value, 'utf8')
  return (await note()).parseVerifierKey(text.trim())
}

export function auditCommand(configOf: ConfigOf): Command {
  const audit = new Command('audit').description(
    'the audit log: a Merkle tree of every audit event, with signed checkpoints',
  )
  audit
    .command('verify')
    .description(
      'recompute every leaf, tile and checkpoint from the database; exit 1 naming the first that does not verify',
    )
    .option(
      '--verifier-key <key|file>',
      'the verifier key kept from GET /v1/audit/key (default: the key sealed for this data_dir)',
    )
    .option(
      '--checkpoint <file...>',
      'checkpoints saved from GET /v1/audit/checkpoint: the log must still contain each',
    )
    .action(async (o: { verifierKey?: string; checkpoint?: string[] }, cmd: Command) => {
      const config = configOf(cmd)
      const verifier = await verifierOption(o.verifierKey)
      const kek = verifier ? undefined : await kekOf(config)
      const checkpoints = (o.checkpoint ?? []).map((f) => readFileSync(f, 'utf8'))
      const result = await withStore(config, async (store) =>
        (await verify()).verifyAuditLog(store.auditLog, { verifier, kek, checkpoints }),
      )
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
      if (!result.ok)
        throw new CAError(
          'ERR_AUDIT_LOG_INVALID',
          `the audit log does not verify: ${result.problem}`,
        )
    })
  audit
    .command('export')
    .description('JSON lines: the latest checkpoint, then every event with its inclusion proof')
    .option('--out <file>', 'write here instead of stdout')
    .option('--from <leaf>', 'first leaf index', (v) => Number.parseInt(v, 10), 0)
    .action(async (o: { out?: string; from: number }, cmd: Command) => {
      const config = configOf(cmd)
      if (!Number.isSafeInteger(o.from) || o.from < 0)
        throw new CAError('ERR_BAD_REQUEST', '--from takes a leaf index (0, 1, …)')
      const out = o.out ? createWriteStream(o.out, { flags: 'wx', mode: 0o600 }) : process.stdout
      await withStore(config, async (store) => {
        await catchUp(config, store)
        for await (const line of (await exporting()).exportAuditLog(store.auditLog, o.from))
          await write(out, `${JSON.stringify(line)}\n`)
      })
      if (out !== process.stdout) await new Promise<void>((r) => out.end(() => r()))
    })
  audit
    .command('prove')
    .description("the inclusion proof of a certificate's issuance event, with the checkpoint")
    .argument('<serial>', 'certificate serial (hex)')
    .action(async (serial: string, _o, cmd: Command) => {
      const config = configOf(cmd)
      if (!/^[0-9a-fA-F]{2,64}$/.test(serial))
        throw new CAError('ERR_BAD_REQUEST', `${serial} is not a certificate serial (hex)`)
      const proof = await withStore(config, async (store) => {
        await catchUp(config, store)
        return (await exporting()).proveIssuance(store.auditLog, serial)
      })
      process.stdout.write(`${JSON.stringify(proof, null, 2)}\n`)
    })
  return audit
}
