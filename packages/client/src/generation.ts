import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFile, realpath } from 'node:fs/promises'
import { join } from 'node:path'
import { ClientError } from './errors.js'
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

function missing(what: string, cause: unknown): ClientError {
  const code = (cause as NodeJS.ErrnoException).code ?? String(cause)
  return new ClientError('ERR_GENERATION_MISSING', `cannot read ${what} (${code})`, { cause })
}

/** Where `dir/..data` points now. */
export async function currentGenerationPath(dir: string): Promise<string> {
  try {
    return await realpath(dataLink(dir))
  } catch (err) {
    throw missing(`${dataLink(dir)}, the link certbound agent writes`, err)
  }
}

async function read(path: string, name: string): Promise<string> {
  try {
    return await readFile(join(path, name), 'utf8')
  } catch (err) {
    throw missing(`${path}/${name}`, err)
  }
}

async function readChain(path: string): Promise<string> {
  try {
    return await readFile(join(path, 'chain.pem'), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw missing(`${path}/chain.pem`, err)
    return read(path, 'cert.pem')
  }
}

function invalid(message: string, cause?: unknown): ClientError {
  return new ClientError('ERR_GENERATION_INVALID', message, { cause })
}

function parseToken(json: string, path: string) {
  let token: unknown
  try {
    token = JSON.parse(json)
  } catch (err) {
    throw invalid(`${path}/token.json is not JSON`, err)
  }
  if (typeof token !== 'object' || token === null) {
    throw invalid(`${path}/token.json is not a JSON object`)
  }
  const fields = token as Record<string, unknown>
  const { access_token: accessToken, token_type: type, expires_at: expires } = fields
  if (typeof accessToken !== 'string' || accessToken === '') {
    throw invalid(`${path}/token.json has no access_token`)
  }
  if (typeof type !== 'string' || type.toLowerCase() !== 'bearer') {
    throw invalid(`${path}/token.json: token_type is not Bearer`)
  }
  const expiresAt = new Date(typeof expires === 'string' ? expires : NaN)
  if (Number.isNaN(expiresAt.getTime())) throw invalid(`${path}/token.json: bad expires_at`)
  return { accessToken, expiresAt, thumbprint: fields['x5t#S256'] }
}

function parseKeyPair(path: string, chainPem: string, keyPem: string): X509Certificate {
  let certificate: X509Certificate
  let key: ReturnType<typeof createPrivateKey>
  try {
    certificate = new X509Certificate(chainPem)
  } catch (err) {
    throw invalid(`${path}: the certificate does not parse`, err)
  }
  try {
    key = createPrivateKey(keyPem)
  } catch (err) {
    throw invalid(`${path}/key.pem does not parse`, err)
  }
  if (!certificate.checkPrivateKey(key)) {
    throw new ClientError(
      'ERR_GENERATION_MISMATCH',
      `${path}: key.pem does not match the certificate`,
    )
  }
  return certificate
}

/**
 * Reads cert chain, key, bundle and token all from the resolved generation directory `path`
 * (never through the stable top-level links, which may already point at the next generation),
 * and checks that they belong together: the key is the leaf's, the token is bound to the leaf.
 */
export async function readGeneration(path: string, caBundle?: string): Promise<Generation> {
  const [chainPem, keyPem, caPem, tokenJson] = await Promise.all([
    readChain(path),
    read(path, 'key.pem'),
    caBundle ?? read(path, 'bundle.pem'),
    read(path, 'token.json'),
  ])
  const certificate = parseKeyPair(path, chainPem, keyPem)
  const { accessToken, expiresAt, thumbprint: claimed } = parseToken(tokenJson, path)
  const thumbprint = x5tS256(certificate.raw)
  if (claimed !== undefined && claimed !== thumbprint) {
    throw new ClientError(
      'ERR_GENERATION_MISMATCH',
      `${path}: token.json is bound to another certificate`,
    )
  }
  return { path, chainPem, keyPem, caPem, accessToken, expiresAt, thumbprint, certificate }
}
