import { close, fdatasync, fstat, fsync, open, stat } from 'node:fs'
import { dirname } from 'node:path'
import { promisify } from 'node:util'

const openAsync = promisify(open)
const closeAsync = promisify(close)
const fstatAsync = promisify(fstat)
const fsyncAsync = promisify(fsync)
const statAsync = promisify(stat)
const fdatasyncAsync = promisify(fdatasync)

// How often the WAL's identity is checked (a stat): not on every flush, it costs a round trip.
const INODE_CHECK_MS = 1_000

/**
 * Makes everything written to a database's write-ahead log durable, on the libuv thread pool.
 *
 * With `synchronous=FULL` SQLite calls fdatasync on the WAL inside COMMIT, on the calling
 * thread: the event loop stands still for the whole disk flush (0.3 ms on a quiet SSD, several
 * ms on a busy one), once per group commit. The driver instead commits with
 * `synchronous=NORMAL` (WAL frames written; checkpoints are still synced by SQLite) and then
 * calls {@link sync} before it answers any transaction of the batch. fdatasync flushes the
 * file, not a descriptor: every frame written to the WAL before the call — by this connection
 * or by another process — is on disk when it resolves, which is what FULL gives each commit.
 */
export class WalSync {
  readonly #path: string
  #fd: number | undefined
  #ino = 0
  #checkedAt = 0

  constructor(databaseFile: string) {
    this.#path = `${databaseFile}-wal`
  }

  /** Resolves once every byte written to the WAL so far is durable. */
  async sync(): Promise<void> {
    const fd = this.#fd ?? (await this.#open())
    await fdatasyncAsync(fd)
    // A WAL deleted and created again (every connection closed in between, as a restore does)
    // must not leave us flushing the old file: then flush the new one too.
    if (Date.now() - this.#checkedAt < INODE_CHECK_MS) return
    this.#checkedAt = Date.now()
    if ((await statAsync(this.#path)).ino !== this.#ino) {
      await this.close()
      await fdatasyncAsync(await this.#open())
    }
  }

  async #open(): Promise<number> {
    const fd = await openAsync(this.#path, 'r')
    this.#ino = (await fstatAsync(fd)).ino
    this.#checkedAt = Date.now()
    // A WAL file SQLite just created is durable only with its directory entry: FULL syncs the
    // directory at the first sync of a new WAL (the unix VFS's DIRSYNC), and so do we. (Not
    // possible on Windows, where a directory cannot be opened: NTFS journals the entry.)
    const dir = await openAsync(dirname(this.#path), 'r').catch(() => undefined)
    if (dir !== undefined) await fsyncAsync(dir).finally(() => closeAsync(dir))
    this.#fd = fd
    return fd
  }

  async close(): Promise<void> {
    const fd = this.#fd
    this.#fd = undefined
    if (fd !== undefined) await closeAsync(fd)
  }
}
