import { generateKeyPair as generateKeyPairCb, sign, type KeyObject } from 'node:crypto'

/**
 * The load generator's own CSRs: P-256 PKCS#10 (RFC 2986) assembled from DER pieces and signed
 * with node:crypto, about 10x cheaper than the pkijs builder, so that the bench process does
 * not compete with the server for the cores. The same bytes as src/x509/csr-builder.ts for the
 * same key and names (an empty subject, the SAN critical); the smoke test checks it.
 */

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  if (n < 0x100) return Buffer.from([0x81, n])
  return Buffer.from([0x82, n >> 8, n & 0xff])
}

function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), len(body.length), body])
}

const OID_SAN = Buffer.from('0603551d11', 'hex') // 2.5.29.17
const OID_EXTENSION_REQUEST = Buffer.from('06092a864886f70d01090e', 'hex') // 1.2.840.113549.1.9.14
const ECDSA_SHA256 = tlv(0x30, Buffer.from('06082a8648ce3d040302', 'hex')) // 1.2.840.10045.4.3.2
const EMPTY_NAME = Buffer.from('3000', 'hex')
const TRUE = Buffer.from('0101ff', 'hex')

/** CertificationRequestInfo for a key (SPKI DER) and its URI and DNS SANs. */
export function csrInfo(
  spki: Buffer,
  uris: readonly string[],
  dnsNames: readonly string[],
): Buffer {
  const names = [
    ...uris.map((u) => tlv(0x86, Buffer.from(u, 'ascii'))),
    ...dnsNames.map((d) => tlv(0x82, Buffer.from(d, 'ascii'))),
  ]
  const attributes =
    names.length === 0
      ? tlv(0xa0)
      : tlv(
          0xa0,
          tlv(
            0x30,
            OID_EXTENSION_REQUEST,
            tlv(0x31, tlv(0x30, tlv(0x30, OID_SAN, TRUE, tlv(0x04, tlv(0x30, ...names))))),
          ),
        )
  return tlv(0x30, Buffer.from('020100', 'hex'), EMPTY_NAME, spki, attributes)
}

export interface WorkloadKey {
  readonly privateKey: KeyObject
  /** PKCS#8 PEM, for an undici `connect.key`. */
  readonly keyPem: string
  readonly csrPem: string
}

function p256(): Promise<{ privateKey: KeyObject; publicKey: KeyObject }> {
  return new Promise((resolve, reject) =>
    generateKeyPairCb('ec', { namedCurve: 'P-256' }, (err, publicKey, privateKey) =>
      err ? reject(err) : resolve({ privateKey, publicKey }),
    ),
  )
}

/** A new P-256 key and a CSR for it naming `uris` and `dnsNames`. */
export async function workloadKey(
  uris: readonly string[],
  dnsNames: readonly string[] = [],
): Promise<WorkloadKey> {
  const { privateKey, publicKey } = await p256()
  const info = csrInfo(publicKey.export({ type: 'spki', format: 'der' }), uris, dnsNames)
  const signature = sign('sha256', info, privateKey)
  const der = tlv(0x30, info, ECDSA_SHA256, tlv(0x03, Buffer.from([0]), signature))
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n')
  return {
    privateKey,
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    csrPem: `-----BEGIN CERTIFICATE REQUEST-----\n${b64.trimEnd()}\n-----END CERTIFICATE REQUEST-----\n`,
  }
}

/** `count` keys and CSRs, made `parallel` at a time (key generation runs on the thread pool). */
export async function workloadKeys(
  count: number,
  names: (i: number) => { uris?: string[]; dnsNames?: string[] },
  parallel = 64,
): Promise<WorkloadKey[]> {
  const out: WorkloadKey[] = new Array(count)
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(parallel, count) }, async () => {
      while (next < count) {
        const i = next++
        const n = names(i)
        out[i] = await workloadKey(n.uris ?? [], n.dnsNames ?? [])
      }
    }),
  )
  return out
}
