import { randomFillSync } from 'node:crypto'

/*
 * Identifiers that sort by creation time. A key that is random (UUIDv4) sends every insert to
 * a random leaf of its index: with a group commit of 16 grants, 16 different pages per index
 * are written to the log, and on a big table most of them are not even in the cache. A key
 * that starts with the time appends to the rightmost leaf, so the whole batch shares one page.
 * Uniqueness and unpredictability come from the random part, as before.
 */

const POOL_SIZE = 4096
const pool = Buffer.alloc(POOL_SIZE)
let offset = POOL_SIZE

/** `n` bytes from the CSPRNG, drawn from a pool filled 4 KiB at a time (as randomUUID does). */
function randomBytesPooled(n: number): Buffer {
  if (offset + n > POOL_SIZE) {
    randomFillSync(pool)
    offset = 0
  }
  const out = pool.subarray(offset, offset + n)
  offset += n
  return out
}

/** Milliseconds as the 48-bit field both formats hold (a test clock may be anywhere). */
const clampMs = (ms: number): number => Math.min(Math.max(0, Math.floor(ms) || 0), 2 ** 48 - 1)

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

/**
 * A UUID version 7 (RFC 9562 §5.7): the Unix time in milliseconds (48 bits), the version and
 * variant bits, and 74 bits from the CSPRNG. Used for jti and token family ids.
 */
export function uuidV7(now: number = Date.now()): string {
  const r = randomBytesPooled(10)
  const t = clampMs(now).toString(16).padStart(12, '0')
  const h = (i: number) => HEX[r[i]!]!
  const version = HEX[0x70 | (r[0]! & 0x0f)]!
  const variant = HEX[0x80 | (r[2]! & 0x3f)]!
  return (
    `${t.slice(0, 8)}-${t.slice(8, 12)}-${version}${h(1)}-${variant}${h(3)}-` +
    `${h(4)}${h(5)}${h(6)}${h(7)}${h(8)}${h(9)}`
  )
}

// base64url's 64 characters in ASCII order, so that byte-wise comparison (SQLite BINARY,
// PostgreSQL "C") follows the number encoded.
const SORTABLE = '-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz'

/**
 * A 16-character lookup id for a secret token: the time in milliseconds as 8 characters that
 * sort in byte order, then 48 random bits as 8 more; every character is base64url.
 */
export function orderedTokenId(now: number = Date.now()): string {
  let out = ''
  let t = clampMs(now)
  for (let i = 0; i < 8; i++) {
    out = SORTABLE[t % 64]! + out
    t = Math.floor(t / 64)
  }
  const r = randomBytesPooled(6)
  for (let i = 0; i < 6; i += 3) {
    const n = (r[i]! << 16) | (r[i + 1]! << 8) | r[i + 2]!
    out +=
      SORTABLE[n >> 18]! + SORTABLE[(n >> 12) & 63]! + SORTABLE[(n >> 6) & 63]! + SORTABLE[n & 63]!
  }
  return out
}
