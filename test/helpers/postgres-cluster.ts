import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { appendFileSync, chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs'
import { writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'

/**
 * A throwaway PostgreSQL cluster made from the Debian binaries (`postgresql` package): initdb
 * into a temp dir, `pg_ctl start` on a free loopback port, stopped and removed at the end.
 * initdb and the server refuse to run as root, so as root they run as the `postgres` user
 * (runuser); as anyone else, as that user.
 */

export interface ClusterInfo {
  readonly host: '127.0.0.1'
  readonly port: number
  /** The superuser; tests make one database each with it. */
  readonly user: 'postgres'
  readonly password: string
  /** The CA of the server's TLS certificate (for 127.0.0.1 and localhost). */
  readonly caFile: string
  readonly binDir: string
  readonly dataDir: string
  readonly socketDir: string
  readonly version: number
}

/**
 * `/usr/lib/postgresql/<version>/bin` of the newest version installed (Debian's layout), or
 * CERTBOUND_POSTGRES_BINDIR where they live elsewhere; or why there are none.
 */
export function findBinaries(): { binDir: string; version: number } | { reason: string } {
  if (process.getuid?.() === 0 && spawnSync('id', ['-u', 'postgres']).status !== 0) {
    return { reason: "running as root, and there is no 'postgres' user to run initdb as" }
  }
  const override = process.env.CERTBOUND_POSTGRES_BINDIR
  if (override) {
    if (!existsSync(join(override, 'initdb'))) {
      return { reason: `no initdb in CERTBOUND_POSTGRES_BINDIR=${override}` }
    }
    const out = execFileSync(join(override, 'initdb'), ['--version'], { encoding: 'utf8' })
    return { binDir: override, version: Number(/([0-9]+)/.exec(out)?.[1] ?? 0) }
  }
  const root = '/usr/lib/postgresql'
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^[0-9]+$/.test(v) && existsSync(join(root, v, 'bin', 'initdb')))
        .map(Number)
        .sort((a, b) => b - a)
    : []
  if (versions.length === 0) {
    return {
      reason: `no PostgreSQL server binaries under ${root}/<version>/bin (apt-get install postgresql)`,
    }
  }
  return { binDir: join(root, String(versions[0]), 'bin'), version: versions[0]! }
}

const asRoot = () => process.getuid?.() === 0

/** Runs a PostgreSQL binary as the unprivileged user (runuser when we are root). */
function pgRun(binDir: string, tool: string, args: readonly string[]): string {
  const cmd = join(binDir, tool)
  const [file, argv] = asRoot()
    ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]]
    : [cmd, [...args]]
  try {
    return execFileSync(file, argv, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    const err = e as { stderr?: string; stdout?: string; message: string }
    throw new Error(`${tool} failed: ${err.stderr || err.stdout || err.message}`)
  }
}

function giveToPostgres(path: string): void {
  if (!asRoot()) return
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }))
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }))
  chownSync(path, uid, gid)
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

function openssl(args: readonly string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}

/** A CA and a server certificate for 127.0.0.1/localhost, so tests can ask for verify-full. */
function makeTls(dir: string): { caFile: string; certFile: string; keyFile: string } {
  const f = (n: string) => join(dir, n)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const ca = ['-subj', '/CN=certbound test database CA', '-days', '2']
  openssl(['req', '-x509', ...ec, ...ca, '-keyout', f('ca.key'), '-out', f('ca.crt')])
  const server = ['-subj', '/CN=localhost', '-keyout', f('server.key'), '-out', f('server.csr')]
  openssl(['req', '-new', ...ec, ...server])
  writeFileSync(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n')
  openssl([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.crt'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    f('ext.cnf'),
    '-out',
    f('server.crt'),
  ])
  // The server refuses a key file others can read; it must be its own.
  chmodSync(f('server.key'), 0o600)
  giveToPostgres(f('server.key'))
  giveToPostgres(f('server.crt'))
  return { caFile: f('ca.crt'), certFile: f('server.crt'), keyFile: f('server.key') }
}

/** initdb + pg_ctl start in `base` (a fresh directory); throws with the server's own words. */
export async function startCluster(base: string): Promise<ClusterInfo> {
  const found = findBinaries()
  if ('reason' in found) throw new Error(found.reason)
  const { binDir, version } = found
  giveToPostgres(base)
  chmodSync(base, 0o755)
  const dataDir = join(base, 'data')
  const socketDir = join(base, 'sock')
  const tlsDir = join(base, 'tls')
  mkdirSync(socketDir)
  mkdirSync(tlsDir)
  giveToPostgres(socketDir)
  giveToPostgres(tlsDir)
  const password = randomBytes(18).toString('base64url')
  const pwfile = join(base, 'pwfile')
  writeFileSync(pwfile, `${password}\n`, { mode: 0o600 })
  giveToPostgres(pwfile)
  // --no-sync: nothing of a throwaway cluster needs to survive a power loss.
  pgRun(binDir, 'initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    `--pwfile=${pwfile}`,
    '--auth-local=trust',
    '--auth-host=scram-sha-256',
    '-E',
    'UTF8',
    '--no-locale',
    '--no-sync',
    '--no-instructions',
  ])
  const tls = makeTls(tlsDir)
  // Test cluster only: fsync, synchronous_commit and full_page_writes off make start-up and
  // commits fast and lose nothing a test cares about (the cluster is removed at the end). A
  // short deadlock_timeout lets the deadlock tests finish quickly.
  appendFileSync(
    join(dataDir, 'postgresql.conf'),
    [
      '',
      "listen_addresses = '127.0.0.1'",
      `unix_socket_directories = '${socketDir}'`,
      'fsync = off',
      'synchronous_commit = off',
      'full_page_writes = off',
      'max_connections = 300',
      "deadlock_timeout = '100ms'",
      'ssl = on',
      `ssl_cert_file = '${tls.certFile}'`,
      `ssl_key_file = '${tls.keyFile}'`,
      '',
    ].join('\n'),
  )
  const log = join(base, 'postgres.log')
  // A free port can be taken between finding and binding it: try a few.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort()
    try {
      pgRun(binDir, 'pg_ctl', [
        '-D',
        dataDir,
        '-l',
        log,
        '-w',
        '-t',
        '60',
        '-o',
        `-p ${port}`,
        'start',
      ])
      return {
        host: '127.0.0.1',
        port,
        user: 'postgres',
        password,
        caFile: tls.caFile,
        binDir,
        dataDir,
        socketDir,
        version,
      }
    } catch (e) {
      if (attempt >= 3) throw e
    }
  }
}

/** Stops the server at once (nothing to keep) and leaves removal to the caller. */
export function stopCluster(info: Pick<ClusterInfo, 'binDir' | 'dataDir'>): void {
  try {
    pgRun(info.binDir, 'pg_ctl', ['-D', info.dataDir, '-m', 'immediate', '-w', 'stop'])
  } catch {
    // Already stopped (or never fully started): nothing to do.
  }
}
