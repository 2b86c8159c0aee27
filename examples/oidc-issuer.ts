/**
 * A loopback stand-in for a CI platform's OIDC issuer, to try enrolment by OIDC identity token
 * on one machine (docs/ci-without-secrets.md). It serves over HTTPS on 127.0.0.1:
 *
 * - discovery (`/.well-known/openid-configuration`) and its JWKS (one RS256 key with a kid);
 * - GitHub Actions' ID-token request URL: `GET /_apis/distributedtask/…/idtoken?audience=AUD`
 *   with `Authorization: Bearer <DIR/request-token>` answers `{"value": "<JWT>"}`, a token with
 *   GitHub's claim set for `--repository` and `--ref`;
 * - with `--k8s-audience AUD`, a Kubernetes projected service-account token in `DIR/k8s-token`
 *   (namespace `ci`, service account `runner`, 10 minutes), replaced at 80% of its lifetime as
 *   the kubelet does.
 *
 * It writes its TLS root to `DIR/ca.pem` (give it to certbound as `ca_bundle`, and to the
 * agent as NODE_EXTRA_CA_CERTS). Never use it for anything real: it signs whatever it is asked.
 *
 *   npx tsx examples/oidc-issuer.ts --listen 127.0.0.1:9445 --dir walk/ci/issuer \
 *     [--repository acme/api] [--ref refs/heads/main] [--k8s-audience https://localhost:8445]
 */
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:https'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { SignJWT, exportJWK, generateKeyPair, type JWTPayload } from 'jose'

const { values: flags } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:9445' },
    dir: { type: 'string', default: 'walk/ci/issuer' },
    repository: { type: 'string', default: 'acme/api' },
    ref: { type: 'string', default: 'refs/heads/main' },
    'k8s-audience': { type: 'string' },
  },
})
const [host, port] = flags.listen!.split(':') as [string, string]
const dir = flags.dir!
const issuer = `https://${host}:${port}`
mkdirSync(dir, { recursive: true })

/** A throwaway root and a server certificate for the listen address (openssl). */
function tls(): { key: string; cert: string } {
  const f = (name: string) => join(dir, name)
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes']
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' })
  ssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.tmp'),
    '-days',
    '7',
    '-subj',
    '/CN=certbound example OIDC issuer root',
    '-addext',
    'basicConstraints=critical,CA:true',
  )
  ssl('req', '-new', ...ec, '-keyout', f('tls.key'), '-out', f('tls.csr'), '-subj', `/CN=${host}`)
  writeFileSync(f('tls.ext'), `subjectAltName=IP:${host}\nextendedKeyUsage=serverAuth\n`)
  ssl(
    'x509',
    '-req',
    '-in',
    f('tls.csr'),
    '-CA',
    f('ca.tmp'),
    '-CAkey',
    f('ca.key'),
    '-set_serial',
    `0x${randomBytes(8).toString('hex')}`,
    '-days',
    '7',
    '-extfile',
    f('tls.ext'),
    '-out',
    f('tls.pem'),
  )
  renameSync(f('ca.tmp'), f('ca.pem')) // last: its presence says the files are complete
  return { key: readFileSync(f('tls.key'), 'utf8'), cert: readFileSync(f('tls.pem'), 'utf8') }
}

const { privateKey, publicKey } = await generateKeyPair('RS256')
const jwk = await exportJWK(publicKey)
const kid = createHash('sha256').update(JSON.stringify(jwk)).digest('base64url')
const requestToken = randomBytes(24).toString('base64url')
writeFileSync(join(dir, 'request-token'), `${requestToken}\n`, { mode: 0o600 })

function sign(claims: JWTPayload, lifetime: number): Promise<string> {
  const iat = Math.floor(Date.now() / 1000)
  return new SignJWT({
    iss: issuer,
    iat,
    nbf: iat - 5,
    exp: iat + lifetime,
    jti: randomUUID(),
    ...claims,
  })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .sign(privateKey)
}

/** GitHub Actions' ID-token claims for a push to `--ref` of `--repository`. */
function githubClaims(aud: string): JWTPayload {
  const { repository, ref } = flags as { repository: string; ref: string }
  return {
    aud,
    sub: `repo:${repository}:ref:${ref}`,
    ref,
    sha: randomBytes(20).toString('hex'),
    repository,
    repository_owner: repository.split('/')[0],
    repository_owner_id: '65',
    repository_id: '74',
    repository_visibility: 'private',
    run_id: '1',
    run_number: '1',
    run_attempt: '1',
    actor: 'octocat',
    actor_id: '12',
    workflow: 'deploy',
    event_name: 'push',
    workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
    ref_type: 'branch',
    job_workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
    ref_protected: 'true',
    runner_environment: 'github-hosted',
  }
}

/** The kubelet: a projected token for ci/runner, replaced at 80% of its 10 minutes. */
async function projectToken(aud: string): Promise<void> {
  const lifetime = 600
  const claims = {
    aud: [aud],
    sub: 'system:serviceaccount:ci:runner',
    'kubernetes.io': {
      namespace: 'ci',
      serviceaccount: { name: 'runner', uid: randomUUID() },
      pod: { name: 'runner-0', uid: randomUUID() },
      node: { name: 'node-1', uid: randomUUID() },
    },
  }
  writeFileSync(join(dir, 'k8s-token.tmp'), await sign(claims, lifetime))
  renameSync(join(dir, 'k8s-token.tmp'), join(dir, 'k8s-token'))
  setTimeout(() => void projectToken(aud), lifetime * 800).unref()
}

const server = createServer(tls(), (req, res) => {
  const url = new URL(req.url ?? '/', issuer)
  const json = (status: number, body: unknown) =>
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  if (url.pathname === '/.well-known/openid-configuration') {
    return json(200, {
      issuer,
      jwks_uri: `${issuer}/.well-known/jwks`,
      response_types_supported: ['id_token'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    })
  }
  if (url.pathname === '/.well-known/jwks') {
    return json(200, { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] })
  }
  if (/^\/_apis\/distributedtask\/.*\/idtoken$/.test(url.pathname)) {
    if (req.headers.authorization !== `Bearer ${requestToken}`) return json(401, { message: 'no' })
    const aud = url.searchParams.get('audience')
    if (!aud) return json(400, { message: 'audience is required' })
    return void sign(githubClaims(aud), 300).then((value) => json(200, { count: 1, value }))
  }
  json(404, { message: 'not found' })
})
if (flags['k8s-audience']) await projectToken(flags['k8s-audience'])
server.listen(Number(port), host, () => console.log(`OIDC issuer ${issuer} (files in ${dir})`))
process.on('SIGTERM', () => server.close(() => process.exit(0)))
