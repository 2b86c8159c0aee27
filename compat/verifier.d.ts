// The old import path, kept working: re-exports `@certbound/verifier`.
export * from '@certbound/verifier'
