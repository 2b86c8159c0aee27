import { describe, expect, it } from 'vitest'
import * as client from '@certbound/client'
import * as verifier from '@certbound/verifier'
import * as hono from '@certbound/verifier/hono'

// Code written against the single certbound package keeps working: the old subpaths re-export
// the packages, so classes and functions are the very same objects (instanceof holds).
describe('the certbound/verifier, certbound/verifier/hono and certbound/client paths', () => {
  it.each([
    ['certbound/verifier', verifier, ['createVerifier', 'verifyBoundToken', 'VerifyError']],
    ['certbound/verifier/hono', hono, ['certboundAuth']],
    ['certbound/client', client, ['createBoundFetch', 'ClientError']],
  ] as const)('%s re-exports its package', async (path, pkg, names) => {
    const old = (await import(path)) as Record<string, unknown>
    expect(Object.keys(old).sort()).toEqual(Object.keys(pkg).sort())
    for (const name of names) {
      expect(old[name]).toBeTypeOf('function')
      expect(old[name]).toBe((pkg as Record<string, unknown>)[name])
    }
  })
})
