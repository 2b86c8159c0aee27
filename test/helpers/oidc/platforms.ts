import { randomUUID } from 'node:crypto'
import type { JWTPayload } from 'jose'

/*
 * Claim sets shaped exactly like the platforms' own tokens (documented examples of GitHub
 * Actions' ID token, a Kubernetes projected service-account token and GitLab CI's id_tokens),
 * so rules written for them are tested against what the platforms really send.
 */

/** A GitHub Actions ID token's claims (`ACTIONS_ID_TOKEN_REQUEST_URL`), for a job of `repository`. */
export function githubClaims(
  opts: { repository?: string; ref?: string; environment?: string; aud?: string } = {},
): JWTPayload {
  const repository = opts.repository ?? 'acme/api'
  const ref = opts.ref ?? 'refs/heads/main'
  const [owner] = repository.split('/')
  const now = Math.floor(Date.now() / 1000)
  return {
    jti: randomUUID(),
    sub: `repo:${repository}:${opts.environment ? `environment:${opts.environment}` : `ref:${ref}`}`,
    ...(opts.aud && { aud: opts.aud }),
    ref,
    sha: 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
    repository,
    repository_owner: owner,
    repository_owner_id: '65',
    repository_id: '74',
    repository_visibility: 'private',
    run_id: '6027358346',
    run_number: '10',
    run_attempt: '1',
    runner_environment: 'github-hosted',
    actor: 'octocat',
    actor_id: '12',
    workflow: 'deploy',
    workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
    workflow_sha: 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
    job_workflow_ref: `${repository}/.github/workflows/deploy.yml@${ref}`,
    job_workflow_sha: 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
    head_ref: '',
    base_ref: '',
    event_name: 'push',
    ref_type: 'branch',
    ref_protected: 'true',
    ...(opts.environment && { environment: opts.environment }),
    // GitHub's tokens: nbf a little before iat, exp five minutes after it.
    nbf: now - 5,
    iat: now,
    exp: now + 300,
  }
}

/** A Kubernetes projected service-account token's claims (`serviceAccountToken` volume). */
export function kubernetesClaims(
  opts: { namespace?: string; serviceAccount?: string; aud?: string; lifetime?: number } = {},
): JWTPayload {
  const namespace = opts.namespace ?? 'ci'
  const sa = opts.serviceAccount ?? 'runner'
  const now = Math.floor(Date.now() / 1000)
  const lifetime = opts.lifetime ?? 600
  return {
    aud: [opts.aud ?? 'https://ca.example.org'],
    exp: now + lifetime,
    iat: now,
    jti: randomUUID(),
    'kubernetes.io': {
      namespace,
      node: { name: 'node-1', uid: randomUUID() },
      pod: { name: `${sa}-7d9f8b6c5d-x2x7q`, uid: randomUUID() },
      serviceaccount: { name: sa, uid: randomUUID() },
      warnafter: now + Math.floor(lifetime * 0.8),
    },
    nbf: now,
    sub: `system:serviceaccount:${namespace}:${sa}`,
  }
}

/** A GitLab CI `id_tokens` token's claims. */
export function gitlabClaims(
  opts: { project?: string; ref?: string; aud?: string; protectedRef?: boolean } = {},
): JWTPayload {
  const project = opts.project ?? 'acme/api'
  const ref = opts.ref ?? 'main'
  const now = Math.floor(Date.now() / 1000)
  return {
    namespace_id: '72',
    namespace_path: project.split('/')[0],
    project_id: '20',
    project_path: project,
    user_id: '1',
    user_login: 'sample-user',
    pipeline_id: '574',
    pipeline_source: 'push',
    job_id: '302',
    ref,
    ref_type: 'branch',
    ref_path: `refs/heads/${ref}`,
    ref_protected: opts.protectedRef === false ? 'false' : 'true',
    runner_id: 1, // a number: never matched by a rule (only string claims match)
    runner_environment: 'self-hosted',
    sha: '714a629c0b401fdce83e847fc9589983fc6f46bc',
    project_visibility: 'private',
    ci_config_ref_uri: `gitlab.example.com/${project}//.gitlab-ci.yml@refs/heads/${ref}`,
    jti: randomUUID(),
    iat: now,
    nbf: now - 5,
    exp: now + 3600,
    sub: `project_path:${project}:ref_type:branch:ref:${ref}`,
    aud: opts.aud ?? 'https://ca.example.org',
  }
}
