// The old import path, kept working: re-exports `@certbound/verifier/hono`.
export * from '@certbound/verifier/hono'
