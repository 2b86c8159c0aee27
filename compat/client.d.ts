// The old import path, kept working: re-exports `@certbound/client`.
export * from '@certbound/client'
