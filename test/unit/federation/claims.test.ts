import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  claimValue,
  claimsProblem,
  globMatch,
  matchClaims,
} from '../../../src/federation/claims.js'
import { isJwtShaped } from '../../../src/federation/verify.js'

const k8s = {
  sub: 'system:serviceaccount:ci:runner',
  'kubernetes.io': { namespace: 'ci', serviceaccount: { name: 'runner' }, warnafter: 1 },
  'a/b': 'slash',
  'm~n': 'tilde',
  aud: ['https://ca.example.org'],
  runner_id: 1,
}

describe('OIDC rule claims', () => {
  it('claim names: top-level, or RFC 6901 JSON Pointers with ~0 and ~1', () => {
    expect(claimValue(k8s, 'sub')).toBe('system:serviceaccount:ci:runner')
    expect(claimValue(k8s, '/kubernetes.io/namespace')).toBe('ci')
    expect(claimValue(k8s, '/kubernetes.io/serviceaccount/name')).toBe('runner')
    expect(claimValue(k8s, 'kubernetes.io.namespace')).toBeUndefined() // a name, not a path
    expect(claimValue(k8s, '/a~1b')).toBe('slash')
    expect(claimValue(k8s, '/m~0n')).toBe('tilde')
    expect(claimValue(k8s, '/kubernetes.io/missing/x')).toBeUndefined()
    expect(claimValue(k8s, '/aud/0')).toBeUndefined() // arrays are not walked
    expect(claimValue(k8s, 'toString')).toBeUndefined() // own members only
    expect(claimValue(k8s, '/__proto__')).toBeUndefined()
  })

  it('globs: * matches any run of characters, / included; everything else is literal', () => {
    expect(globMatch('acme/*', 'acme/api')).toBe(true)
    expect(globMatch('acme/*', 'acme/api/sub')).toBe(true)
    expect(globMatch('acme/*', 'acme')).toBe(false)
    expect(globMatch('*@refs/heads/main', 'acme/api/.github/workflows/d.yml@refs/heads/main')).toBe(
      true,
    )
    expect(globMatch('refs/heads/*', 'refs/tags/v1')).toBe(false)
    expect(globMatch('a.c', 'abc')).toBe(false) // no regex meaning
    expect(globMatch('a?c', 'abc')).toBe(false)
    expect(globMatch('*', '')).toBe(true)
    expect(globMatch('x', 'X')).toBe(false) // case-sensitive
    expect(globMatch('a*b*c*d*e*f*g*h*z', 'a'.repeat(5000))).toBe(false) // and fast: no backtracking blow-up
  })

  it('globMatch agrees with an anchored regular expression on random inputs', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[ab*/]{0,8}$/),
        fc.stringMatching(/^[ab/]{0,10}$/),
        (p, v) => {
          const re = new RegExp(`^${p.replace(/[/]/g, '\\/').replace(/\*/g, '[\\s\\S]*')}$`)
          expect(globMatch(p, v)).toBe(re.test(v))
        },
      ),
    )
  })

  it('matchClaims: every pinned claim must be a matching string; reports the first that is not', () => {
    const rule = { '/kubernetes.io/namespace': 'ci', sub: 'system:serviceaccount:ci:*' }
    expect(matchClaims(rule, k8s)).toEqual({
      ok: true,
      matched: { '/kubernetes.io/namespace': 'ci', sub: 'system:serviceaccount:ci:runner' },
    })
    expect(matchClaims({ sub: 'system:*', runner_id: '1' }, k8s)).toEqual({
      ok: false,
      claim: 'runner_id',
      reason: 'missing',
    })
    expect(matchClaims({ aud: '*' }, k8s)).toMatchObject({ ok: false, reason: 'missing' })
    expect(matchClaims({ '/kubernetes.io/namespace': 'prod' }, k8s)).toMatchObject({
      ok: false,
      reason: 'mismatch',
    })
  })

  it('claimsProblem: 1-32 claims, valid pointers, non-empty patterns, not only wildcards', () => {
    expect(claimsProblem({ repository: 'acme/api' })).toBeUndefined()
    expect(claimsProblem({})).toMatch(/1 to 32/)
    expect(
      claimsProblem(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`c${i}`, 'x']))),
    ).toMatch(/1 to 32/)
    expect(claimsProblem({ repository: '*', ref: '**' })).toMatch(/more than "\*"/)
    expect(claimsProblem({ repository: '*', ref: 'refs/heads/main' })).toBeUndefined()
    expect(claimsProblem({ '/a~x': 'v' })).toMatch(/JSON Pointer/)
    expect(claimsProblem({ '': 'v' })).toMatch(/1 to 256/)
    expect(claimsProblem({ a: '' })).toMatch(/1 to 1024/)
  })

  it('isJwtShaped: three base64url parts (the last may be empty) is an OIDC token; a join token is not', () => {
    expect(isJwtShaped('eyJh.eyJi.c2ln')).toBe(true)
    expect(isJwtShaped('eyJh.eyJi.')).toBe(true)
    expect(isJwtShaped('abcDEF_-123')).toBe(false)
    expect(isJwtShaped('a.b')).toBe(false)
    expect(isJwtShaped('a.b.c.d')).toBe(false)
    expect(isJwtShaped('a.b.c=')).toBe(false)
    expect(isJwtShaped(`${'a'.repeat(17_000)}.b.c`)).toBe(false)
  })
})
