import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

import { AgentFailure } from './errors.js'

/*
 * `--group` / `--mode`: who besides the agent's user may read the private key it writes, so a
 * TLS terminator running as another user (nginx, HAProxy) can load `key.pem` next to
 * `chain.pem` and `crls.pem`. The key is never world-readable and never writable by the
 * group; every file of a generation gets the group, and modes decide (token.json stays 0600).
 */

/** How the files of a generation are owned: the group (gid) and the mode of `key.pem`. */
export interface FileAccess {
  readonly group: number | undefined
  readonly keyMode: number
}

export const PRIVATE: FileAccess = Object.freeze({ group: undefined, keyMode: 0o600 })

const usage = (message: string) => new AgentFailure('usage', message)

/** Host facts the checks read, injectable for tests. */
export interface HostIds {
  readonly uid: number | undefined
  readonly groups: readonly number[]
  readonly lookupGroup: (name: string) => number | undefined
}

/** A group name's gid from the system's group database (NSS via getent, else /etc/group). */
export function lookupGroup(name: string): number | undefined {
  const parse = (text: string) => {
    for (const line of text.split('\n')) {
      const [entry, , gid] = line.split(':')
      if (entry === name && /^\d+$/.test(gid ?? '')) return Number(gid)
    }
    return undefined
  }
  try {
    return parse(execFileSync('getent', ['group', name], { encoding: 'utf8', timeout: 5_000 }))
  } catch (e) {
    // getent exits 2 for an unknown group; without getent, read the file.
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') return undefined
    try {
      return parse(readFileSync('/etc/group', 'utf8'))
    } catch {
      return undefined
    }
  }
}

export function hostIds(): HostIds {
  const uid = typeof process.getuid === 'function' ? process.getuid() : undefined
  const groups =
    typeof process.getgroups === 'function' ? [process.getgid!(), ...process.getgroups()] : []
  return { uid, groups, lookupGroup }
}

function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text))
    throw usage(`--mode ${JSON.stringify(text)} is not an octal mode such as 0640`)
  const mode = parseInt(text, 8)
  const show = `--mode ${text}`
  if (mode & 0o007)
    throw usage(`${show} would let every user read the private key: others get no bits`)
  if (mode & 0o111) throw usage(`${show} sets an execute bit on the private key`)
  if (mode & 0o020) throw usage(`${show} would let the group write the private key`)
  if (!(mode & 0o400)) throw usage(`${show} does not let the agent read its own key back`)
  return mode
}

function parseGroup(text: string, ids: HostIds): number {
  const gid = /^\d{1,10}$/.test(text) ? Number(text) : ids.lookupGroup(text)
  if (gid === undefined || gid > 0xffff_fffe)
    throw usage(`--group ${JSON.stringify(text)}: no such group`)
  // chown(2): an unprivileged process may only give a file to a group it is a member of.
  if (ids.uid !== 0 && ids.uid !== undefined && !ids.groups.includes(gid)) {
    throw usage(`--group ${text}: this agent's user is not a member of that group (gid ${gid})`)
  }
  return gid
}

/** Validates `--group` / `--mode`; `--group` alone means 0640, group bits need a group. */
export function resolveFileAccess(
  flags: { group?: string; mode?: string },
  ids: HostIds = hostIds(),
): FileAccess {
  const group = flags.group === undefined ? undefined : parseGroup(flags.group, ids)
  const keyMode =
    flags.mode === undefined ? (group === undefined ? 0o600 : 0o640) : parseMode(flags.mode)
  if (keyMode & 0o070 && group === undefined) {
    throw usage(`--mode ${flags.mode} gives a group the private key: name it with --group`)
  }
  return { group, keyMode }
}
