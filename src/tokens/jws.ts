/**
 * The CA signs and verifies its JWTs with the same compact-JWS code as the resource-server
 * verifier (one implementation, in the verifier package, which depends on nothing of the CA).
 */
export * from '@certbound/verifier/jws'
