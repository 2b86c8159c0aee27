import { randomBytes } from 'node:crypto'
import { constants } from 'node:fs'
import { lstat, mkdir, open, rename, symlink } from 'node:fs/promises'
import type { FileHandle } from 'node:fs/promises'

import { AgentFailure } from './errors.js'

/*
 * `--out` may be a shared volume (a Kubernetes emptyDir is root-owned and 0777, without the
 * sticky bit), where another user can plant links or directories under the names the agent
 * uses. So nothing the agent creates there follows a link or reuses an existing entry: files
 * are created with O_EXCL|O_NOFOLLOW, directories with an exclusive mkdir and then opened with
 * O_NOFOLLOW to set their mode, temporary names are random, and a directory the agent keeps
 * secrets in must be a real directory of its own user. (Node has no openat(2): a directory
 * swapped after these checks can still receive a file, but only a 0600 file of ours.)
 */

const { O_CREAT, O_EXCL, O_WRONLY, O_RDONLY } = constants
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0
const O_DIRECTORY = constants.O_DIRECTORY ?? 0

/** A random, unguessable name beside `base` for something renamed into place. */
export function tempName(base: string): string {
  return `${base}.${randomBytes(8).toString('hex')}.tmp`
}

/** Matches the names {@link tempName} makes (to clean up after a crash). */
export const TEMP_NAME = /\.[0-9a-f]{16}\.tmp$/

async function withHandle<T>(
  path: string,
  flags: number,
  mode: number | undefined,
  fn: (h: FileHandle) => Promise<T>,
): Promise<T> {
  const handle = await open(path, flags, mode)
  try {
    return await fn(handle)
  } finally {
    await handle.close()
  }
}

/**
 * Creates `path` (never an existing file or link), sets its group (if given) and `mode`, then
 * writes and fsyncs. It is created owner-only, so the data is never readable by more than
 * `mode` allows, nor by the group before the file is the group's.
 */
export function createFile(
  path: string,
  data: string | Uint8Array,
  mode: number,
  group?: number,
): Promise<void> {
  return withHandle(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, mode & 0o600, async (h) => {
    if (group !== undefined) await h.chown(-1, group)
    await h.chmod(mode) // exact: the umask may have narrowed it, chown may have cleared bits
    await h.writeFile(data)
    await h.sync()
  })
}

/** fsyncs a directory, refusing to follow a link to it. */
export function syncDir(path: string): Promise<void> {
  return withHandle(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, undefined, (h) => h.sync())
}

function uid(): number | undefined {
  return typeof process.getuid === 'function' ? process.getuid() : undefined
}

/**
 * Makes a new directory (failing if the name exists in any form) and sets its mode through a
 * handle opened without following links, checking that it is ours.
 */
export async function makeDir(path: string, mode: number): Promise<void> {
  await mkdir(path, { mode })
  await withHandle(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, undefined, async (h) => {
    const st = await h.stat()
    if (!st.isDirectory() || (uid() !== undefined && st.uid !== uid()))
      throw new Error(`${path} changed while it was being created`)
    await h.chmod(mode)
  })
}

/**
 * Checks that `path` is a real directory (not a link) owned by this process's user, or does
 * not exist (false). Anything else is refused with a message saying what to do.
 */
export async function ownDirectory(path: string, what: string): Promise<boolean> {
  let st
  try {
    st = await lstat(path)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw e
  }
  const refuse = (why: string) =>
    new AgentFailure('usage', `${path} ${why}: refusing to keep ${what} there (remove it)`)
  if (st.isSymbolicLink()) throw refuse('is a symbolic link')
  if (!st.isDirectory()) throw refuse('is not a directory')
  const me = uid()
  if (me !== undefined && st.uid !== me)
    throw refuse(`belongs to uid ${st.uid}, not to this agent (uid ${me})`)
  return true
}

/** Ensures `path` is our own directory with exactly `mode` (made if absent). */
export async function ensureOwnDirectory(path: string, mode: number, what: string): Promise<void> {
  if (!(await ownDirectory(path, what))) {
    try {
      return await makeDir(path, mode)
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e
      await ownDirectory(path, what) // someone made it meanwhile: the same checks
    }
  }
  await withHandle(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, undefined, (h) => h.chmod(mode))
}

/** Points `dir/link` at `target` atomically: a new symlink under a random name, renamed over it. */
export async function replaceSymlink(dir: string, link: string, target: string): Promise<void> {
  const tmp = `${dir}/${tempName(link)}`
  await symlink(target, tmp)
  await rename(tmp, `${dir}/${link}`)
}
