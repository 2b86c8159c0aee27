import { Command, Option } from 'commander'
import { pino } from 'pino'

import { KEY_TYPES } from '../crypto/keys.js'
import { WorkloadAgent } from './agent.js'
import { toFailure } from './errors.js'
import { resolveAgentOptions } from './options.js'
import type { RawAgentFlags } from './options.js'

// The workload side must not load the CA's database code (no native SQLite on workloads):
// src/agent imports only crypto, x509, config/duration, identity, errors, undici, commander
// and pino. test/agent/imports.test.ts enforces it.

const HELP = `
Output directory (--out DIR), Kubernetes AtomicWriter style:
  DIR/cert.pem, key.pem (0600, or --mode), chain.pem (leaf + intermediate: present this as the
  TLS client certificate), bundle.pem (trust bundle), token.json (0600: access_token,
  token_type, expires_at, x5t#S256), crl.pem and crl.der (the issuing CA's CRL) and crls.pem
  (the CRL of every CA of the chain, for nginx ssl_crl / HAProxy crl-file; refreshed at half
  its validity) are stable symlinks into DIR/..data, which is switched atomically to a new,
  complete generation directory on every change. The refresh token stays in
  DIR/..state/agent.json (0600, directory 0700).

For a TLS terminator running as another user: --group GROUP gives every file of a generation
to GROUP and makes key.pem 0640 (--mode 0440 or 0640; never readable by others, never
writable by the group). The agent's user must be a member of GROUP (or root).

A renewed certificate is kept in DIR/..state before its first use, and from then on is the only
one the agent uses: the server retires the one before at that first use (CONTRACT "Lineages").
A certificate that expired while the agent was stopped is renewed after expiry (a proof signed
with its key) when its entry allows it (renew_after_expiry), else the join token is needed.

Enrolment without a stored secret: --oidc github (the job's ID token, audience --oidc-audience),
--oidc-token-file FILE (re-read for every enrolment; when its token was already used or is stale,
the agent waits for the platform's next one, except with --once), --oidc-token-env VAR. With an
OIDC source the agent also enrols again by itself when the CA refuses its certificate or asks for
a re-enrolment (a lineage older than renewal.max_lineage).

Exit codes: 0 done (--once) or stopped by SIGTERM/SIGINT; 1 server unreachable or failing
(retry later); 2 bad flags or output directory; 3 credential refused (revoked, expired, unknown
certificate, join token or OIDC token, or "lineage revoked: suspected clone": another host used
this credential): enrol again with a new join token or OIDC token.`

/** `certbound agent`: enrol, renew and refresh a workload's certificate and token. */
export function agentCommand(): Command {
  return (
    new Command('agent')
      .description(
        'workload agent: enrol with a join token or an OIDC identity token, then keep a certificate and a bound token fresh',
      )
      // Required flags are checked by resolveAgentOptions, so that every usage error exits 2.
      .option('--server <url>', 'certbound server URL, https://host:port (required)')
      .option('--ca-bundle <file>', 'PEM trust bundle for the server: the CA root (required)')
      .option('--spiffe-id <id>', 'the SPIFFE ID of this workload (required)')
      .option(
        '--dns <name...>',
        'DNS names to request, if the entry allows them (e.g. to serve HTTPS)',
      )
      .option('--out <dir>', 'output directory for the certificate, key and token (required)')
      .addOption(
        new Option('--join-token <token>', 'one-time join token for the first enrolment').env(
          'CERTBOUND_JOIN_TOKEN',
        ),
      )
      .option('--join-token-file <file>', 'file holding the join token')
      .option(
        '--oidc <platform>',
        'enrol with the CI platform\'s OIDC identity token instead: "github" (GitHub Actions)',
      )
      .option(
        '--oidc-audience <aud>',
        "audience to ask GitHub for (default: --server); the issuer's audience in the CA config",
      )
      .option(
        '--oidc-token-file <file>',
        'enrol with the OIDC token in this file, re-read each time (Kubernetes projected token)',
      )
      .option('--oidc-token-env <var>', 'enrol with the OIDC token in this environment variable')
      .option(
        '--key-type <type>',
        `key type of the workload key: ${KEY_TYPES.join(', ')}`,
        'ec-p256',
      )
      .option(
        '--ttl <duration>',
        "certificate lifetime to request, e.g. 1h (default: the server's)",
      )
      .option('--once', 'renew if due, refresh or get the token, then exit (CI runners)')
      .option('--exec <command>', 'run this shell command (sh -c) after each switch to new files')
      .option('--group <group>', "group (name or gid) that may read key.pem, e.g. nginx's")
      .option('--mode <mode>', 'mode of key.pem: 0600 (default), 0640 (with --group), 0400, 0440')
      .option('--log-level <level>', 'log level; logs go to stderr', 'info')
      .addHelpText('after', HELP)
      // commander's own usage errors (unknown option, missing value) exit 2, like ours.
      .exitOverride((err) => process.exit(err.exitCode === 0 ? 0 : 2))
      .action(async (flags: RawAgentFlags) => {
        process.exitCode = await runAgentCommand(flags)
      })
  )
}

/** Runs the agent with the given flags and returns the exit code. */
export async function runAgentCommand(flags: RawAgentFlags): Promise<number> {
  let options
  try {
    options = resolveAgentOptions(flags)
  } catch (e) {
    const failure = toFailure(e)
    return fail(failure.message, failure.exitCode)
  }
  const log = pino(
    { name: 'certbound-agent', level: options.logLevel, base: { pid: process.pid } },
    pino.destination({ fd: 2, sync: true }),
  )
  const stop = new AbortController()
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) return
    log.info(`${signal}: stopping after the current step`)
    stop.abort()
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
  try {
    await new WorkloadAgent(options, log, stop.signal).run()
    return 0
  } catch (e) {
    const failure = toFailure(e)
    if (!options.once) log.error({ kind: failure.kind }, failure.message)
    return fail(failure.message, failure.exitCode)
  } finally {
    process.off('SIGTERM', onSignal)
    process.off('SIGINT', onSignal)
  }
}

function fail(message: string, code: number): number {
  process.stderr.write(`certbound agent: ${message}\n`)
  return code
}
