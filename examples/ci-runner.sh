#!/usr/bin/env bash
# CI-runner recipe: run `certbound agent --once` before each job step that needs the token.
# It renews the certificate if due, refreshes (or gets) the access token bound to it and exits
# 0 — or exits non-zero with a one-line reason (1: CA unreachable, 3: credential refused, e.g.
# revoked: a new join token is needed), so a step never runs with a dead credential.
#
# From the repository root, with the CA (`npm start`) and examples/protected-api.ts running:
#
#   CERTBOUND_JOIN_TOKEN_FILE=walk/runner.join examples/ci-runner.sh
#
# Environment (defaults in brackets):
#   CERTBOUND_SERVER           [https://localhost:8443]          the CA
#   CERTBOUND_BUNDLE           [data/ca/bundle.pem]              trust bundle for the CA
#   CERTBOUND_SPIFFE_ID        [spiffe://example.org/ci/runner]  this runner's identity
#   CERTBOUND_OUT              [walk/runner]   credentials; keep the directory between steps
#   CERTBOUND_JOIN_TOKEN_FILE  [unset]         one-time join token, needed on the first run only
#   API_URL                    [https://localhost:8444/api/hello]  what the job steps call
#   CERTBOUND                  [npm run -s certbound --]           how to run the CLI
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CERTBOUND_SERVER:=https://localhost:8443}"
: "${CERTBOUND_BUNDLE:=data/ca/bundle.pem}"
: "${CERTBOUND_SPIFFE_ID:=spiffe://example.org/ci/runner}"
: "${CERTBOUND_OUT:=walk/runner}"
: "${API_URL:=https://localhost:8444/api/hello}"
: "${CERTBOUND:=npm run -s certbound --}"
OUT=$CERTBOUND_OUT

# Before each step that needs the token: fresh certificate (if due) and fresh token, or stop.
credentials() {
  $CERTBOUND agent --once --log-level warn \
    --server "$CERTBOUND_SERVER" --ca-bundle "$CERTBOUND_BUNDLE" \
    --spiffe-id "$CERTBOUND_SPIFFE_ID" --out "$OUT" \
    ${CERTBOUND_JOIN_TOKEN_FILE:+--join-token-file "$CERTBOUND_JOIN_TOKEN_FILE"}
}

token() {
  node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).access_token' \
    "$OUT/token.json"
}

# curl over mTLS: the chain (leaf + intermediate) and key the token is bound to. The token
# alone is useless to anyone who reads it from the job log: it needs key.pem as well.
bound_curl() {
  curl -sS -f --cacert "$OUT/bundle.pem" --cert "$OUT/chain.pem" --key "$OUT/key.pem" "$@"
}

echo '--- step 1: build (no token needed)'
echo 'building...'

echo '--- step 2: call the protected API'
credentials
bound_curl -H "Authorization: Bearer $(token)" "$API_URL"
echo

echo '--- step 3: ask the CA whether our token is active (RFC 7662 introspection, over mTLS)'
credentials
bound_curl --data-urlencode "token=$(token)" "$CERTBOUND_SERVER/oauth/introspect"
echo
