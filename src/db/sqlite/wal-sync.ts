import { open, stat, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'

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
  #file: FileHandle | undefined
  #ino = 0

  constructor(databaseFile: string) {
    this.#path = `${databaseFile}-wal`
  }

  /** Resolves once every byte written to the WAL so far is durable. */
  async sync(): Promise<void> {
    const file = this.#file ?? (await this.#open())
    // The inode is checked too: a WAL deleted and created again (every connection closed in
    // between, as a restore does) must not leave us flushing the old file.
    const [, now] = await Promise.all([file.datasync(), stat(this.#path)])
    if (now.ino !== this.#ino) {
      await this.close()
      await (await this.#open()).datasync()
    }
  }

  async #open(): Promise<FileHandle> {
    const file = await open(this.#path, 'r')
    this.#ino = (await file.stat()).ino
    // A WAL file SQLite just created is durable only with its directory entry: FULL syncs the
    // directory at the first sync of a new WAL (the unix VFS's DIRSYNC), and so do we. (Not
    // possible on Windows, where a directory cannot be opened: NTFS journals the entry.)
    const dir = await open(dirname(this.#path), 'r').catch(() => undefined)
    if (dir) await dir.sync().finally(() => dir.close())
    this.#file = file
    return file
  }

  async close(): Promise<void> {
    const file = this.#file
    this.#file = undefined
    await file?.close()
  }
}
