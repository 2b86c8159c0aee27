import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile, realpath } from 'node:fs/promises'
import { join } from 'node:path'
import { x5tS256 } from './thumbprint.js'

/** One consistent set of credentials, read from one generation directory. */
export interface Generation {
  /** Resolved path of `dir/..data` when this generation was read. */
  readonly path: string
  /** PEM presented in the TLS handshake: leaf, then intermediate(s). */
  readonly chainPem: string
  readonly keyPem: string
  /** PEM of the trust anchors that verify the server. */
  readonly caPem: string
  readonly accessToken: string
  readonly expiresAt: Date
  /** Thumbprint of the leaf, which the access token is bound to. */
  readonly thumbprint: string
  readonly certificate: X509Certificate
}

/** `dir/..data`, the symlink an agent switches atomically on each rotation. */
export function dataLink(dir: string): string {
  return join(dir, '..data')
}

/** Where `dir/..data` points now. */
export function currentGenerationPath(dir: string): Promise<string> {
  return realpath(dataLink(dir))
}

async function readChain(path: string): Promise<string> {
  try {
    return await readFile(join(path, 'chain.pem'), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    return readFile(join(path, 'cert.pem'), 'utf8')
  }
}

function parseToken(json: string, path: string) {
  const token = JSON.parse(json) as Record<string, unknown>
  const { access_token: accessToken, token_type: type, expires_at: expires } = token
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw new Error(`${path}/token.json has no access_token`)
  }
  if (typeof type !== 'string' || type.toLowerCase() !== 'bearer') {
    throw new Error(`${path}/token.json: token_type is not Bearer`)
  }
  const expiresAt = new Date(typeof expires === 'string' ? expires : NaN)
  if (Number.isNaN(expiresAt.getTime())) throw new Error(`${path}/token.json: bad expires_at`)
  return { accessToken, expiresAt, thumbprint: token['x5t#S256'] }
}

/**
 * Reads cert chain, key, bundle and token all from the resolved generation directory `path`
 * (never through the stable top-level links, which may already point at the next generation),
 * and checks that they belong together: the key is the leaf's, the token is bound to the leaf.
 */
export async function readGeneration(path: string, caBundle?: string): Promise<Generation> {
  const [chainPem, keyPem, caPem, tokenJson] = await Promise.all([
    readChain(path),
    readFile(join(path, 'key.pem'), 'utf8'),
    caBundle ?? readFile(join(path, 'bundle.pem'), 'utf8'),
    readFile(join(path, 'token.json'), 'utf8'),
  ])
  const certificate = new X509Certificate(chainPem)
  if (!certificate.checkPrivateKey(createPrivateKey(keyPem))) {
    throw new Error(`${path}: key.pem does not match the certificate`)
  }
  const { accessToken, expiresAt, thumbprint: claimed } = parseToken(tokenJson, path)
  const thumbprint = x5tS256(certificate.raw)
  if (claimed !== undefined && claimed !== thumbprint) {
    throw new Error(`${path}: token.json is bound to another certificate`)
  }
  return { path, chainPem, keyPem, caPem, accessToken, expiresAt, thumbprint, certificate }
}
