/**
 * The one place the bench imports the resource-server verifier from. Another branch moves it
 * to the workspace package `@certbound/verifier` (packages/verifier): change this line then.
 */
export { createVerifier, type Verifier } from '../../src/verifier/index.js'
