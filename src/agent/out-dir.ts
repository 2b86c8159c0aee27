import { randomBytes } from 'node:crypto'
import { lstat, mkdir, readFile, readdir, readlink, rm } from 'node:fs/promises'
import { join } from 'node:path'

import { PRIVATE, type FileAccess } from './file-access.js'
import { createFile, makeDir, replaceSymlink, syncDir, TEMP_NAME } from './safe-fs.js'

// The output directory, Kubernetes AtomicWriter style (pkg/volume/util/atomic_writer.go):
//
//   DIR/..20250102T150405123Z-1a2b3c4d/   one generation: cert.pem key.pem chain.pem
//                                         bundle.pem token.json crl.pem crl.der crls.pem
//   DIR/..data -> ..20250102T150405123Z-1a2b3c4d   switched atomically with rename(2)
//   DIR/cert.pem -> ..data/cert.pem        stable paths for readers (likewise the other files)
//   DIR/..state/                           the agent's private state (0700), see state.ts
//
// A generation is complete and fsynced before `..data` points at it, so a reader that resolves
// `..data` once sees one consistent set; one that opens two stable paths may straddle a switch
// and should re-check that `..data` did not move in between (the certbound client does).
// DIR may be shared with other users (safe-fs.ts): everything is created exclusively, never
// through a link, and temporary links have random names.

/**
 * The files of one generation and their modes (`key.pem`'s is `--mode`'s). `token.json` and
 * the CRLs may be absent: `crl.pem` / `crl.der` are the issuing CA's CRL, `crls.pem` every
 * CRL of the chain (what nginx `ssl_crl` and HAProxy `crl-file` check the whole chain with).
 */
export const GENERATION_FILES = {
  'cert.pem': 0o644,
  'chain.pem': 0o644,
  'bundle.pem': 0o644,
  'key.pem': 0o600,
  'token.json': 0o600,
  'crl.pem': 0o644,
  'crl.der': 0o644,
  'crls.pem': 0o644,
} as const

export type GenerationFileName = keyof typeof GENERATION_FILES
type BinaryFile = 'crl.der'
export type GenerationFiles = Partial<Record<Exclude<GenerationFileName, BinaryFile>, string>> &
  Partial<Record<BinaryFile, Uint8Array>>
const TEXT_FILES = (Object.keys(GENERATION_FILES) as GenerationFileName[]).filter(
  (f): f is Exclude<GenerationFileName, BinaryFile> => !f.endsWith('.der'),
)

export const DATA_LINK = '..data'
const GENERATION = /^\.\.\d{8}T\d{9}Z-[0-9a-f]{8}$/
// What `..data` may point at when read: any sibling (only our own names are ever pruned).
const SIBLING = /^\.\.[^/]+$/
// Temporary links a crash left behind (replaceSymlink's names for `..data` and the files).
const STALE_LINK = new RegExp(
  `^(\\.\\.data|${Object.keys(GENERATION_FILES).join('|').replaceAll('.', '\\.')})${TEMP_NAME.source}`,
)

function generationName(now: Date): string {
  const stamp = now.toISOString().replace(/[-:.]/g, '')
  return `..${stamp}-${randomBytes(4).toString('hex')}`
}

/** The name of the generation `..data` points at, or undefined when there is none. */
export async function currentGeneration(dir: string): Promise<string | undefined> {
  try {
    const target = await readlink(join(dir, DATA_LINK))
    return SIBLING.test(target) ? target : undefined
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw e
  }
}

/** Reads the current generation's text files (those present), or undefined when there is none. */
export async function readCurrentGeneration(
  dir: string,
): Promise<{ name: string; files: GenerationFiles } | undefined> {
  const name = await currentGeneration(dir)
  if (name === undefined) return undefined
  const files: GenerationFiles = {}
  for (const file of TEXT_FILES) {
    try {
      files[file] = await readFile(join(dir, name, file), 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
    }
  }
  return { name, files }
}

/** A generation written and fsynced but not yet visible to readers. */
export interface StagedGeneration {
  readonly name: string
  /** Switches `..data` to this generation, ensures the stable links, removes old generations. */
  commit(): Promise<void>
}

/** Creates the output directory if needed (0755: secrets are protected by their own 0600). */
export async function ensureOutDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o755 })
}

/**
 * Writes a new generation directory with `files`, fsyncing each file and the directory; the
 * files get `access.group`, and `key.pem` gets `access.keyMode`.
 */
export async function stageGeneration(
  dir: string,
  files: GenerationFiles,
  { now = new Date(), access = PRIVATE }: { now?: Date; access?: FileAccess } = {},
): Promise<StagedGeneration> {
  await ensureOutDir(dir)
  const name = generationName(now)
  const path = join(dir, name)
  await makeDir(path, 0o755)
  try {
    for (const [file, fixed] of Object.entries(GENERATION_FILES)) {
      const data = files[file as GenerationFileName]
      const mode = file === 'key.pem' ? access.keyMode : fixed
      if (data !== undefined) await createFile(join(path, file), data, mode, access.group)
    }
    await syncDir(path)
  } catch (e) {
    await rm(path, { recursive: true, force: true })
    throw e
  }
  return { name, commit: () => commitGeneration(dir, name) }
}

async function commitGeneration(dir: string, name: string): Promise<void> {
  const previous = await currentGeneration(dir)
  await replaceSymlink(dir, DATA_LINK, name)
  for (const file of Object.keys(GENERATION_FILES)) await ensureStableLink(dir, file)
  await syncDir(dir)
  await pruneGenerations(dir, [name, previous])
}

async function ensureStableLink(dir: string, file: string): Promise<void> {
  const target = join(DATA_LINK, file)
  try {
    const st = await lstat(join(dir, file))
    if (st.isSymbolicLink() && (await readlink(join(dir, file))) === target) return
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
  await replaceSymlink(dir, file, target)
}

/**
 * Removes generation directories other than `keep` (the current one and the one before it: a
 * reader that resolved `..data` just before the switch may still be opening its files).
 */
export async function pruneGenerations(
  dir: string,
  keep: readonly (string | undefined)[],
): Promise<void> {
  for (const entry of await readdir(dir)) {
    if (STALE_LINK.test(entry)) {
      if ((await lstat(join(dir, entry))).isSymbolicLink()) await rm(join(dir, entry))
      continue
    }
    if (!GENERATION.test(entry) || keep.includes(entry)) continue
    // rm does not follow links: a planted link under a generation's name loses only itself.
    await rm(join(dir, entry), { recursive: true, force: true })
  }
}
