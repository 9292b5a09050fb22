#!/usr/bin/env bash
# e2e-adapter-tests.sh — the runtime overlay's own tests, under Node 22's test runner:
#   - the adapter against the REAL opencode binary and a scripted sidecar (adapter.test.mjs)
#   - git-credential-x1, entrypoint --healthcheck and run.sh (overlay.test.mjs)
#   - pure units (units.test.mjs)
# plus hadolint on Dockerfile.opencode. Tools come from scripts/e2e-tools.sh (cached outside the repo).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/e2e-tools.sh
. scripts/e2e-tools.sh
e2e_tools_env
ensure_hadolint
e2e_log "hadolint Dockerfile.opencode"
"$X1_HADOLINT" Dockerfile.opencode
e2e_log "node --test (node $("$X1_NODE22" --version), opencode $X1_OPENCODE_BIN)"
cd presets/opencode/overlay/app/adapter
PATH="$(dirname "$X1_NODE22"):$PATH" X1_OPENCODE_BIN="$X1_OPENCODE_BIN" \
  "$X1_NODE22" --test --test-reporter=spec test/*.test.mjs
