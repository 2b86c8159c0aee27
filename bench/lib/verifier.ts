/**
 * The one place the bench imports the resource-server verifier from: the workspace package
 * `@certbound/verifier` (packages/verifier), as a resource server installs it.
 */
export { createVerifier, type Verifier } from '@certbound/verifier'
