#!/usr/bin/env bash
# test.sh — run ALL of x1-validate's tests: the Rust unit + integration tests (incl. real-tool images,
# third-party fixtures and the corpus image), the adapter's node tests, and the end-to-end runtime image
# build. Runs setup.sh first, so on a fresh Debian machine this one command is enough.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export X1_TOOLS_CACHE=${X1_TOOLS_CACHE:-$HOME/.cache/x1-tools}
export X1_CORPUS_DIR=${X1_CORPUS_DIR:-$HOME/x1-corpus/runtime-opencode}
# setup.sh installed every prerequisite: a test that would skip for a missing tool fails instead.
export X1_REQUIRE_ALL=${X1_REQUIRE_ALL:-1}

echo "== cargo test"
cargo test --all-targets --quiet 2>&1

echo "== fuzz: every cargo-fuzz target for a bounded time (X1_FUZZ_SECONDS, default 10 s each)"
bash scripts/fuzz.sh "${X1_FUZZ_SECONDS:-10}"

echo "== lint: shellcheck on every shell script, actionlint on every workflow"
bash scripts/lint-ci.sh

echo "== adapter + overlay tests (node --test, real opencode, scripted sidecar; hadolint)"
bash scripts/e2e-adapter-tests.sh

echo "== end to end: render → buildah bud Dockerfile.opencode → gate --exec always → one real opencode turn"
X1_VALIDATE="$PWD/target/release/x1-validate" bash scripts/e2e-runtime-image.sh

echo "== all tests passed"
