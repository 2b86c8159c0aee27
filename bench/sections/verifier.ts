import { X509Certificate } from 'node:crypto'
import { createLocalJWKSet, jwtVerify } from 'jose'
import type { CertboundServer, Credential } from '../lib/certbound.js'
import { sendOk } from '../lib/http.js'
import { serialRate } from '../lib/measure.js'
import { ratio, type Report } from '../lib/report.js'
import { createVerifier } from '../lib/verifier.js'

/**
 * Section 5: @certbound/verifier (signature, claims, client-certificate chain and binding) in
 * this process, against jose.jwtVerify alone (signature and claims only) on the same tokens.
 */
export async function verifierSection(
  report: Report,
  server: CertboundServer,
  issued: readonly { token: string; cred: Credential }[],
  ms: number,
): Promise<{ verifier: number; jose: number }> {
  const S = '5. resource-server verification (this process, one at a time)'
  const meta = await sendOk(server.admin, `${server.url}/.well-known/oauth-authorization-server`)
  const issuer: string = meta.issuer
  const tokens = issued.slice(0, 2000)
  if (tokens.length === 0) throw new Error('no access tokens to verify')
  const claims = JSON.parse(Buffer.from(tokens[0]!.token.split('.')[1]!, 'base64url').toString())
  const audience: string | string[] = claims.aud
  const alg: string = JSON.parse(
    Buffer.from(tokens[0]!.token.split('.')[0]!, 'base64url').toString(),
  ).alg
  const certs = new Map<Credential, { leaf: X509Certificate; chain: X509Certificate[] }>()
  for (const { cred } of tokens) {
    if (certs.has(cred)) continue
    const [leaf, ...rest] = cred.chain
      .split(/(?<=-----END CERTIFICATE-----)\s*/)
      .filter((p) => p.includes('BEGIN'))
      .map((p) => new X509Certificate(p))
    certs.set(cred, { leaf: leaf!, chain: rest })
  }
  const verifier = createVerifier({ issuer, audience, trustAnchors: server.bundle })
  const jwks = createLocalJWKSet(await sendOk(server.admin, `${server.url}/.well-known/jwks.json`))
  try {
    const joseRate = await serialRate(async (i) => {
      const t = tokens[i % tokens.length]!
      await jwtVerify(t.token, jwks, { issuer, audience, typ: 'at+jwt', algorithms: [alg] })
    }, ms)
    const verifierRate = await serialRate(async (i) => {
      const t = tokens[i % tokens.length]!
      const c = certs.get(t.cred)!
      await verifier.verify(t.token, c.leaf, c.chain)
    }, ms)
    report.add({
      section: S,
      name: 'jose.jwtVerify (signature + claims)',
      value: joseRate,
      unit: '/s',
    })
    report.add({
      section: S,
      name: '@certbound/verifier verify (+ chain + cnf binding)',
      value: verifierRate,
      unit: '/s',
      ratio: { value: ratio(verifierRate, joseRate), to: 'jose.jwtVerify' },
    })
    return { verifier: verifierRate, jose: joseRate }
  } finally {
    await verifier.close()
  }
}
