// A strict DER reader (X.690 §8, §10-11) for the fast CSR path. Two kinds of failure:
// - NotDerError: the bytes are not minimal DER (indefinite or non-minimal lengths, lengths past
//   the end, trailing bytes, constructed strings, non-minimal INTEGER/OID, BOOLEAN other than
//   00/FF, bad BIT STRING padding). The fast path refuses these outright.
// - UnhandledError: valid DER in a shape the fast path does not model (an explicit DEFAULT,
//   an unsorted SET OF, an unexpected element, a high tag number): the pkijs path decides.

export class NotDerError extends Error {}
export class UnhandledError extends Error {}

/** One TLV: `tag` is the identifier octet; content is bytes[`start`, `end`). */
export interface Tlv {
  readonly tag: number
  readonly offset: number
  readonly start: number
  readonly end: number
}

// Universal types whose DER encoding is always primitive (X.690 §10.2).
const PRIMITIVE_ONLY = new Set([1, 2, 3, 4, 5, 6, 9, 10, 12, 13, 14, 18, 19, 20, 21, 22, 23, 24])
const MAX_DEPTH = 32

/** The TLV at `pos`, which must end at or before `limit`. */
export function readTlv(buf: Uint8Array, pos: number, limit: number): Tlv {
  if (pos + 2 > limit) throw new NotDerError('truncated TLV')
  const tag = buf[pos]!
  if (tag === 0) throw new NotDerError('end-of-contents octets')
  if ((tag & 0x1f) === 0x1f) throw new UnhandledError('high tag number')
  if ((tag & 0xe0) === 0x20 && PRIMITIVE_ONLY.has(tag & 0x1f)) {
    throw new NotDerError(`constructed encoding of universal type ${tag & 0x1f}`)
  }
  let len = buf[pos + 1]!
  let start = pos + 2
  if (len & 0x80) {
    const n = len & 0x7f
    if (n === 0) throw new NotDerError('indefinite length')
    if (n > 4) throw new NotDerError('length too long')
    if (start + n > limit) throw new NotDerError('truncated length')
    if (buf[start] === 0) throw new NotDerError('non-minimal length (leading zero)')
    len = 0
    for (let i = 0; i < n; i++) len = len * 256 + buf[start + i]!
    if (len < 0x80) throw new NotDerError('non-minimal length (long form below 128)')
    start += n
  }
  if (start + len > limit) throw new NotDerError('length runs past the end')
  return { tag, offset: pos, start, end: start + len }
}

/** The TLVs filling `parent`'s content exactly. */
export function childrenOf(buf: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = []
  for (let pos = parent.start; pos < parent.end;) {
    const t = readTlv(buf, pos, parent.end)
    out.push(t)
    pos = t.end
  }
  return out
}

/** Reads exactly one TLV spanning all of `buf` and checks the whole tree is DER. */
export function readDer(buf: Uint8Array): Tlv {
  const top = readTlv(buf, 0, buf.length)
  if (top.end !== buf.length) throw new NotDerError('trailing bytes after the DER value')
  checkTree(buf, top, 0)
  return top
}

function compare(buf: Uint8Array, a: Tlv, b: Tlv): number {
  return Buffer.compare(buf.subarray(a.offset, a.end), buf.subarray(b.offset, b.end))
}

/** Every constructed element parses; every universal primitive has a DER-valid content. */
function checkTree(buf: Uint8Array, t: Tlv, depth: number): void {
  if (depth > MAX_DEPTH) throw new UnhandledError('nesting too deep')
  if (t.tag & 0x20) {
    // Walked in place (no child array): this runs over every TBS the CA lints.
    let prev: Tlv | undefined
    for (let pos = t.start; pos < t.end;) {
      const k = readTlv(buf, pos, t.end)
      checkTree(buf, k, depth + 1)
      // X.690 §11.6: SET OF components in ascending order of their encodings.
      if (t.tag === 0x31 && prev !== undefined && compare(buf, prev, k) > 0) {
        throw new UnhandledError('unsorted SET OF')
      }
      prev = k
      pos = k.end
    }
    return
  }
  const n = t.end - t.start
  const b0 = buf[t.start]
  switch (t.tag) {
    case 0x01: // BOOLEAN: FF or 00 (§11.1)
      if (n !== 1 || (b0 !== 0 && b0 !== 0xff)) throw new NotDerError('BOOLEAN not 00/FF')
      return
    case 0x02: // INTEGER: minimal two's complement (§8.3.2)
    case 0x0a: {
      if (n === 0) throw new NotDerError('empty INTEGER')
      const b1 = buf[t.start + 1]!
      if (n > 1 && ((b0 === 0 && b1 < 0x80) || (b0 === 0xff && b1 >= 0x80))) {
        throw new NotDerError('non-minimal INTEGER')
      }
      return
    }
    case 0x03: {
      // BIT STRING: unused-bit count 0..7, zero padding bits (§11.2.1)
      if (n === 0 || b0! > 7 || (n === 1 && b0 !== 0)) throw new NotDerError('bad BIT STRING')
      if (b0! > 0 && buf[t.end - 1]! & ((1 << b0!) - 1)) {
        throw new NotDerError('BIT STRING padding bits not zero')
      }
      return
    }
    case 0x05:
      if (n !== 0) throw new NotDerError('NULL with content')
      return
    case 0x06:
      if (n === 0 || buf[t.end - 1]! & 0x80) throw new NotDerError('truncated OID')
      for (let i = t.start; i < t.end; i++) {
        if (buf[i] === 0x80 && (i === t.start || !(buf[i - 1]! & 0x80))) {
          throw new NotDerError('non-minimal OID arc')
        }
      }
      return
  }
}

// OIDs repeat in every structure read: their text is remembered by their content bytes.
const oidCache = new Map<string, string>()
const MAX_CACHED_OID_BYTES = 32

/** Dotted text of an OID TLV (already checked by `readDer`). */
export function oidText(buf: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06) throw new UnhandledError('expected an OBJECT IDENTIFIER')
  // Only short ones (every OID certbound knows is): a hostile peer's long OIDs would otherwise
  // make the 1,024 entries hold megabytes.
  if (t.end - t.start > MAX_CACHED_OID_BYTES) return decodeOid(buf, t)
  let key = ''
  for (let i = t.start; i < t.end; i++) key += String.fromCharCode(buf[i]!)
  let text = oidCache.get(key)
  if (text === undefined) {
    text = decodeOid(buf, t)
    // Bounded: a hostile peer must not grow it without limit.
    if (oidCache.size < 1024) oidCache.set(key, text)
  }
  return text
}

function decodeOid(buf: Uint8Array, t: Tlv): string {
  const arcs: bigint[] = []
  let v = 0n
  for (let i = t.start; i < t.end; i++) {
    v = (v << 7n) | BigInt(buf[i]! & 0x7f)
    if (!(buf[i]! & 0x80)) {
      arcs.push(v)
      v = 0n
    }
  }
  const first = arcs[0]!
  const head = first < 80n ? [first / 40n, first % 40n] : [2n, first - 80n]
  return [...head, ...arcs.slice(1)].join('.')
}

/** `t` must carry `tag` (else the shape is not one the fast path models). */
export function expectTag(t: Tlv | undefined, tag: number, what: string): Tlv {
  if (t === undefined || t.tag !== tag) throw new UnhandledError(`expected ${what}`)
  return t
}

/** The content bytes of a TLV (a view, not a copy). */
export const contentOf = (buf: Uint8Array, t: Tlv): Uint8Array => buf.subarray(t.start, t.end)
