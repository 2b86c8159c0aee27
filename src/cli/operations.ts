import type { Command } from 'commander'
import { configOf, print } from './common.js'

// Loaded by the commands that use them only (they reach the database code).
const backupOps = () => import('../ops/backup.js')
const doctorOps = () => import('../ops/doctor.js')
const keyProtection = () => import('../ca/key-protection.js')

/** `backup`, `restore`, `doctor` and `ca encrypt-keys` (README "Operating certbound"). */
export function addOperationsCommands(program: Command): void {
  program
    .command('backup')
    .description(
      'write a consistent copy of the database while the server runs (the CA keys and kek.key are NOT in it)',
    )
    .argument('<file>')
    .action(async (file: string, _o, cmd: Command) => {
      const { backup } = await backupOps()
      print(await backup(configOf(cmd), file))
    })

  program
    .command('restore')
    .description(
      'restore a backup into data_dir (its server stopped); refused unless it belongs to this CA',
    )
    .argument('<file>')
    .action(async (file: string, _o, cmd: Command) => {
      const { restore } = await backupOps()
      print(restore(configOf(cmd), file))
    })

  program
    .command('doctor')
    .description(
      'check config, key files and modes, key/certificate pairs, CA expiry, clock skew and database integrity',
    )
    .action(async (_o, cmd: Command) => {
      const { diagnose, formatFindings } = await doctorOps()
      let findings
      try {
        findings = await diagnose(configOf(cmd))
      } catch (e) {
        findings = [{ level: 'fail' as const, check: 'config', detail: (e as Error).message }]
      }
      process.stdout.write(formatFindings(findings))
      process.exitCode = findings.some((f) => f.level === 'fail') ? 1 : 0
    })

  const ca =
    program.commands.find((c) => c.name() === 'ca') ??
    program.command('ca').description('the certificate authority')
  ca.command('encrypt-keys')
    .description(
      'encrypt the root and intermediate key files (PKCS#8) with the passphrase of ca.key_passphrase_file or CERTBOUND_CA_KEY_PASSPHRASE',
    )
    .action(async (_o, cmd: Command) => {
      const { encryptCaKeyFiles } = await keyProtection()
      print({ encrypted: encryptCaKeyFiles(configOf(cmd)) })
    })
}
