#!/usr/bin/env node
import { Command, Option } from 'commander'
import { systemClock } from '../clock.js'
import { CAError } from '../errors.js'
import { agentCommand } from '../agent/command.js'
import { caCommand } from './ca.js'
import { auditCommand } from './audit.js'
import { AdminClient, ApiError, type AdminClientOptions } from './http-client.js'
import { configOf, print } from './common.js'
import { addOperationsCommands } from './operations.js'

// Server-side modules load native SQLite: import them only in the commands that need them,
// so the workload-side `agent` runs without the CA's database code.
const server = () => import('../main.js')
const cluster = () => import('../cluster.js')
const caInit = () => import('../ca/init.js')
const caMaterial = () => import('../ca/material.js')
const db = () => import('../db/store.js')
const signingKeys = () => import('../tokens/keys.js')
const caFiles = () => import('../ca/files.js')

/** Runs an admin API call with the admin credential and prints the JSON answer. */
async function api(cmd: Command, method: string, path: string, body?: unknown): Promise<void> {
  const client = new AdminClient(configOf(cmd), cmd.optsWithGlobals() as AdminClientOptions)
  try {
    print(await client.call(method, path, body))
  } finally {
    await client.close()
  }
}

function adminCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .option('--server <url>', 'server URL (default: from server.listen; env CERTBOUND_SERVER)')
    .option('--cert <file>', 'admin client certificate (default: data_dir/admin/admin.pem)')
    .option('--key <file>', 'admin private key (default: data_dir/admin/admin-key.pem)')
    .option('--ca-bundle <file>', 'trust bundle for the server (default: data_dir/ca/bundle.pem)')
}

const enc = encodeURIComponent

interface CertListFlags {
  spiffeId?: string
  lineage?: string
  status?: string
  cursor?: string
}

/** `--claim NAME=PATTERN`, repeatable: the claims an entry's OIDC rule pins. */
function collectClaim(
  value: string,
  previous: Record<string, string> = {},
): Record<string, string> {
  const i = value.indexOf('=')
  if (i <= 0) throw new CAError('ERR_BAD_REQUEST', `--claim ${value}: expected NAME=PATTERN`)
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) }
}

/** The `oidc` rule of `--oidc-issuer` and `--claim`, or undefined when neither is given. */
function oidcRule(o: { oidcIssuer?: string; claim?: Record<string, string> }) {
  if (o.oidcIssuer === undefined && o.claim === undefined) return undefined
  if (o.oidcIssuer === undefined)
    throw new CAError('ERR_BAD_REQUEST', '--claim needs --oidc-issuer')
  return { issuer: o.oidcIssuer, claims: o.claim ?? {} }
}

const OIDC_HELP = `
Enrolment by OIDC identity token (see docs/ci-without-secrets.md): --oidc-issuer names an issuer
of federation.oidc_issuers, each --claim NAME=PATTERN pins a claim (a top-level name, or a JSON
Pointer such as /kubernetes.io/namespace; PATTERN is exact, or a glob whose * matches anything,
/ included). Only string claims match; every pinned claim must.`

interface EntryFlags {
  dns?: string[]
  ttl?: string
  scopes?: string[]
  renewAfterExpiry?: string
  oidcIssuer?: string
  claim?: Record<string, string>
}

export function buildCli(): Command {
  const program = new Command('certbound')
    .description('workload-identity CA with certificate-bound tokens (RFC 8705)')
    .option('--config <file>', 'config file (default ./ca-config.yaml; env CERTBOUND_CONFIG)')
    .showHelpAfterError()

  program
    .command('serve')
    .description('start the HTTPS server (initialises data_dir on first start)')
    .action(async (_o, cmd: Command) => {
      const { serve } = await cluster()
      const running = await serve(configOf(cmd))
      let stopping = false
      const stop = (signal: string) => {
        if (stopping) return
        stopping = true
        process.stderr.write(`certbound: ${signal}: shutting down\n`)
        void running.close().then(() => process.exit(0))
      }
      process.on('SIGTERM', () => stop('SIGTERM'))
      process.on('SIGINT', () => stop('SIGINT'))
    })

  program
    .command('init')
    .description('create the CA, server certificate, signing key and first admin credential')
    .action(async (_o, cmd: Command) => {
      const config = configOf(cmd)
      const [{ caExists }, { openStore }, { initialize }] = await Promise.all([
        caMaterial(),
        db(),
        server(),
      ])
      if (caExists(config.dataDir))
        throw new CAError(
          'ERR_CA_EXISTS',
          `a CA already exists in ${config.dataDir}; refusing to overwrite it`,
        )
      const store = await openStore(config.dataDir, config.database)
      try {
        const ca = await initialize(config, store)
        print({
          data_dir: config.dataDir,
          root_serial: ca.root.serialHex,
          intermediate_serial: ca.intermediate.serialHex,
          admin: config.admin.spiffeIds[0],
        })
      } finally {
        await store.close()
      }
    })

  program
    .command('admin-credential')
    .description(
      'issue a new admin client certificate locally from the CA key (recovers a lost or expired credential)',
    )
    .option('--spiffe-id <id>', 'one of admin.spiffe_ids (default: the first)')
    .action(async (o: { spiffeId?: string }, cmd: Command) => {
      const config = configOf(cmd)
      const id = o.spiffeId ?? config.admin.spiffeIds[0]!
      if (!config.admin.spiffeIds.includes(id))
        throw new CAError('ERR_BAD_REQUEST', `${id} is not in admin.spiffe_ids`)
      const [{ openStore }, { issueAdminCredential }, { loadCaMaterial }, { caKeyPassphrase }] =
        await Promise.all([db(), caInit(), caMaterial(), import('../ca/key-protection.js')])
      const store = await openStore(config.dataDir, config.database)
      try {
        const issued = await issueAdminCredential(
          { config, store, clock: systemClock },
          loadCaMaterial(config.dataDir, caKeyPassphrase(config)),
          id,
        )
        print({
          spiffe_id: id,
          serial: issued.serial,
          not_after: issued.notAfter.toISOString(),
          certificate: `${config.dataDir}/admin/admin.pem`,
        })
      } finally {
        await store.close()
      }
    })

  const keys = program.command('keys').description('token-signing keys')
  keys
    .command('rotate')
    .description(
      'add a new signing key (published before it signs; the old one stays until its tokens expire)',
    )
    .option(
      '--now',
      'emergency: sign with the new key at once and withdraw the old ones, killing their tokens',
    )
    .action(async (o: { now?: boolean }, cmd: Command) => {
      const config = configOf(cmd)
      const [{ openStore }, { SigningKeys }, { loadKeyEncryptionKey }] = await Promise.all([
        db(),
        signingKeys(),
        caFiles(),
      ])
      const store = await openStore(config.dataDir, config.database)
      try {
        const kek = loadKeyEncryptionKey(config.dataDir)
        const key = await new SigningKeys({ config, store, clock: systemClock, kek }).rotate({
          immediate: o.now === true,
          actor: 'cli',
        })
        if (!key) throw new Error('another process rotated the signing key at the same moment')
        print({ kid: key.kid, alg: key.alg, signs_from: new Date(key.activateAt).toISOString() })
      } finally {
        await store.close()
      }
    })

  // Before the operations commands: they add `ca encrypt-keys` to it.
  program.addCommand(caCommand())
  addOperationsCommands(program)

  const entry = program.command('entry').description('registration entries (admin API)')
  entry.addCommand(
    adminCommand('create', 'register a workload identity')
      .argument('<spiffe-id>')
      .option('--dns <name...>', 'DNS names the workload may request')
      .option('--ttl <duration>', 'cap on certificate lifetime for this entry')
      .option('--scopes <scope...>', 'pin the OAuth scopes its workloads may be granted')
      .option(
        '--renew-after-expiry <duration>',
        'let the current certificate renew this long after it expired (at most 24h)',
      )
      .option('--oidc-issuer <name>', 'accept OIDC identity tokens of this configured issuer')
      .option('--claim <name=pattern>', 'a claim the OIDC token must match (repeat)', collectClaim)
      .addHelpText('after', OIDC_HELP)
      .action((id: string, o: EntryFlags, cmd: Command) => {
        const oidc = oidcRule(o)
        return api(cmd, 'POST', '/v1/entries', {
          spiffe_id: id,
          ...(o.dns ? { dns_names: o.dns } : {}),
          ...(o.ttl ? { ttl: o.ttl } : {}),
          ...(o.scopes ? { scopes: o.scopes } : {}),
          ...(o.renewAfterExpiry ? { renew_after_expiry: o.renewAfterExpiry } : {}),
          ...(oidc ? { oidc } : {}),
        })
      }),
  )
  entry.addCommand(
    adminCommand('update', "change an entry's OIDC rule")
      .argument('<id>')
      .option('--oidc-issuer <name>', 'accept OIDC identity tokens of this configured issuer')
      .option('--claim <name=pattern>', 'a claim the OIDC token must match (repeat)', collectClaim)
      .option('--no-oidc', 'remove the OIDC rule (join tokens only)')
      .addHelpText('after', OIDC_HELP)
      .action((id: string, o: EntryFlags & { oidc?: boolean }, cmd: Command) => {
        const oidc = o.oidc === false ? null : oidcRule(o)
        if (oidc === undefined) throw new CAError('ERR_BAD_REQUEST', 'nothing to change')
        return api(cmd, 'PATCH', `/v1/entries/${enc(id)}`, { oidc })
      }),
  )
  entry.addCommand(
    adminCommand('list', 'list entries')
      .option('--cursor <c>')
      .action((o: { cursor?: string }, cmd: Command) =>
        api(cmd, 'GET', `/v1/entries${o.cursor ? `?cursor=${enc(o.cursor)}` : ''}`),
      ),
  )
  entry.addCommand(
    adminCommand('show', 'show an entry')
      .argument('<id>')
      .action((id: string, _o, cmd: Command) => api(cmd, 'GET', `/v1/entries/${enc(id)}`)),
  )
  entry.addCommand(
    adminCommand('disable', 'disable an entry (ends its token families)')
      .argument('<id>')
      .action((id: string, _o, cmd: Command) =>
        api(cmd, 'PATCH', `/v1/entries/${enc(id)}`, { enabled: false }),
      ),
  )
  entry.addCommand(
    adminCommand('enable', 'enable an entry again')
      .argument('<id>')
      .action((id: string, _o, cmd: Command) =>
        api(cmd, 'PATCH', `/v1/entries/${enc(id)}`, { enabled: true }),
      ),
  )

  const joinToken = program
    .command('join-token')
    .description('one-time enrolment tokens (admin API)')
  joinToken.addCommand(
    adminCommand('create', 'create a join token for an entry (printed once)')
      .argument('<entry-id>')
      .option('--ttl <duration>')
      .action((id: string, o: { ttl?: string }, cmd: Command) =>
        api(cmd, 'POST', `/v1/entries/${enc(id)}/join-tokens`, o.ttl ? { ttl: o.ttl } : {}),
      ),
  )

  const cert = program.command('cert').description('issued certificates (admin API)')
  cert.addCommand(
    adminCommand('list', 'list certificates')
      .option('--spiffe-id <id>')
      .option('--lineage <id>', 'only the generations of this lineage')
      .addOption(new Option('--status <status>').choices(['valid', 'revoked', 'expired']))
      .option('--cursor <c>')
      .action((o: CertListFlags, cmd: Command) => {
        const q = new URLSearchParams()
        if (o.spiffeId) q.set('spiffe_id', o.spiffeId)
        if (o.lineage) q.set('lineage_id', o.lineage)
        if (o.status) q.set('status', o.status)
        if (o.cursor) q.set('cursor', o.cursor)
        return api(cmd, 'GET', `/v1/certificates${q.size ? `?${q}` : ''}`)
      }),
  )
  cert.addCommand(
    adminCommand('show', 'show a certificate')
      .argument('<serial>')
      .action((s: string, _o, cmd: Command) => api(cmd, 'GET', `/v1/certificates/${enc(s)}`)),
  )
  cert.addCommand(
    adminCommand('revoke', 'revoke a certificate (its tokens die with it)')
      .argument('<serial>')
      .option('--reason <reason>', 'RFC 5280 reason, e.g. keyCompromise, superseded')
      .action((s: string, o: { reason?: string }, cmd: Command) =>
        api(cmd, 'POST', `/v1/certificates/${enc(s)}/revoke`, o.reason ? { reason: o.reason } : {}),
      ),
  )
  const lineage = program
    .command('lineage')
    .description('lineages: a certificate and its renewals (admin API)')
  lineage.addCommand(
    adminCommand('show', 'show a lineage and the state of each generation')
      .argument('<id>')
      .action((id: string, _o, cmd: Command) => api(cmd, 'GET', `/v1/lineages/${enc(id)}`)),
  )
  lineage.addCommand(
    adminCommand('revoke', 'revoke a lineage: every certificate of it and their tokens')
      .argument('<id>')
      .option('--reason <reason>', 'RFC 5280 reason, e.g. keyCompromise')
      .action((id: string, o: { reason?: string }, cmd: Command) =>
        api(cmd, 'POST', `/v1/lineages/${enc(id)}/revoke`, o.reason ? { reason: o.reason } : {}),
      ),
  )
  program.addCommand(auditCommand(configOf))
  program.addCommand(agentCommand())
  return program
}

buildCli()
  .parseAsync(process.argv)
  .catch((e: unknown) => {
    const message =
      e instanceof CAError || e instanceof ApiError
        ? e.message
        : e instanceof Error
          ? e.message
          : String(e)
    process.stderr.write(`certbound: ${message}\n`)
    process.exit(1)
  })
