import { closeSync, fsyncSync, openSync } from 'node:fs'

/** fsync of a file or a directory (a rename is durable once its directory is synced). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
